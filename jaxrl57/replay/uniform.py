"""Uniform experience replay as a pure-JAX ring buffer (Mnih et al. 2015).

The buffer state is a pytree of fixed-shape arrays, so every function works
under `jax.jit` and `jax.vmap` (e.g. over a leading axis of seeds). The
capacity and batch sizes are static Python ints.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.replay.base import Transition


class UniformState(NamedTuple):
    """Ring buffer state.

    storage: a `Transition` whose leaves have shape `[capacity, ...]`.
    position: int32 scalar, the slot the next item is written to.
    size: int32 scalar, the number of filled slots (at most `capacity`).
    """

    storage: Transition
    position: jax.Array
    size: jax.Array


def capacity_of(storage: Transition) -> int:
    """Static capacity of a storage pytree (the leading axis of its leaves)."""
    return jax.tree_util.tree_leaves(storage)[0].shape[0]


def storage_init(example: Transition, capacity: int) -> Transition:
    """Zero storage of shape `(capacity,) + leaf.shape` with each leaf's dtype."""
    return jax.tree_util.tree_map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example
    )


def ring_write(
    storage: Transition, position: jax.Array, size: jax.Array, batch: Transition
) -> tuple[Transition, jax.Array, jax.Array, jax.Array]:
    """Writes a batch `[N, ...]` (N static) into the ring in order.

    Returns `(storage, position, size, indices)` where `indices [M]` are the
    slots written. If N exceeds the capacity only the last `capacity` items
    are kept (the earlier ones would be overwritten anyway), so M = min(N, C).
    """
    capacity = capacity_of(storage)
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if n > capacity:
        skip = n - capacity
        batch = jax.tree_util.tree_map(lambda x: x[skip:], batch)
        position = (position + skip) % capacity
        n = capacity
    indices = (position + jnp.arange(n, dtype=jnp.int32)) % capacity
    storage = jax.tree_util.tree_map(
        lambda s, x: s.at[indices].set(jnp.asarray(x, s.dtype)), storage, batch
    )
    position = ((position + n) % capacity).astype(jnp.int32)
    size = jnp.minimum(size + n, capacity).astype(jnp.int32)
    return storage, position, size, indices


def uniform_init(example: Transition, capacity: int) -> UniformState:
    """Empty buffer for `capacity` transitions shaped like `example`.

    Args:
      example: ONE transition, without a batch axis (its values are unused).
      capacity: static number of slots.
    """
    return UniformState(
        storage=storage_init(example, capacity),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def uniform_add(state: UniformState, batch: Transition) -> UniformState:
    """Adds `N` transitions (leaves `[N, ...]`, N static) in ring order."""
    storage, position, size, _ = ring_write(state.storage, state.position, state.size, batch)
    return UniformState(storage=storage, position=position, size=size)


def uniform_sample(state: UniformState, key: jax.Array, batch_size: int) -> Transition:
    """Samples `batch_size` transitions uniformly, with replacement, from the filled slots.

    Filled slots are `[0, size)` (the ring fills from slot 0). Sampling from an
    empty buffer returns slot 0 (zeros); callers should wait until `size > 0`.
    """
    indices = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree_util.tree_map(lambda s: s[indices], state.storage)
