"""Env steps as the envs give them, and transitions as stored in replay."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Transition(NamedTuple):
    """One (possibly n-step) transition.

    `reward` is the discounted n-step return and `discount` the discount to
    apply to the bootstrap value at `next_obs` (`gamma**k`, 0 at a terminal).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array


class EnvSteps(NamedTuple):
    """Steps of `E` envs (leaves `[E, ...]`, or `[n, E, ...]` for a window of n):
    obs the action was taken in, action and reward, terminated and truncated
    (bool), and next_obs, the true next observation (the final one where an
    episode ended, not the reset observation)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
