"""Tests of jaxrl57.replay.sequence (R2D2 sequence replay) against NumPy references."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import replay
from jaxrl57.losses import r2d2_priority
from jaxrl57.replay import (
    SequenceReplayState,
    sequence_can_sample,
    sequence_init,
    sequence_push,
    sequence_sample,
    sequence_update_priorities,
)

# Jitted entry points (eager op-by-op dispatch is slow on CPU); the vmap tests jit their own.
sequence_sample = jax.jit(sequence_sample, static_argnums=2)
sequence_update_priorities = jax.jit(sequence_update_priorities)


def _stream(t_len, num_envs, seed=0, reset_prob=0.15):
    """Steps and core states `[T, E, ...]` whose values encode `id = t * E + e`."""
    rng = np.random.default_rng(seed)
    ids = np.arange(t_len)[:, None] * num_envs + np.arange(num_envs)[None, :]
    reset = rng.uniform(size=(t_len, num_envs)) < reset_prob
    reset[0] = True
    steps = {
        "obs": np.stack([ids, -ids], axis=-1).astype(np.float32),
        "action": (ids % 7).astype(np.int32),
        "reward": (0.5 * ids).astype(np.float32),
        "reset": reset,
    }
    # An LSTM-like (c, h) pair of [3] vectors, distinct for every (t, e).
    c = (10.0 * ids[..., None] + np.arange(3)).astype(np.float32)
    cores = (c, -c)
    return steps, cores


def _example(steps, cores):
    one = lambda x: jnp.zeros(x.shape[2:], x.dtype)
    return jax.tree_util.tree_map(one, steps), jax.tree_util.tree_map(one, cores)


def _reference(t_len, num_envs, seq_len, period, capacity):
    """What the buffer holds after `t_len` pushes, derived from the stream directly.

    After push number `c` (1-based) the last `seq_len` steps are `c - seq_len .. c - 1`;
    a sequence is emitted for each env (env 0 first) when `c >= seq_len` and
    `c - seq_len` is a multiple of `period`. Slot `k % capacity` holds the k-th
    sequence written. Returns `(slots {slot: (start, env)}, position, size, sizes[T])`.
    """
    written, sizes = [], []
    for c in range(1, t_len + 1):
        if c >= seq_len and (c - seq_len) % period == 0:
            written += [(c - seq_len, e) for e in range(num_envs)]
        sizes.append(min(len(written), capacity))
    slots = {k % capacity: item for k, item in enumerate(written)}
    return slots, len(written) % capacity, min(len(written), capacity), np.array(sizes)


@jax.jit
def _push_all(state, steps, cores, alpha=1.0):
    def body(s, xs):
        s = sequence_push(s, *xs, alpha)
        return s, s.size

    return jax.lax.scan(body, state, (steps, cores))


def _check_buffer(state, steps, cores, slots, seq_len):
    buf = jax.tree_util.tree_map(np.asarray, state.steps)
    start_c, start_h = (np.asarray(x) for x in state.start_core_states)
    for slot, (s, e) in slots.items():
        for name in steps:
            np.testing.assert_array_equal(buf[name][slot], steps[name][s : s + seq_len, e])
        # The stored state is the core state pushed with the sequence's first step.
        np.testing.assert_array_equal(start_c[slot], cores[0][s, e])
        np.testing.assert_array_equal(start_h[slot], cores[1][s, e])


def test_reference_windows_small_case():
    # seq_len 4, period 2: pushes 4, 6, 8 emit windows starting at 0, 2, 4 (overlap 2).
    slots, position, size, sizes = _reference(9, 2, 4, 2, 64)
    assert [slots[k] for k in range(6)] == [(0, 0), (0, 1), (2, 0), (2, 1), (4, 0), (4, 1)]
    assert (position, size) == (6, 6)
    np.testing.assert_array_equal(sizes, [0, 0, 0, 2, 2, 4, 4, 6, 6])


@pytest.mark.parametrize(
    "num_envs,seq_len,period,t_len",
    [(2, 4, 2, 9), (3, 5, 5, 17), (1, 3, 1, 10), (2, 6, 4, 30)],
)
def test_windows_overlap_and_stored_state(num_envs, seq_len, period, t_len):
    capacity = 64
    steps, cores = _stream(t_len, num_envs, seed=t_len)
    state = sequence_init(*_example(steps, cores), num_envs, capacity, seq_len, period)
    assert isinstance(state, SequenceReplayState)
    assert state.steps["obs"].shape == (capacity, seq_len, 2)
    assert state.start_core_states[0].shape == (capacity, 3)
    state, sizes = _push_all(state, steps, cores)

    slots, position, size, ref_sizes = _reference(t_len, num_envs, seq_len, period, capacity)
    assert len(slots) < capacity  # no buffer wrap here
    np.testing.assert_array_equal(sizes, ref_sizes)  # emission timing, push by push
    assert int(state.position) == position and int(state.size) == size
    starts = sorted({s for s, _ in slots.values()})
    np.testing.assert_array_equal(starts, np.arange(len(starts)) * period)
    _check_buffer(state, steps, cores, slots, seq_len)
    # Unwritten slots stay zero and have no priority.
    assert not np.any(np.asarray(state.steps["obs"][size:]))
    leaves = np.asarray(state.tree)[state.tree.shape[0] // 2 :]
    np.testing.assert_array_equal(leaves[:size], 1.0)
    np.testing.assert_array_equal(leaves[size:], 0.0)

    # Consecutive sequences of one env overlap by seq_len - period steps.
    obs = np.asarray(state.steps["obs"])
    overlap = seq_len - period
    for e in range(num_envs):
        mine = [k for k in sorted(slots) if slots[k][1] == e]
        for a, b in zip(mine, mine[1:], strict=False):
            np.testing.assert_array_equal(obs[a, period:], obs[b, :overlap])
            np.testing.assert_array_equal(obs[b, 0, 0] - obs[a, 0, 0], period * num_envs)


def test_reset_flags_and_stored_state_replay_the_actor():
    """A toy recurrent actor; the learner's unroll from stored state reproduces it exactly."""
    num_envs, seq_len, period, t_len = 2, 6, 3, 24
    steps, _ = _stream(t_len, num_envs, seed=7, reset_prob=0.0)
    reset = np.zeros((t_len, num_envs), bool)
    reset[[0, 8, 16], 0] = True  # env 0: episodes start at 0, 8, 16
    reset[[0, 5, 6, 20], 1] = True  # env 1: a one-step episode at 5
    steps["reset"] = reset
    x = steps["obs"][..., 0]

    # Actor: h_in = 0 at a reset step, h_out = 0.5 * h_in + x. It pushes the state
    # it had before the step (the pre-reset carry), as the actor loop would.
    h_before = np.zeros((t_len, num_envs), np.float32)
    h_out = np.zeros((t_len, num_envs), np.float32)
    h = np.full(num_envs, 123.0, np.float32)  # junk carry before the first reset
    for t in range(t_len):
        h_before[t] = h
        h = 0.5 * np.where(reset[t], 0.0, h) + x[t]
        h_out[t] = h
    state = sequence_init(*_example(steps, h_before[..., None]), num_envs, 32, seq_len, period)
    state, _ = _push_all(state, steps, h_before[..., None])

    slots, _, size, _ = _reference(t_len, num_envs, seq_len, period, 32)
    seq_reset = np.asarray(state.steps["reset"])
    seq_x = np.asarray(state.steps["obs"][..., 0])
    start_h = np.asarray(state.start_core_states[:, 0])
    spanning = 0
    for slot, (s, e) in slots.items():
        # Flags sit at the first step of each new episode, at the same positions.
        np.testing.assert_array_equal(
            np.flatnonzero(seq_reset[slot]), np.flatnonzero(reset[s : s + seq_len, e])
        )
        spanning += bool(seq_reset[slot, 1:].any())
        # Learner unroll from the stored state, resetting where flagged (step 0 included).
        h = start_h[slot]
        for k in range(seq_len):
            h = 0.5 * np.where(seq_reset[slot, k], 0.0, h) + seq_x[slot, k]
            np.testing.assert_allclose(h, h_out[s + k, e], rtol=1e-6)
    assert size == len(slots) and spanning >= 4
    # Explicitly: env 0's sequence over steps 6..11 carries the reset on step 8 (index 2).
    slot = next(k for k, v in slots.items() if v == (6, 0))
    np.testing.assert_array_equal(seq_reset[slot], [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(seq_x[slot], 2 * np.arange(6, 12))


@pytest.mark.parametrize(
    "num_envs,capacity,seq_len,period,t_len", [(2, 5, 4, 3, 40), (3, 2, 3, 2, 11), (2, 4, 3, 3, 30)]
)
def test_ring_and_buffer_wraparound(num_envs, capacity, seq_len, period, t_len):
    steps, cores = _stream(t_len, num_envs, seed=1)
    state = sequence_init(*_example(steps, cores), num_envs, capacity, seq_len, period)
    state, sizes = _push_all(state, steps, cores)
    slots, position, size, ref_sizes = _reference(t_len, num_envs, seq_len, period, capacity)
    assert size == capacity and t_len > 3 * seq_len  # both rings wrapped
    np.testing.assert_array_equal(sizes, ref_sizes)
    assert int(state.position) == position and int(state.size) == capacity
    assert len(slots) == capacity
    _check_buffer(state, steps, cores, slots, seq_len)


def test_count_reduction_keeps_the_schedule():
    # count is reduced by seq_len * period once it reaches seq_len * (period + 1).
    num_envs, seq_len, period, t_len = 1, 3, 2, 50
    steps, cores = _stream(t_len, num_envs, seed=2)
    state = sequence_init(*_example(steps, cores), num_envs, 256, seq_len, period)
    state, sizes = _push_all(state, steps, cores)
    assert state.count.shape == (num_envs,)  # one count per env
    assert int(state.count[0]) < seq_len * (period + 1)
    assert int(state.count[0]) % seq_len == t_len % seq_len
    slots, _, _, ref_sizes = _reference(t_len, num_envs, seq_len, period, 256)
    np.testing.assert_array_equal(sizes, ref_sizes)
    _check_buffer(state, steps, cores, slots, seq_len)


def test_inactive_envs_push_nothing_and_keep_their_own_schedule():
    """Pushes for a subset of the envs (R2D2's final-observation steps): each env's
    sequences are its own steps in order, emitted by its own count; the envs due in
    one push take consecutive slots, env 0 first."""
    num_envs, seq_len, period, t_len, capacity = 3, 4, 2, 30, 64
    rng = np.random.default_rng(11)
    active = rng.uniform(size=(t_len, num_envs)) < 0.7
    active[:2] = True
    steps, cores = _stream(t_len, num_envs, seed=11)
    state = sequence_init(*_example(steps, cores), num_envs, capacity, seq_len, period)

    @jax.jit
    def push_all(state):
        def body(s, xs):
            return sequence_push(s, xs[0], xs[1], 1.0, active=xs[2]), s.size

        return jax.lax.scan(body, state, (steps, cores, active))

    state, _ = push_all(state)
    # Reference: each env's stream is its active steps; emissions in push order.
    own = [[] for _ in range(num_envs)]
    written = []
    for t in range(t_len):
        for e in range(num_envs):
            if active[t, e]:
                own[e].append(t)
                c = len(own[e])
                if c >= seq_len and (c - seq_len) % period == 0:
                    written.append((e, own[e][c - seq_len:]))
    assert int(state.size) == len(written) and int(state.position) == len(written)
    pushed = np.array([len(o) for o in own])  # the counts, up to their reduction
    np.testing.assert_array_equal(np.asarray(state.count) % seq_len, pushed % seq_len)
    np.testing.assert_array_equal(np.asarray(state.count) % period, pushed % period)
    assert len({len(o) for o in own}) > 1  # the envs really are out of step
    obs = np.asarray(state.steps["obs"])
    start_c = np.asarray(state.start_core_states[0])
    for slot, (e, ts) in enumerate(written):
        np.testing.assert_array_equal(obs[slot], steps["obs"][ts, e])
        np.testing.assert_array_equal(start_c[slot], cores[0][ts[0], e])
    leaves = np.asarray(state.tree)[state.tree.shape[0] // 2:]
    np.testing.assert_array_equal(leaves[:len(written)], 1.0)
    np.testing.assert_array_equal(leaves[len(written):], 0.0)


def _filled(capacity, num_envs=4, seq_len=3, period=3, alpha=0.6):
    t_len = seq_len + period * (capacity // num_envs - 1)  # exactly `capacity` sequences
    steps, cores = _stream(t_len, num_envs, seed=3)
    state = sequence_init(*_example(steps, cores), num_envs, capacity, seq_len, period)
    state, _ = _push_all(state, steps, cores, alpha)
    assert int(state.size) == capacity and int(state.position) == 0
    return state


def test_sampling_frequencies_and_weights():
    rng = np.random.default_rng(4)
    capacity, alpha, beta, eps = 20, 0.6, 0.4, 1e-6
    state = _filled(capacity)
    # Priorities from per-step |td| as the learner computes them.
    abs_td = rng.uniform(0.0, 2.0, size=(3, capacity)).astype(np.float32)
    priorities = np.asarray(r2d2_priority(jnp.asarray(abs_td), 0.9))
    state = sequence_update_priorities(state, jnp.arange(capacity), jnp.asarray(priorities), alpha)

    num_batches, batch_size = 2000, 8
    keys = jax.random.split(jax.random.PRNGKey(5), num_batches)
    sample = jax.jit(jax.vmap(sequence_sample, in_axes=(None, 0, None, None)), static_argnums=2)
    steps, start, indices, weights = sample(state, keys, batch_size, beta)
    indices = np.asarray(indices)
    assert indices.dtype == np.int32 and weights.dtype == jnp.float32
    assert steps["obs"].shape == (num_batches, batch_size, 3, 2)
    assert start[0].shape == (num_batches, batch_size, 3)
    # Sampled items are the stored sequences at `indices`, start state included.
    np.testing.assert_array_equal(steps["obs"], np.asarray(state.steps["obs"])[indices])
    np.testing.assert_array_equal(start[1], np.asarray(state.start_core_states[1])[indices])

    p_alpha = (priorities.astype(np.float64) + eps) ** alpha
    probs = p_alpha / p_alpha.sum()
    counts = np.bincount(indices.ravel(), minlength=capacity)
    expected = probs * indices.size
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 50.0, chi2  # 19 degrees of freedom; 99.99% quantile ~ 47

    w = (capacity * probs[indices]) ** (-beta)
    w = w / w.max(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, w, rtol=1e-4)


def test_update_priorities_duplicates_and_new_at_max():
    alpha, eps = 0.5, 1e-6
    state = _filled(8, num_envs=4, alpha=alpha)
    state = sequence_update_priorities(
        state, jnp.array([1, 3, 1, 5]), jnp.array([9.0, 0.25, 0.04, -4.0]), alpha
    )
    leaves = np.asarray(state.tree)[8:16]
    # Slot 1 keeps the LAST write (0.04); the running max sees every value (9).
    np.testing.assert_allclose(
        leaves, np.array([1, 0.04 + eps, 1, 0.25 + eps, 1, 4 + eps, 1, 1]) ** alpha, rtol=1e-5
    )
    np.testing.assert_allclose(state.max_priority, 9.0)
    np.testing.assert_allclose(np.asarray(state.tree)[1], leaves.sum(), rtol=1e-5)
    # The next 4 sequences overwrite slots 0..3 at max_priority ** alpha = 3.
    steps, cores = _stream(3, 4, seed=9)
    state, _ = _push_all(state, steps, cores, alpha)
    leaves = np.asarray(state.tree)[8:16]
    np.testing.assert_allclose(leaves[:4], 3.0, rtol=1e-6)
    np.testing.assert_allclose(leaves[4:], np.array([1, 4 + eps, 1, 1]) ** alpha, rtol=1e-5)
    assert int(state.position) == 4


def test_can_sample_and_validation():
    steps, cores = _stream(8, 2)
    example = _example(steps, cores)
    state = sequence_init(*example, 2, 16, seq_len=4)
    assert int(state.period) == 2  # default: half the sequence (R2D2: 80 / 40)
    assert not bool(sequence_can_sample(state, 1))
    state, _ = _push_all(state, steps, cores)  # pushes 4, 6, 8 emit: 6 sequences
    assert bool(sequence_can_sample(state, 6)) and not bool(sequence_can_sample(state, 7))
    for period in (0, 5):
        with pytest.raises(ValueError, match="period"):
            sequence_init(*example, 2, 16, seq_len=4, period=period)
    with pytest.raises(ValueError, match="shape"):
        sequence_push(state, jax.tree_util.tree_map(lambda x: x[0, :1], steps), cores[0], 1.0)


def test_jit_compiles_once():
    num_envs, seq_len, period, t_len = 2, 4, 2, 11
    steps, cores = _stream(t_len, num_envs, seed=5)
    state = sequence_init(*_example(steps, cores), num_envs, 6, seq_len, period)
    push = jax.jit(chex.assert_max_traces(sequence_push, n=1))
    sample = jax.jit(chex.assert_max_traces(replay.sequence_sample, n=1), static_argnums=2)
    update = jax.jit(chex.assert_max_traces(replay.sequence_update_priorities, n=1))
    for t in range(t_len):  # due and not-due pushes share one compiled program
        at_t = lambda x, t=t: jnp.asarray(x[t])
        state = push(
            state, jax.tree_util.tree_map(at_t, steps), jax.tree_util.tree_map(at_t, cores), 0.6
        )
        _, _, indices, _ = sample(state, jax.random.PRNGKey(t), 4, 0.4)
        state = update(state, indices, jnp.full((4,), float(t)), 0.6)
    slots, position, _, _ = _reference(t_len, num_envs, seq_len, period, 6)
    assert int(state.position) == position
    _check_buffer(state, steps, cores, slots, seq_len)


def test_vmap_population_traced_period_and_alpha():
    members, num_envs, seq_len, capacity, t_len = 3, 2, 4, 12, 14
    periods = np.array([1, 2, 4])
    alphas = jnp.array([0.0, 0.5, 1.0])
    steps, cores = _stream(t_len, num_envs, seed=6)
    example = _example(steps, cores)
    init = jax.vmap(lambda p: sequence_init(*example, num_envs, capacity, seq_len, p))
    state = init(jnp.asarray(periods))
    assert state.steps["obs"].shape == (members, capacity, seq_len, 2)
    # Member m sees the stream offset by 1000 * m.
    offset = lambda x, m: x + np.asarray(1000 * m, x.dtype) if x.dtype != bool else x
    per_member = [
        jax.tree_util.tree_map(lambda x, m=m: offset(x, m), (steps, cores)) for m in range(members)
    ]
    stacked = jax.tree_util.tree_map(
        lambda *xs: np.stack(xs, axis=1), *per_member
    )  # [T, M, E, ...]
    push = jax.vmap(sequence_push, in_axes=(0, 0, 0, 0))

    @jax.jit
    def run(state, xs, alphas):
        def body(s, x):
            return push(s, *x, alphas), None

        return jax.lax.scan(body, state, xs)[0]

    state = run(state, stacked, alphas)
    for m in range(members):
        slots, position, size, _ = _reference(t_len, num_envs, seq_len, int(periods[m]), capacity)
        member = jax.tree_util.tree_map(lambda x, m=m: x[m], state)
        assert int(member.position) == position and int(member.size) == size
        _check_buffer(member, *per_member[m], slots, seq_len)
    np.testing.assert_array_equal(state.size, [12, 12, 6])

    prios = jnp.tile(jnp.linspace(0.1, 3.0, capacity), (members, 1))
    update = jax.jit(jax.vmap(sequence_update_priorities, in_axes=(0, None, 0, 0)))
    state = update(state, jnp.arange(capacity), prios, alphas)
    keys = jax.random.split(jax.random.PRNGKey(7), members)
    sample = jax.jit(jax.vmap(sequence_sample, in_axes=(0, 0, None, None)), static_argnums=2)
    steps_b, start_b, indices, weights = sample(state, keys, 6, 1.0)
    assert indices.shape == (members, 6) and steps_b["obs"].shape == (members, 6, seq_len, 2)
    assert np.all(np.asarray(indices[2]) < 6)  # member 2 holds 6 sequences
    np.testing.assert_allclose(weights[0], 1.0, rtol=1e-5)  # alpha = 0: uniform
    for m in range(members):
        np.testing.assert_array_equal(
            steps_b["obs"][m], np.asarray(state.steps["obs"][m])[indices[m]]
        )
        np.testing.assert_array_equal(
            start_b[0][m], np.asarray(state.start_core_states[0][m])[indices[m]]
        )
