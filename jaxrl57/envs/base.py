"""The environment interface every agent and runner sees.

A JAX environment is a pair of pure single-environment functions (runners
`vmap` them over a batch of environments):

    reset(key) -> (env_state, obs)
    step(key, env_state, action) -> (env_state, obs, reward, terminated, truncated)

`step` does NOT reset: when `terminated | truncated`, the runner calls `reset`
and keeps `obs` as the final observation of the finished episode (the
bootstrap observation of the last transition). Truncation at
`spec.max_episode_steps` is the environment's job (its state counts steps).

Agents know an environment only by its `EnvSpec`.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np


def int_arg(name: str, value: Any, minimum: int) -> int:
    """`value` as an int >= `minimum`, or ValueError naming the argument.

    Makers' arguments arrive from `--env-arg` as whatever the text parsed to (a
    string, a float), so the type is checked before the range: comparing a str
    with an int would raise a TypeError that names neither.
    """
    try:
        if isinstance(value, bool):  # an int subclass, but never a size
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment.

    Attributes:
      name: id as the user typed it (`jax:Catch`, `CartPole-v1`, `Breakout-v5`).
      obs_shape: shape of one observation (no batch axis).
      obs_dtype: numpy dtype of observations (float32, or uint8 for pixels).
      num_actions: number of discrete actions; None for continuous actions.
      action_low, action_high: bounds of a continuous action (None if discrete).
      max_episode_steps: steps after which an episode is truncated.
    """

    name: str
    obs_shape: tuple[int, ...]
    obs_dtype: Any = np.float32
    num_actions: int | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    max_episode_steps: int = 1000

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None


class JaxEnv(NamedTuple):
    """An environment written in JAX: static spec plus two pure functions."""

    spec: EnvSpec
    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[
        [jax.Array, Any, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]]
    # One env's state -> uint8 [H, W, 3], for people to watch (`envs.render`);
    # None where the game has no drawing.
    render: Callable[[Any], jax.Array] | None = None
