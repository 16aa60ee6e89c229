"""Proportional prioritized experience replay (Schaul et al. 2016).

Item `i` is sampled with probability (eq. 1)

    P(i) = p_i^alpha / sum_k p_k^alpha

and its importance-sampling weight is (section 3.4)

    w_i = (N * P(i))^-beta / max_j w_j,

where `N` is the number of stored items. Here `max_j` runs over the sampled
batch (as in dopamine and most reimplementations), not over the whole buffer,
so the largest weight in each batch is exactly 1.

The leaves of the sum tree hold `p_i^alpha`. New items enter at the largest
priority seen so far (`max_priority`, starting at 1), so each is replayed at
least once with high probability. `alpha` and `beta` may be traced arrays
(swept hyperparameters); annealing `beta` towards 1 over training (e.g. with
`optax.linear_schedule`) is the caller's job: pass the current value to
`prioritized_sample`. Use the same `alpha` for `prioritized_add` and
`prioritized_update` throughout a run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.replay.base import Transition
from jaxrl57.replay.sum_tree import (
    sum_tree_find,
    sum_tree_get,
    sum_tree_init,
    sum_tree_set,
    sum_tree_total,
)
from jaxrl57.replay.uniform import ring_write, storage_init


class PrioritizedState(NamedTuple):
    """Prioritized buffer state.

    storage: `Transition` with leaves `[capacity, ...]`.
    position: int32 scalar, next slot to write.
    size: int32 scalar, number of filled slots.
    tree: sum tree `[2 * C]` (see `sum_tree`) whose leaves are `p_i^alpha`.
    max_priority: float32 scalar, largest raw priority `|p|` seen so far.
    """

    storage: Transition
    position: jax.Array
    size: jax.Array
    tree: jax.Array
    max_priority: jax.Array


def prioritized_init(example: Transition, capacity: int) -> PrioritizedState:
    """Empty buffer for `capacity` transitions shaped like `example` (one, unbatched)."""
    return PrioritizedState(
        storage=storage_init(example, capacity),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        tree=sum_tree_init(capacity),
        max_priority=jnp.ones((), jnp.float32),
    )


def prioritized_add(state: PrioritizedState, batch: Transition, alpha) -> PrioritizedState:
    """Adds `N` transitions (leaves `[N, ...]`) in ring order at priority `max_priority**alpha`."""
    storage, position, size, indices = ring_write(state.storage, state.position, state.size, batch)
    leaf = jnp.power(state.max_priority, jnp.asarray(alpha, jnp.float32))
    tree = sum_tree_set(state.tree, indices, jnp.broadcast_to(leaf, indices.shape))
    return PrioritizedState(storage, position, size, tree, state.max_priority)


def proportional_indices(tree: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
    """Stratified proportional draw of `batch_size` leaf indices from a sum tree.

    The total priority mass is split into `batch_size` equal segments and one
    target is drawn uniformly inside each (Schaul et al. 2016, appendix B.2.1).
    Leaves with zero priority are never returned while the total is positive.
    """
    segment = sum_tree_total(tree) / batch_size
    u = jax.random.uniform(key, (batch_size,), jnp.float32)
    targets = (jnp.arange(batch_size, dtype=jnp.float32) + u) * segment
    return sum_tree_find(tree, targets)


def importance_weights(tree: jax.Array, indices: jax.Array, num_items, beta) -> jax.Array:
    """`(N * P(i))^-beta` over the batch maximum, `P(i)` the leaf's share of the total.

    `num_items` is N, the number of items that can be sampled (Schaul et al.
    2016, section 3.4).
    """
    probs = sum_tree_get(tree, indices) / jnp.maximum(sum_tree_total(tree), 1e-30)
    n = jnp.maximum(num_items, 1).astype(jnp.float32)
    beta = jnp.asarray(beta, jnp.float32)
    # Guard against P = 0 (only possible in an empty buffer).
    weights = jnp.power(jnp.maximum(n * probs, 1e-30), -beta)
    return (weights / jnp.max(weights)).astype(jnp.float32)


def prioritized_sample(
    state: PrioritizedState, key: jax.Array, batch_size: int, beta
) -> tuple[Transition, jax.Array, jax.Array]:
    """Stratified proportional sample of `batch_size` transitions.

    The total priority mass is split into `batch_size` equal segments and one
    target is drawn uniformly inside each (Schaul et al. 2016, appendix B.2.1).

    Returns:
      transitions: `Transition` with leaves `[B, ...]`.
      indices: int32 `[B]`, slots to pass back to `prioritized_update`.
      weights: float32 `[B]`, `(N * P(i))^-beta` divided by the batch maximum.
    """
    indices = proportional_indices(state.tree, key, batch_size)
    indices = jnp.clip(indices, 0, jnp.maximum(state.size - 1, 0)).astype(jnp.int32)
    weights = importance_weights(state.tree, indices, state.size, beta)
    transitions = jax.tree_util.tree_map(lambda s: s[indices], state.storage)
    return transitions, indices, weights


def prioritized_update(
    state: PrioritizedState, indices: jax.Array, priorities: jax.Array, alpha, eps: float = 1e-6
) -> PrioritizedState:
    """Sets the priorities of slots `indices [B]` to `(|p| + eps)^alpha`.

    `priorities` are raw (typically `|td_error|`); `max_priority` becomes
    `max(max_priority, max |p|)`. With duplicate indices the last one wins in
    the tree (the running max still sees all of them).
    """
    priorities = jnp.abs(jnp.asarray(priorities, jnp.float32))
    leaves = jnp.power(priorities + eps, jnp.asarray(alpha, jnp.float32))
    tree = sum_tree_set(state.tree, indices, leaves)
    max_priority = jnp.maximum(state.max_priority, jnp.max(priorities))
    return state._replace(tree=tree, max_priority=max_priority)
