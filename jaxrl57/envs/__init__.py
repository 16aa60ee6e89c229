"""Environments: JAX envs (`jax:` ids) and EnvPool envs (every `envpool.list_all_envs()` id).

JAX envs (kwargs of their makers in brackets):

    jax:CartPole-v1        CartPole-v1 (cartpole.py)
    jax:Catch              Catch of the Keras DQN article [size] (catch.py)
    jax:DeepSea            bsuite's DeepSea, hard exploration [size, mapping_seed] (deep_sea.py)
    jax:KeyDoor            fetch a key, open a door, reach the goal; sparse [size] (key_door.py)
    jax:Cave               CAVE, the side-scroller of the Keras DQN article [size, frames]
    jax:MaskedCartPole-v1  CartPole-v1 observing positions only (memory.py)
    jax:MaskedPendulum-v1  Pendulum-v1 observing the angle only (memory.py)
    jax:MemoryChain        remember a cue for `length` steps [length, num_cues] (memory.py)
    jax:Pendulum-v1        Pendulum-v1, continuous torque (pendulum.py)

    make_env("jax:Catch", size=16)             # -> JaxEnv
    make_env("Breakout-v5", num_envs=8, seed=0)  # -> EnvPoolVec (see envpool_env)
    env_spec("Breakout-v5")                    # -> EnvSpec, no env created

EnvPool is imported lazily, so the JAX envs work where EnvPool is not installed.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from jaxrl57.envs.base import EnvSpec, JaxEnv
from jaxrl57.envs.cartpole import make_cartpole
from jaxrl57.envs.catch import make_catch
from jaxrl57.envs.cave import make_cave
from jaxrl57.envs.deep_sea import make_deep_sea
from jaxrl57.envs.key_door import make_key_door
from jaxrl57.envs.memory import make_masked_cartpole, make_masked_pendulum, make_memory_chain
from jaxrl57.envs.pendulum import make_pendulum

__all__ = [
    "EnvSpec",
    "JaxEnv",
    "UnknownEnvError",
    "env_spec",
    "is_jax_env",
    "list_env_ids",
    "make_cartpole",
    "make_catch",
    "make_cave",
    "make_deep_sea",
    "make_env",
    "make_key_door",
    "make_masked_cartpole",
    "make_masked_pendulum",
    "make_memory_chain",
    "make_pendulum",
]

JAX_ENVS: dict[str, Callable[..., JaxEnv]] = {
    "jax:CartPole-v1": make_cartpole,
    "jax:Catch": make_catch,
    "jax:Cave": make_cave,
    "jax:DeepSea": make_deep_sea,
    "jax:KeyDoor": make_key_door,
    "jax:MaskedCartPole-v1": make_masked_cartpole,
    "jax:MaskedPendulum-v1": make_masked_pendulum,
    "jax:MemoryChain": make_memory_chain,
    "jax:Pendulum-v1": make_pendulum,
}


class UnknownEnvError(ValueError):
    """An env id that is neither a JAX env nor an EnvPool env; the message suggests ids."""


def is_jax_env(env_id: str) -> bool:
    """True if `env_id` names an environment written in JAX (`jax:CartPole-v1`, ...)."""
    return env_id in JAX_ENVS


def _envpool_ids() -> list[str]:
    try:
        import envpool
    except ImportError:
        return []
    return list(envpool.list_all_envs())


def list_env_ids() -> list[str]:
    """All known ids: the JAX ones first, then EnvPool's (empty if EnvPool is missing)."""
    return list(JAX_ENVS) + _envpool_ids()


def _check_known(env_id: str) -> None:
    if is_jax_env(env_id):
        return
    ids = list_env_ids()
    if env_id in ids:
        return
    by_lower = {i.lower(): i for i in ids}
    close = difflib.get_close_matches(env_id.lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""
    raise UnknownEnvError(
        f"Unknown environment id {env_id!r}.{hint} "
        f"(JAX envs: {', '.join(JAX_ENVS)}; EnvPool ids: envpool.list_all_envs())"
    )


def _make_jax_env(env_id: str, kwargs: dict[str, Any]) -> JaxEnv:
    maker = JAX_ENVS[env_id]
    allowed = list(inspect.signature(maker).parameters)
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        takes = (f"accepted: {', '.join(allowed)}" if allowed
                 else f"{env_id} takes no arguments")
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} ({takes})")
    return maker(**kwargs)


def make_env(env_id: str, **kwargs: Any):
    """Make an environment.

    `jax:` ids return a `JaxEnv` (kwargs go to its maker: `size` for Catch, `size` and
    `frames` for Cave, `length` and `num_cues` for MemoryChain; an argument the maker does
    not take, or a bad value, raises `ValueError`). EnvPool ids return
    `envpool_env.EnvPoolVec` via
    `make_envpool(env_id, num_envs=1, seed=0, train=True, **overrides)` (kwargs override
    those). Raises `UnknownEnvError` with close ids for unknown ids.
    """
    _check_known(env_id)
    if is_jax_env(env_id):
        return _make_jax_env(env_id, kwargs)
    from jaxrl57.envs.envpool_env import make_envpool

    num_envs = kwargs.pop("num_envs", 1)
    seed = kwargs.pop("seed", 0)
    return make_envpool(env_id, num_envs, seed, **kwargs)


def env_spec(env_id: str, **kwargs: Any) -> EnvSpec:
    """The `EnvSpec` of `make_env(env_id, **kwargs)`; for EnvPool ids no env is created."""
    _check_known(env_id)
    if is_jax_env(env_id):
        return _make_jax_env(env_id, kwargs).spec
    from jaxrl57.envs.envpool_env import envpool_spec

    return envpool_spec(env_id, **kwargs)
