"""Prioritized sequence replay with stored recurrent state (R2D2, Kapturowski et al. 2019).

`E` environments step side by side. Each call to `sequence_push` appends, for
every env marked `active` (all of them by default), one `step` (any pytree of
arrays with leading axis `[E]`: obs, action, reward, discount, reset flag,
previous action and reward, loss mask, ...) together with the recurrent core
state the actor had BEFORE processing that step, i.e. the state it fed into
its core along with this step's observation. A per-env ring keeps each env's
last `seq_len` steps and their core states. `active` lets one env push a step
the others do not have: R2D2 pushes an episode's final observation as a step
of its own (as acme's adders do), only for the envs whose episode just ended.

Emission timing, per env. Number an env's pushed steps `0, 1, 2, ...`. Once
`seq_len` steps have been pushed, and then every `period` of its pushes, the
push writes that env's last `seq_len` consecutive steps into the buffer as a
sequence: its sequences start at steps `0, period, 2 * period, ...`, so two
consecutive sequences of one env overlap by `seq_len - period` steps (R2D2:
40 burn-in + 80 trained + 1 bootstrap steps = 121, every 40 steps).
Concretely, the push that brings an env's number of pushed steps to `c`
emits iff `c >= seq_len` and `(c - seq_len) % period == 0`, and the sequence
holds its steps `c - seq_len, ..., c - 1`. The envs due in one push fill
consecutive buffer slots, env 0 first; while every env is active they are all
due together, E sequences at a time. Each sequence is stored with the core
state of its FIRST step: the "stored state" strategy of R2D2 (sec. 3), from
which the learner starts its unroll (after an optional burn-in prefix, the
learner's choice).

Episode boundaries. Sequences run straight across episode boundaries: steps
are neither dropped nor padded, and the reset flags (whatever leaf of `step`
marks "this step begins a new episode") are stored at their positions. The
learner must reset the core state to its initial value before processing
every step whose reset flag is set, INCLUDING step 0 of a sequence (if the
actor already reset its state before pushing that step, doing it again is a
no-op); then no unroll ever carries state from one episode into the next.
Targets that bootstrap across a boundary are masked by the stored discounts
or loss mask, also the learner's job.

Priorities are proportional (Schaul et al. 2016) and reuse
`replay.prioritized`: sequence `i` is sampled with probability
`p_i^alpha / sum_k p_k^alpha`, with importance weight
`w_i = (N P(i))^-beta / max_batch w`. New sequences enter at the largest
priority seen so far (`max_priority ** alpha`). The priorities passed back by
the learner are R2D2's `eta * max_t |td_t| + (1 - eta) * mean_t |td_t|`
(`jaxrl57.losses.r2d2_priority`).

All functions are pure; the state is a pytree of fixed-shape arrays, so they
work under `jax.jit` and `jax.vmap` (e.g. over a population axis). Nothing
branches on traced values: the write into the buffer happens on every push
with its indices pushed out of range (and dropped) when no sequence is due,
so XLA never copies the buffer as it would for a `lax.cond` operand.
`num_envs`, `capacity` and `seq_len` set shapes and are static; `period`,
`alpha` and `beta` are traced and may differ across a vmapped population.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.replay.prioritized import PrioritizedState, prioritized_sample, prioritized_update
from jaxrl57.replay.sum_tree import sum_tree_get, sum_tree_init, sum_tree_set

_tree_map = jax.tree_util.tree_map
_leaves = jax.tree_util.tree_leaves


class SequenceReplayState(NamedTuple):
    """Sequence builder and prioritized sequence buffer.

    ring_steps: step pytree with leaves `[E, seq_len, ...]`; the step numbered
      `t` (counting pushes from 0) lives in ring slot `t % seq_len`.
    ring_core_states: core-state pytree with leaves `[E, seq_len, ...]`, the
      state before each step in the same slots.
    count: int32 `[E]`, number of steps each env pushed. To never overflow it
      is reduced by `seq_len * period` whenever it reaches
      `seq_len + seq_len * period`, which keeps `count >= seq_len`,
      `count % seq_len` and `(count - seq_len) % period` unchanged.
    period: int32 scalar, pushes between emissions (`seq_len - overlap`).
    steps: step pytree with leaves `[capacity, seq_len, ...]`, the sequences.
    start_core_states: core-state pytree with leaves `[capacity, ...]`, the
      core state before step 0 of each sequence (the R2D2 stored state).
    position: int32 scalar, next buffer slot to write.
    size: int32 scalar, number of filled slots (slots `[0, size)`).
    tree: sum tree `[2 * C]` (see `sum_tree`) whose leaves are `p_i^alpha`.
    max_priority: float32 scalar, largest raw priority seen so far (starts at 1).
    """

    ring_steps: Any
    ring_core_states: Any
    count: jax.Array
    period: jax.Array
    steps: Any
    start_core_states: Any
    position: jax.Array
    size: jax.Array
    tree: jax.Array
    max_priority: jax.Array


def check_sequence_layout(burn_in: int, trace_length: int, period: int) -> None:
    """Raises ValueError unless sequences of `burn_in + trace_length + 1` steps
    (a burn-in, the steps that carry the loss, one bootstrap step; Kapturowski et
    al. 2019, sec. 2.3, stored as acme does) can be cut every `period` pushes."""
    if burn_in < 0:
        raise ValueError(f"burn_in must be >= 0, got {burn_in}")
    if trace_length < 1:
        raise ValueError(f"trace_length (steps that carry the loss) must be >= 1, "
                         f"got {trace_length}")
    seq_len = burn_in + trace_length + 1
    if not 1 <= period <= seq_len:
        raise ValueError(f"period must be in [1, seq_len = burn_in + trace_length + 1 = "
                         f"{seq_len}], got {period}")


def _zeros(example, lead: tuple[int, ...]):
    return _tree_map(lambda x: jnp.zeros(lead + jnp.shape(x), jnp.asarray(x).dtype), example)


def sequence_init(
    example_step,
    example_core_state,
    num_envs: int,
    capacity: int,
    seq_len: int = 80,
    period=None,
) -> SequenceReplayState:
    """Empty builder and buffer.

    Args:
      example_step: ONE env's step, without the `[E]` axis (values unused;
        sets the structure, shapes and dtypes). Must hold at least one array.
      example_core_state: ONE env's core state, without the `[E]` axis (e.g.
        an LSTM `(c, h)` pair of `[H]` arrays); may be an empty pytree.
      num_envs: E, static.
      capacity: number of sequences the buffer holds, static.
      seq_len: steps per sequence, static (R2D2: burn-in 40 + trained 80 + the
        bootstrap step = 121, as acme stores them).
      period: pushes between emissions, `seq_len - overlap`, in
        `[1, seq_len]`; default `seq_len // 2` (R2D2: 40). May be a traced
        int scalar (then it is not validated here).
    """
    if num_envs < 1 or capacity < 1 or seq_len < 1:
        raise ValueError(
            f"num_envs, capacity and seq_len must be >= 1, got {num_envs}, {capacity}, {seq_len}"
        )
    if period is None:
        period = max(1, seq_len // 2)
    if isinstance(period, (int, np.integer)) and not 1 <= period <= seq_len:
        raise ValueError(f"period must be in [1, seq_len={seq_len}], got {period}")
    if not _leaves(example_step):
        raise ValueError("example_step must contain at least one array")
    return SequenceReplayState(
        ring_steps=_zeros(example_step, (num_envs, seq_len)),
        ring_core_states=_zeros(example_core_state, (num_envs, seq_len)),
        count=jnp.zeros((num_envs,), jnp.int32),
        period=jnp.asarray(period, jnp.int32),
        steps=_zeros(example_step, (capacity, seq_len)),
        start_core_states=_zeros(example_core_state, (capacity,)),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        tree=sum_tree_init(capacity),
        max_priority=jnp.ones((), jnp.float32),
    )


def _check_batch(name: str, ring, batch) -> None:
    """Static check that `batch` leaves are `[E, ...]` like the ring's `[E, seq_len, ...]`."""
    ring_leaves, ring_def = jax.tree_util.tree_flatten(ring)
    batch_leaves, batch_def = jax.tree_util.tree_flatten(batch)
    if ring_def != batch_def:
        raise ValueError(f"{name} has structure {batch_def}, expected {ring_def}")
    for r, b in zip(ring_leaves, batch_leaves, strict=True):
        expected = r.shape[:1] + r.shape[2:]
        if jnp.shape(b) != expected:
            raise ValueError(f"{name} leaf has shape {jnp.shape(b)}, expected {expected}")


def sequence_push(state: SequenceReplayState, step, core_state, priority_alpha, active=None):
    """Appends one step for each active env; writes the sequences that become due.

    Args:
      state: the replay state.
      step: step pytree with leaves `[E, ...]` (the structure of `example_step`).
      core_state: the actors' core states BEFORE processing `step`, leaves `[E, ...]`.
      priority_alpha: priority exponent (may be traced); new sequences get
        leaf `max_priority ** alpha`. Use the same alpha for
        `sequence_update_priorities`.
      active: optional bool `[E]`: the envs that push (default all); the
        others' rings, counts and sequences are left as they are.

    Returns:
      The new state. See the module docstring for when sequences are emitted.
    """
    _check_batch("step", state.ring_steps, step)
    _check_batch("core_state", state.ring_core_states, core_state)
    seq_len = _leaves(state.ring_steps)[0].shape[1]
    num_envs = _leaves(state.ring_steps)[0].shape[0]
    capacity = _leaves(state.steps)[0].shape[0]
    envs = jnp.arange(num_envs)
    active = jnp.ones((num_envs,), bool) if active is None else jnp.asarray(active, bool)

    # Inactive envs write out of range, which `mode="drop"` discards.
    slot = jnp.where(active, state.count % seq_len, seq_len)
    write = lambda ring, x: ring.at[envs, slot].set(jnp.asarray(x, ring.dtype), mode="drop")  # noqa: E731
    ring_steps = _tree_map(write, state.ring_steps, step)
    ring_core_states = _tree_map(write, state.ring_core_states, core_state)

    count = state.count + active.astype(jnp.int32)
    due = active & (count >= seq_len) & ((count - seq_len) % state.period == 0)
    oldest = count % seq_len  # [E]: slot of each env's step `count - seq_len`
    order = (oldest[:, None] + jnp.arange(seq_len, dtype=jnp.int32)) % seq_len  # [E, L]
    gather = jax.vmap(lambda ring, o: ring[o])  # per env: its steps, oldest first
    sequences = _tree_map(lambda r: gather(r, order), ring_steps)  # [E, L, ...]
    starts = _tree_map(lambda r: r[envs, oldest], ring_core_states)  # [E, ...]

    # Due envs take consecutive slots from `position`; with more of them than
    # the capacity only the last `capacity` are kept (as `uniform.ring_write`).
    num_due = jnp.sum(due.astype(jnp.int32))
    rank = jnp.cumsum(due.astype(jnp.int32)) - 1
    kept = due & (rank >= num_due - capacity)
    indices = ((state.position + rank) % capacity).astype(jnp.int32)
    targets = jnp.where(kept, indices, capacity)
    store = lambda buf, x: buf.at[targets].set(jnp.asarray(x, buf.dtype), mode="drop")  # noqa: E731
    steps = _tree_map(store, state.steps, sequences)
    start_core_states = _tree_map(store, state.start_core_states, starts)
    # Envs not written point at the last written slot with the same value, so the
    # tree's last-write-wins rule never lets them undo a write (nor change a slot
    # when nothing is due: then they rewrite `position - 1` with its own value).
    last = ((state.position + num_due - 1) % capacity).astype(jnp.int32)
    leaf = jnp.power(state.max_priority, jnp.asarray(priority_alpha, jnp.float32))
    tree_indices = jnp.where(kept, indices, last)
    values = jnp.where(num_due > 0, leaf, sum_tree_get(state.tree, last))
    tree = sum_tree_set(state.tree, tree_indices, jnp.broadcast_to(values, (num_envs,)))

    wrap = seq_len * state.period
    count = jnp.where(count >= seq_len + wrap, count - wrap, count).astype(jnp.int32)
    position = (state.position + num_due) % capacity
    size = jnp.minimum(state.size + num_due, capacity)
    return state._replace(
        ring_steps=ring_steps,
        ring_core_states=ring_core_states,
        count=count,
        steps=steps,
        start_core_states=start_core_states,
        position=position.astype(jnp.int32),
        size=size.astype(jnp.int32),
        tree=tree,
    )


def _as_prioritized(state: SequenceReplayState) -> PrioritizedState:
    """The buffer seen as a `PrioritizedState` whose items are `(steps, start_core_state)`."""
    return PrioritizedState(
        storage=(state.steps, state.start_core_states),
        position=state.position,
        size=state.size,
        tree=state.tree,
        max_priority=state.max_priority,
    )


def sequence_sample(state: SequenceReplayState, key: jax.Array, batch_size: int, beta):
    """Stratified proportional sample of `batch_size` sequences (see `prioritized_sample`).

    Returns:
      steps: step pytree with leaves `[B, seq_len, ...]`.
      start_core_state: core-state pytree with leaves `[B, ...]`, the stored
        state before step 0 of each sequence.
      indices: int32 `[B]`, slots to pass to `sequence_update_priorities`.
      weights: float32 `[B]`, `(N * P(i))^-beta` divided by the batch maximum,
        `N` the number of stored sequences.

    An empty buffer returns slot 0 (zeros) with weight 1; check
    `sequence_can_sample` first.
    """
    (steps, start), indices, weights = prioritized_sample(
        _as_prioritized(state), key, batch_size, beta
    )
    return steps, start, indices, weights


def sequence_update_priorities(
    state: SequenceReplayState, indices: jax.Array, priorities: jax.Array, alpha, eps: float = 1e-6
) -> SequenceReplayState:
    """Sets the priorities of slots `indices [B]` to `(|p| + eps)^alpha`.

    `priorities [B]` are raw sequence priorities, typically
    `r2d2_priority(abs_td [T, B], eta)`. `max_priority` becomes
    `max(max_priority, max |p|)`; with duplicate indices the last one wins in
    the tree (see `sum_tree_set`).
    """
    updated = prioritized_update(_as_prioritized(state), indices, priorities, alpha, eps)
    return state._replace(tree=updated.tree, max_priority=updated.max_priority)


def sequence_can_sample(state: SequenceReplayState, batch_size: int) -> jax.Array:
    """Bool scalar: at least `batch_size` sequences are stored."""
    return state.size >= batch_size
