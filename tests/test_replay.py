"""Tests of jaxrl57.replay against NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.replay import (
    PrioritizedState,
    Transition,
    UniformState,
    nstep_emit,
    nstep_init,
    nstep_push,
    prioritized_add,
    prioritized_init,
    prioritized_sample,
    prioritized_update,
    sum_tree_find,
    sum_tree_init,
    sum_tree_set,
    sum_tree_total,
    uniform_add,
    uniform_init,
    uniform_sample,
)

# Jitted entry points (eager op-by-op dispatch is slow on CPU); the vmap tests jit their own.
uniform_add = jax.jit(uniform_add)
uniform_sample = jax.jit(uniform_sample, static_argnums=2)
sum_tree_set = jax.jit(sum_tree_set)
sum_tree_find = jax.jit(sum_tree_find)
prioritized_add = jax.jit(prioritized_add)
prioritized_sample = jax.jit(prioritized_sample, static_argnums=2)
prioritized_update = jax.jit(prioritized_update)
nstep_push = jax.jit(nstep_push)
nstep_emit = jax.jit(nstep_emit)


def _example(obs_shape=(3,), obs_dtype=jnp.float32):
    return Transition(
        obs=jnp.zeros(obs_shape, obs_dtype),
        action=jnp.zeros((), jnp.int32),
        reward=jnp.zeros((), jnp.float32),
        discount=jnp.zeros((), jnp.float32),
        next_obs=jnp.zeros(obs_shape, obs_dtype),
    )


def _batch(values, obs_shape=(3,), obs_dtype=jnp.float32):
    """Transitions whose every field encodes `values` (to identify them after sampling)."""
    v = np.asarray(values)
    obs = np.broadcast_to(v.reshape(v.shape + (1,) * len(obs_shape)), v.shape + obs_shape)
    return Transition(
        obs=jnp.asarray(obs, obs_dtype),
        action=jnp.asarray(v, jnp.int32),
        reward=jnp.asarray(v, jnp.float32),
        discount=jnp.asarray(v, jnp.float32),
        next_obs=jnp.asarray(obs + 1, obs_dtype),
    )


# ----------------------------------------------------------------------------- uniform


def test_uniform_ring_order_and_size():
    state = uniform_init(_example(), capacity=5)
    assert isinstance(state, UniformState)
    add = jax.jit(uniform_add)
    state = add(state, _batch([1, 2, 3]))
    assert int(state.size) == 3 and int(state.position) == 3
    np.testing.assert_array_equal(state.storage.reward, [1, 2, 3, 0, 0])
    state = add(state, _batch([4, 5, 6, 7]))
    assert int(state.size) == 5 and int(state.position) == 2
    np.testing.assert_array_equal(state.storage.reward, [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(state.storage.obs[:, 0], [6, 7, 3, 4, 5])
    # A batch larger than the capacity keeps its last `capacity` items in ring order.
    state = add(state, _batch(np.arange(10, 17)))  # 7 items, position 2 -> slots 4,0,1,2,3
    assert int(state.size) == 5 and int(state.position) == 4
    np.testing.assert_array_equal(state.storage.reward, [13, 14, 15, 16, 12])


def test_uniform_sample_only_filled():
    state = uniform_init(_example(), capacity=10)
    state = uniform_add(state, _batch([1, 2, 3, 4]))
    sample = jax.jit(uniform_sample, static_argnums=2)(state, jax.random.PRNGKey(0), 2000)
    rewards = np.asarray(sample.reward)
    assert rewards.shape == (2000,)
    assert set(np.unique(rewards)) == {1.0, 2.0, 3.0, 4.0}
    counts = np.bincount(rewards.astype(int), minlength=5)[1:]
    assert np.all(np.abs(counts - 500) < 100)
    # Fields of one transition stay together.
    np.testing.assert_array_equal(sample.obs[:, 0], sample.reward)
    np.testing.assert_array_equal(sample.next_obs[:, 0], sample.reward + 1)


def test_uniform_uint8_dtype():
    state = uniform_init(_example((4, 4), jnp.uint8), capacity=8)
    assert state.storage.obs.dtype == jnp.uint8
    state = uniform_add(state, _batch([200, 201], (4, 4), jnp.uint8))
    assert state.storage.obs.dtype == jnp.uint8
    sample = uniform_sample(state, jax.random.PRNGKey(1), 16)
    assert sample.obs.dtype == jnp.uint8 and sample.obs.shape == (16, 4, 4)
    assert set(np.unique(np.asarray(sample.obs))) <= {200, 201}


def test_uniform_jit_vmap_members():
    members, capacity = 3, 16
    init = jax.vmap(lambda _: uniform_init(_example(), capacity))
    state = init(jnp.arange(members))
    assert state.storage.obs.shape == (members, capacity, 3)
    data = _batch(np.arange(8)[None] + 100 * np.arange(members)[:, None])
    state = jax.jit(jax.vmap(uniform_add))(state, data)
    np.testing.assert_array_equal(state.size, [8, 8, 8])
    keys = jax.random.split(jax.random.PRNGKey(2), members)
    sample = jax.jit(jax.vmap(uniform_sample, in_axes=(0, 0, None)), static_argnums=2)(
        state, keys, 32
    )
    r = np.asarray(sample.reward)
    for m in range(members):
        assert np.all((r[m] >= 100 * m) & (r[m] < 100 * m + 8))
    offsets = r - 100 * np.arange(members)[:, None]
    assert not np.array_equal(offsets[0], offsets[1])
    assert not np.array_equal(offsets[1], offsets[2])


# ----------------------------------------------------------------------------- sum tree


def _check_consistent(tree):
    tree = np.asarray(tree, np.float64)
    c = tree.shape[0] // 2
    parents = np.arange(1, c)
    np.testing.assert_allclose(tree[parents], tree[2 * parents] + tree[2 * parents + 1], rtol=1e-5)


def test_sum_tree_set_total_find():
    rng = np.random.default_rng(0)
    capacity = 100
    tree = sum_tree_init(capacity)
    assert tree.shape == (256,)
    leaves = np.zeros(capacity, np.float32)
    set_fn = jax.jit(sum_tree_set)
    for _ in range(5):
        idx = rng.integers(0, capacity, size=64)
        idx[5] = idx[40] = idx[63]  # duplicates: the last write wins
        vals = rng.uniform(0.0, 3.0, size=64).astype(np.float32)
        tree = set_fn(tree, jnp.asarray(idx), jnp.asarray(vals))
        for i, v in zip(idx, vals, strict=True):
            leaves[i] = v
        np.testing.assert_array_equal(np.asarray(tree)[128 : 128 + capacity], leaves)
        np.testing.assert_array_equal(np.asarray(tree)[128 + capacity :], 0.0)
        _check_consistent(tree)
    total = float(sum_tree_total(tree))
    np.testing.assert_allclose(total, leaves.astype(np.float64).sum(), rtol=1e-5)

    cums = np.cumsum(leaves.astype(np.float64))
    targets = rng.uniform(0.0, total, size=5000).astype(np.float32)
    found = np.asarray(jax.jit(sum_tree_find)(tree, jnp.asarray(targets)))
    expected = np.searchsorted(cums, targets.astype(np.float64), side="right")
    mismatch = found != expected
    # Only targets within float32 round-off of an interval boundary may differ.
    if mismatch.any():
        near = np.min(np.abs(targets[mismatch, None] - cums[None, :]), axis=1)
        assert np.all(near < 1e-4 * total)
    assert mismatch.mean() < 1e-3
    assert np.all(leaves[found] > 0)


def test_sum_tree_find_guards_empty_leaves():
    tree = sum_tree_init(16)
    vals = np.array([0.3, 0.0, 0.7, 0.1, 0.0, 0.2, 0.4, 0.3, 0.2, 0.1], np.float32)
    tree = sum_tree_set(tree, jnp.arange(10), jnp.asarray(vals))
    total = float(sum_tree_total(tree))
    targets = jnp.asarray([0.0, 0.3, total, total * 1.001, total + 1.0, -1.0, total - 1e-7])
    found = np.asarray(sum_tree_find(tree, targets))
    assert np.all(found < 10)
    assert np.all(vals[found] > 0)
    assert found[0] == 0 and found[1] == 2 and found[5] == 0
    assert found[2] == 9 and found[3] == 9 and found[4] == 9


def test_sum_tree_capacity_one():
    tree = sum_tree_set(sum_tree_init(1), jnp.array([0]), jnp.array([2.0]))
    assert float(sum_tree_total(tree)) == 2.0
    np.testing.assert_array_equal(sum_tree_find(tree, jnp.array([0.0, 1.9])), [0, 0])


# ----------------------------------------------------------------------------- prioritized


def _filled_prioritized(capacity, priorities, alpha):
    state = prioritized_init(_example(), capacity)
    state = prioritized_add(state, _batch(np.arange(capacity)), alpha)
    return prioritized_update(state, jnp.arange(capacity), jnp.asarray(priorities), alpha)


def test_prioritized_frequencies_and_weights():
    rng = np.random.default_rng(1)
    capacity, alpha, beta, eps = 50, 0.6, 0.4, 1e-6
    priorities = rng.uniform(0.01, 2.0, size=capacity).astype(np.float32)
    state = jax.jit(_filled_prioritized, static_argnums=0)(capacity, priorities, alpha)
    assert isinstance(state, PrioritizedState)

    num_batches, batch_size = 2000, 10
    keys = jax.random.split(jax.random.PRNGKey(3), num_batches)
    sample = jax.jit(jax.vmap(prioritized_sample, in_axes=(None, 0, None, None)), static_argnums=2)
    transitions, indices, weights = sample(state, keys, batch_size, beta)
    indices = np.asarray(indices)
    assert indices.dtype == np.int32 and weights.dtype == jnp.float32
    np.testing.assert_array_equal(transitions.reward, indices)  # stored item i has reward i

    p_alpha = (priorities.astype(np.float64) + eps) ** alpha
    probs = p_alpha / p_alpha.sum()
    counts = np.bincount(indices.ravel(), minlength=capacity)
    expected = probs * indices.size
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 100.0, chi2  # 49 degrees of freedom; 99.99% quantile ~ 93

    w = (capacity * probs[indices]) ** (-beta)
    w = w / w.max(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, w, rtol=1e-4)
    np.testing.assert_allclose(np.max(np.asarray(weights), axis=1), 1.0)


def test_prioritized_stratified_one_per_segment():
    # Equal priorities: stratified sampling returns exactly one item per segment.
    state = prioritized_init(_example(), 8)
    state = prioritized_add(state, _batch(np.arange(8)), 0.5)
    _, indices, weights = prioritized_sample(state, jax.random.PRNGKey(0), 8, 0.5)
    np.testing.assert_array_equal(indices, np.arange(8))
    np.testing.assert_allclose(weights, 1.0)


def test_prioritized_partial_fill_and_max_priority():
    alpha = 0.5
    state = prioritized_init(_example(), 20)
    np.testing.assert_allclose(state.max_priority, 1.0)
    state = prioritized_add(state, _batch([0, 1, 2]), alpha)
    _, indices, _ = prioritized_sample(state, jax.random.PRNGKey(4), 64, 1.0)
    assert np.all(np.asarray(indices) < 3)

    state = prioritized_update(state, jnp.array([1]), jnp.array([-4.0]), alpha)
    np.testing.assert_allclose(state.max_priority, 4.0)
    state = prioritized_update(state, jnp.array([2]), jnp.array([0.5]), alpha)
    np.testing.assert_allclose(state.max_priority, 4.0)
    state = prioritized_add(state, _batch([3, 4]), alpha)
    leaves = np.asarray(state.tree)[32:52]
    np.testing.assert_allclose(leaves[:5], [1.0, 2.0, (0.5 + 1e-6) ** 0.5, 2.0, 2.0], rtol=1e-5)
    np.testing.assert_array_equal(leaves[5:], 0.0)
    assert int(state.size) == 5 and int(state.position) == 5


def test_prioritized_jit_vmap_members_traced_hparams():
    members, capacity = 3, 32
    state = jax.vmap(lambda _: prioritized_init(_example(), capacity))(jnp.arange(members))
    alphas = jnp.array([0.0, 0.6, 1.0])
    betas = jnp.array([0.4, 0.7, 1.0])
    data = _batch(np.arange(capacity)[None] + 100 * np.arange(members)[:, None])
    state = jax.jit(jax.vmap(prioritized_add))(state, data, alphas)
    prios = jnp.tile(jnp.linspace(0.1, 3.0, capacity), (members, 1))
    update = jax.jit(jax.vmap(prioritized_update, in_axes=(0, None, 0, 0)))
    state = update(state, jnp.arange(capacity), prios, alphas)
    np.testing.assert_allclose(state.max_priority, 3.0, rtol=1e-6)
    keys = jax.random.split(jax.random.PRNGKey(5), members)
    sample = jax.jit(jax.vmap(prioritized_sample, in_axes=(0, 0, None, 0)), static_argnums=2)
    transitions, indices, weights = sample(state, keys, 16, betas)
    assert indices.shape == (members, 16) and weights.shape == (members, 16)
    np.testing.assert_array_equal(transitions.reward, indices + 100 * np.arange(members)[:, None])
    # alpha = 0: all priorities equal, so every weight is 1.
    np.testing.assert_allclose(weights[0], 1.0, rtol=1e-5)
    assert not np.array_equal(indices[1], indices[2])
    assert not np.array_equal(indices[0], indices[1])


# ----------------------------------------------------------------------------- n-step


def _nstep_reference(obs, action, reward, term, trunc, next_obs, gamma, n):
    """Per-env loop over a stream [T, E, ...]: transition starting at every t <= T - n."""
    t_len, num_envs = reward.shape
    out = []
    for t in range(t_len - n + 1):
        rows = []
        for e in range(num_envs):
            ret, disc, nxt = 0.0, None, None
            for k in range(n):
                ret += gamma**k * reward[t + k, e]
                if term[t + k, e]:
                    disc, nxt = 0.0, next_obs[t + k, e]
                    break
                if trunc[t + k, e]:
                    disc, nxt = gamma ** (k + 1), next_obs[t + k, e]
                    break
            if disc is None:
                disc, nxt = gamma**n, next_obs[t + n - 1, e]
            rows.append((obs[t, e], action[t, e], ret, disc, nxt))
        out.append(rows)
    return out


def _random_stream(seed, t_len, num_envs, obs_dim=2):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(t_len, num_envs, obs_dim)).astype(np.float32)
    next_obs = rng.normal(size=(t_len, num_envs, obs_dim)).astype(np.float32)
    action = rng.integers(0, 4, size=(t_len, num_envs)).astype(np.int32)
    reward = rng.normal(size=(t_len, num_envs)).astype(np.float32)
    u = rng.uniform(size=(t_len, num_envs))
    term = u < 0.15
    trunc = (u >= 0.15) & (u < 0.3)
    trunc |= (rng.uniform(size=(t_len, num_envs)) < 0.05) & term  # some steps are both
    return obs, action, reward, term, trunc, next_obs


@pytest.mark.parametrize("n", [1, 3])
def test_nstep_against_reference(n):
    gamma = 0.9
    num_envs, t_len = 4, 60
    stream = _random_stream(n, t_len, num_envs)
    obs, action, reward, term, trunc, next_obs = stream
    assert term.any() and trunc.any()
    expected = _nstep_reference(*stream, gamma, n)

    def step(state, xs):
        state = nstep_push(state, *xs)
        transition, valid = nstep_emit(state, gamma)
        return state, (transition, valid)

    state = nstep_init(jnp.zeros(2, jnp.float32), num_envs, n)
    xs = tuple(jnp.asarray(x) for x in stream)
    _, (tr, valid) = jax.jit(lambda s, xs: jax.lax.scan(step, s, xs))(state, xs)
    tr = jax.tree_util.tree_map(np.asarray, tr)
    valid = np.asarray(valid)
    np.testing.assert_array_equal(valid, np.arange(t_len) >= n - 1)
    for t, rows in enumerate(expected):
        i = t + n - 1
        for e, (o, a, r, d, nx) in enumerate(rows):
            np.testing.assert_allclose(tr.obs[i, e], o)
            assert int(tr.action[i, e]) == a
            np.testing.assert_allclose(tr.reward[i, e], r, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(tr.discount[i, e], d, rtol=1e-6)
            np.testing.assert_allclose(tr.next_obs[i, e], nx)
    if n == 1:
        np.testing.assert_allclose(tr.reward, reward)
        np.testing.assert_allclose(tr.discount, gamma * (1.0 - term))
        np.testing.assert_allclose(tr.next_obs, next_obs)


def test_nstep_no_leak_across_episodes():
    gamma, n = 0.5, 3
    state = nstep_init(jnp.zeros((), jnp.float32), num_envs=2, n=n)
    f, t = False, True
    # env 0 terminates at step 1, env 1 is truncated at step 1; step 2 is a new episode.
    steps = [
        ([0.0, 0.0], [1.0, 1.0], [f, f], [f, f], [10.0, 10.0]),
        ([10.0, 10.0], [2.0, 2.0], [t, f], [f, t], [11.0, 11.0]),
        ([50.0, 50.0], [100.0, 100.0], [f, f], [f, f], [51.0, 51.0]),
    ]
    for i, (o, r, te, tr, no) in enumerate(steps):
        state = nstep_push(
            state,
            jnp.asarray(o),
            jnp.zeros(2, jnp.int32),
            jnp.asarray(r),
            jnp.asarray(te),
            jnp.asarray(tr),
            jnp.asarray(no),
        )
        _, valid = nstep_emit(state, gamma)
        assert bool(valid) == (i == n - 1)
    transition, _ = nstep_emit(state, gamma)
    np.testing.assert_allclose(transition.reward, [1.0 + 0.5 * 2.0] * 2)
    np.testing.assert_allclose(transition.discount, [0.0, 0.25])
    np.testing.assert_allclose(transition.next_obs, [11.0, 11.0])
    np.testing.assert_allclose(transition.obs, [0.0, 0.0])


def test_nstep_vmap_members_traced_gamma():
    members, num_envs, n = 3, 2, 3
    gammas = jnp.array([0.5, 0.9, 0.99])
    init = jax.vmap(lambda _: nstep_init(jnp.zeros((2, 2), jnp.uint8), num_envs, n))
    state = init(jnp.arange(members))
    assert state.steps.obs.dtype == jnp.uint8
    assert state.steps.obs.shape == (members, n, num_envs, 2, 2)
    push = jax.jit(jax.vmap(nstep_push))
    ones = jnp.ones((members, num_envs))
    o = jnp.ones((members, num_envs, 2, 2), jnp.uint8)
    no_end = jnp.zeros((members, num_envs), bool)
    for _ in range(n):
        state = push(state, o, ones.astype(jnp.int32), ones, no_end, no_end, o)
    transition, valid = jax.jit(jax.vmap(nstep_emit))(state, gammas)
    assert np.all(np.asarray(valid))
    g = np.asarray(gammas)[:, None]
    np.testing.assert_allclose(transition.reward, np.broadcast_to(1 + g + g**2, (3, 2)), rtol=1e-6)
    np.testing.assert_allclose(transition.discount, np.broadcast_to(g**3, (3, 2)), rtol=1e-6)
    assert transition.next_obs.dtype == jnp.uint8
