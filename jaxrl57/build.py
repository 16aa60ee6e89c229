"""The driver of a run, chosen from resolved settings.

The front (`jaxrl57.train`, the benchmarks, the tests) calls `make_driver`.
"""

from __future__ import annotations


def make_driver(env_id: str, settings, member_hparams: list[dict], seeds: list[int],
                env_kwargs: dict | None = None):
    """The driver that trains `len(seeds)` members of `settings` on `env_id`: the
    on-device runner for a JAX env, the synchronous EnvPool loop, or the
    asynchronous pipeline with `pipeline=async`."""
    from jaxrl57 import envs

    if envs.is_jax_env(env_id):
        from jaxrl57.runners.driver import JaxDriver as Driver
    elif settings.envpool.pipeline == "async":
        from jaxrl57.runners.pipeline import PipelineDriver as Driver
    else:
        from jaxrl57.runners.envpool_loop import EnvPoolDriver as Driver
    return Driver(env_id, settings, member_hparams, seeds, env_kwargs=env_kwargs)
