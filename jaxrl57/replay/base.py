"""Transitions as stored in replay."""

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
