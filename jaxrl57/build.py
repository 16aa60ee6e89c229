"""What a run is made of, built from resolved settings: env, agent, hyperparameters, driver.

The front (`jaxrl57.train`, the benchmarks, the tests) calls `make_driver`;
the runners receive the parts ready-made and build nothing themselves, so a
runner never depends on how settings are resolved.
"""

from __future__ import annotations

import jax
import numpy as np

EVAL_SEED_OFFSET = 1_000_003  # evaluation pools: seeds apart from the training pool's


def stack_hparams(member_hparams: list[dict], hparams_cls):
    """The members' traced hyperparameters, stacked along a leading member axis."""
    members = [hparams_cls.create(**h) for h in member_hparams]
    return jax.tree.map(lambda *xs: np.stack(xs), *members)


def make_driver(env_id: str, settings, member_hparams: list[dict], seeds: list[int],
                env_kwargs: dict | None = None):
    """The driver that trains `len(seeds)` members of `settings` (`configs.Settings`)
    on `env_id`: member k is seeded with `seeds[k]` and uses `member_hparams[k]`.

    A JAX env runs on the on-device runner (`runners.driver.JaxDriver`); an
    EnvPool task on the synchronous loop, or on the asynchronous pipeline with
    `pipeline=async`. Raises ValueError for settings the env cannot take."""
    from jaxrl57 import envs

    env_kwargs = env_kwargs or {}
    family, run = settings.family, settings.run_config
    hparams = stack_hparams(member_hparams, family.hparams_cls)
    if envs.is_jax_env(env_id):
        from jaxrl57.runners.driver import JaxDriver

        env = envs.make_env(env_id, **env_kwargs)
        agent = family.make(settings.agent_config, env.spec, run.num_envs)
        return JaxDriver(agent, env, run, hparams, seeds)

    from jaxrl57.envs.envpool_env import make_envpool

    K = len(seeds)
    # The agent family's training settings (lost life as episode end, reward
    # clipping: `configs`), under the user's --env-arg.
    train_env = {**settings.train_env, **env_kwargs}
    pool = make_envpool(env_id, K * run.num_envs, seeds[0], train=True, **train_env)
    eval_pool = make_envpool(env_id, K * run.eval_episodes, seeds[0] + EVAL_SEED_OFFSET,
                             train=False, **env_kwargs)
    agent = family.make(settings.agent_config, pool.spec, run.num_envs)
    if settings.envpool.pipeline == "async":
        from jaxrl57.runners.pipeline import PipelineDriver as Driver
    else:
        from jaxrl57.runners.envpool_loop import EnvPoolDriver as Driver
    return Driver(agent, pool, eval_pool, run, settings.envpool, hparams, seeds)
