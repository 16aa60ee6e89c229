"""A sum tree over priorities as one flat array (Schaul et al. 2016, appendix B.2.1).

The tree is a float32 array of `2 * C` entries where `C` is the capacity
rounded up to a power of two: node `i` has children `2i` and `2i + 1`, the
root is node 1 (entry 0 is unused) and leaf `j` lives at `C + j`. Every
function is pure, with a static number of levels, so it works under
`jax.jit` and `jax.vmap`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _num_leaves(capacity: int) -> int:
    return 1 << max(0, (int(capacity) - 1).bit_length())


def _depth(tree: jax.Array) -> int:
    num_leaves = tree.shape[-1] // 2
    return num_leaves.bit_length() - 1


def sum_tree_init(capacity: int) -> jax.Array:
    """All-zero tree `[2 * C]` for `capacity` leaves, `C` the next power of two."""
    return jnp.zeros((2 * _num_leaves(capacity),), jnp.float32)


def sum_tree_set(tree: jax.Array, indices: jax.Array, values: jax.Array) -> jax.Array:
    """Sets leaves `indices [N]` to `values [N]` and recomputes their ancestors.

    Duplicate indices are allowed: the last occurrence wins, and every parent
    is recomputed as the sum of its two children, so the tree stays
    consistent. Costs O(N^2) for the duplicate mask plus O(N log C).
    """
    num_leaves = tree.shape[-1] // 2
    indices = jnp.asarray(indices, jnp.int32).reshape(-1)
    values = jnp.asarray(values, tree.dtype).reshape(-1)
    n = indices.shape[0]
    # Keep only the last write to each leaf (XLA scatter order is unspecified).
    order = jnp.arange(n)
    later_same = (indices[:, None] == indices[None, :]) & (order[None, :] > order[:, None])
    keep = ~jnp.any(later_same, axis=1)
    nodes = num_leaves + indices
    tree = tree.at[jnp.where(keep, nodes, tree.shape[-1])].set(values, mode="drop")
    for _ in range(_depth(tree)):
        nodes = nodes // 2
        # Duplicated parents all write the same value, so order does not matter.
        tree = tree.at[nodes].set(tree[2 * nodes] + tree[2 * nodes + 1])
    return tree


def sum_tree_total(tree: jax.Array) -> jax.Array:
    """Sum of all leaves (the root)."""
    return tree[1]


def sum_tree_get(tree: jax.Array, indices: jax.Array) -> jax.Array:
    """Leaf values at `indices`."""
    return tree[tree.shape[-1] // 2 + indices]


def sum_tree_find(tree: jax.Array, targets: jax.Array) -> jax.Array:
    """Leaf indices `[B]` whose prefix-sum interval holds each target `[B]`.

    For target `t`, returns the smallest `j` with `t < sum(leaves[: j + 1])`,
    i.e. `searchsorted(cumsum(leaves), t, side="right")`. Targets are clipped
    to `[0, total]`; a search never enters an empty right subtree (it takes the
    left child instead), so float round-off cannot select a zero-priority leaf
    beyond the filled region as long as the total is positive.
    """
    num_leaves = tree.shape[-1] // 2
    targets = jnp.clip(jnp.asarray(targets, tree.dtype), 0.0, tree[1])
    nodes = jnp.ones(targets.shape, jnp.int32)
    for _ in range(_depth(tree)):
        left = tree[2 * nodes]
        right = tree[2 * nodes + 1]
        go_right = (targets >= left) & (right > 0)
        targets = jnp.where(go_right, targets - left, targets)
        nodes = 2 * nodes + go_right.astype(jnp.int32)
    return jnp.clip(nodes - num_leaves, 0, num_leaves - 1)
