"""`jaxrl57.intrinsic`: NGU's episodic and lifelong novelty against NumPy
transcriptions of the paper (Badia et al. 2020a, Algorithm 1 and sec. 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import intrinsic

PAPER = dict(kernel_epsilon=1e-4, cluster_distance=0.008, pseudo_count=1e-3, max_similarity=8.0)


def _novelty_numpy(sq_distances, mean_sq, eps, xi, c, s_max):
    """Algorithm 1, lines 4-8, one step at a time."""
    kernel_sum = 0.0
    for d in sq_distances:
        if not np.isfinite(d):
            continue  # a neighbour the memory does not have
        normalized = d / mean_sq if mean_sq > 0 else 0.0
        kernel_sum += eps / (max(normalized - xi, 0.0) + eps)
    s = np.sqrt(kernel_sum) + c
    return 0.0 if s > s_max else 1.0 / s


def _episode_numpy(embeddings, k, capacity, **kw):
    """Algorithm 1 over one episode from an empty memory: kNN among the earlier
    steps still in the ring, the running mean over every distance found, and a
    neighbour the memory lacks at the mean distance (`episodic_memory_step`)."""
    memory, total, count, rewards = [], 0.0, 0, []
    for e in embeddings:
        d = sorted(float(np.sum((m - e) ** 2)) for m in memory)[:k]
        total, count = total + sum(d), count + len(d)
        mean = total / count if count and total > 0 else 1.0
        d = d + [mean] * (k - len(d))
        rewards.append(_novelty_numpy(d, mean, kw["kernel_epsilon"], kw["cluster_distance"],
                                      kw["pseudo_count"], kw["max_similarity"]))
        memory = (memory + [e])[-capacity:]
    return np.array(rewards)


def _empty_memory_reward(k, eps=1e-4, xi=0.008, c=1e-3):
    """k neighbours at the mean distance: normalised distance 1 each."""
    return 1.0 / (np.sqrt(k * eps / (1.0 - xi + eps)) + c)


def test_episodic_novelty_reward_is_algorithm_1():
    rng = np.random.default_rng(0)
    # Distances around the mean, some well inside the cluster distance (clipped to 0).
    sq = rng.uniform(0.0, 2.0, (64, 10)).astype(np.float32)
    sq[:16] *= 1e-3
    mean = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    got = np.asarray(jax.jit(intrinsic.episodic_novelty_reward)(sq, mean))
    want = [_novelty_numpy(s, m, 1e-4, 0.008, 1e-3, 8.0) for s, m in zip(sq, mean, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Inside the cluster distance every kernel is 1: s = sqrt(k) + c.
    np.testing.assert_allclose(got[:16], 1 / (np.sqrt(10) + 1e-3), rtol=1e-3)


def test_the_max_similarity_cut_and_missing_neighbours():
    # 100 neighbours at distance 0: s = 10.001 > 8, so no reward; 63 give s = 7.94.
    zeros = jnp.zeros((2, 100))
    got = intrinsic.episodic_novelty_reward(zeros.at[1, 63:].set(jnp.inf), jnp.ones(2))
    np.testing.assert_allclose(got, [0.0, 1 / (np.sqrt(63) + 1e-3)], rtol=1e-6)
    # No neighbour at all: the reward of a count of zero, 1 / c.
    empty = intrinsic.episodic_novelty_reward(jnp.full((10,), jnp.inf), jnp.zeros(()))
    np.testing.assert_allclose(empty, 1e3, rtol=1e-6)


@pytest.mark.parametrize("capacity", [40, 7])
def test_the_memory_over_an_episode_matches_numpy(capacity):
    rng = np.random.default_rng(1)
    # Revisits: some steps repeat an earlier embedding up to a little noise.
    embeddings = rng.normal(size=(30, 5)).astype(np.float32)
    embeddings[10:20] = embeddings[:10] + 1e-3 * rng.normal(size=(10, 5))

    def run(memory, e):
        reward, memory = intrinsic.episodic_memory_step(memory, e, num_neighbors=4, **PAPER)
        return memory, reward

    memory, rewards = jax.lax.scan(run, intrinsic.episodic_memory_init(capacity, 5),
                                   embeddings)
    want = _episode_numpy(embeddings, 4, capacity, **PAPER)
    np.testing.assert_allclose(rewards, want, rtol=2e-5)
    # The first step meets an empty memory: every neighbour at the mean distance.
    assert rewards[0] == pytest.approx(_empty_memory_reward(4), rel=1e-5)
    assert int(memory.size) == min(capacity, 30)
    if capacity == 40:  # a revisit pays less than the first visit
        assert np.all(np.asarray(rewards[10:20]) < np.asarray(rewards[1:10]).min())


def test_an_episode_start_empties_the_memory_and_keeps_the_running_mean():
    rng = np.random.default_rng(2)
    embeddings = jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
    step = jax.jit(lambda m, e: intrinsic.episodic_memory_step(m, e, num_neighbors=3))
    memory = intrinsic.episodic_memory_init(16, 3)
    for e in embeddings:
        _, memory = step(memory, e)
    mean_before = float(memory.mean_sq_distance)
    memory = intrinsic.episodic_memory_reset(memory, jnp.asarray(True))
    assert int(memory.size) == 0 and float(memory.mean_sq_distance) == mean_before
    # The first state of the new episode -- the last state of the old one -- gets
    # the reward of an empty memory, as a fresh memory gives it.
    reward, memory = step(memory, embeddings[-1])
    fresh, _ = step(intrinsic.episodic_memory_init(16, 3), embeddings[-1])
    assert float(reward) == pytest.approx(float(fresh), rel=1e-6)
    assert float(reward) == pytest.approx(_empty_memory_reward(3), rel=1e-5)
    # The second step sees only the first, at distance 0 (kernel 1), and two
    # neighbours at the mean distance.
    reward, _ = step(memory, embeddings[-1])
    kernel_at_mean = 1e-4 / (1.0 - 0.008 + 1e-4)
    assert float(reward) == pytest.approx(1 / (np.sqrt(1 + 2 * kernel_at_mean) + 1e-3),
                                          rel=1e-5)
    kept = intrinsic.episodic_memory_reset(memory, jnp.asarray(False))
    assert int(kept.size) == int(memory.size) == 1


def test_per_env_memories_under_vmap_and_jit_compile_once():
    num_envs, capacity, dim = 4, 32, 8
    memories = jax.vmap(lambda _: intrinsic.episodic_memory_init(capacity, dim))(
        jnp.arange(num_envs))

    @jax.jit
    def step(memories, embeddings, first):
        memories = intrinsic.episodic_memory_reset(memories, first)
        return jax.vmap(intrinsic.episodic_memory_step)(memories, embeddings)

    rng = np.random.default_rng(3)
    for first in ([False] * 4, [False] * 4, [False, True, False, False]):
        rewards, memories = step(memories, jnp.asarray(rng.normal(size=(num_envs, dim)),
                                                       jnp.float32), jnp.array(first))
    assert rewards.shape == (num_envs,) and rewards.dtype == jnp.float32
    assert memories.embeddings.shape == (num_envs, capacity, dim)
    assert step._cache_size() == 1
    # Only env 1 began an episode at the third step: its memory held nothing.
    np.testing.assert_array_equal(memories.size, [3, 1, 3, 3])
    assert float(rewards[1]) == pytest.approx(_empty_memory_reward(10), rel=1e-5)


def test_running_stats_are_the_mean_and_variance_of_all_samples():
    rng = np.random.default_rng(4)
    batches = [rng.normal(3.0, 2.0, (n, 2)).astype(np.float32) for n in (1, 7, 50, 3)]
    masks = [np.ones(1, bool), rng.random(7) < 0.5, np.ones(50, bool), np.zeros(3, bool)]
    stats = intrinsic.running_stats_init((2,))
    update = jax.jit(intrinsic.running_stats_update)
    for b, m in zip(batches, masks, strict=True):
        stats = update(stats, b, m)
    seen = np.concatenate([b[m] for b, m in zip(batches, masks, strict=True)])
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4)
    assert float(stats.count) == len(seen)
    # Before any sample, standardising changes nothing.
    fresh = intrinsic.running_stats_init((2,))
    np.testing.assert_allclose(intrinsic.normalize_observation(fresh, [0.5, -2.0]),
                               [0.5, -2.0], rtol=1e-6)


def test_observation_normalisation_whitens_and_clips_at_5():
    stats = intrinsic.RunningStats(jnp.array([1.0, -1.0]), jnp.array([4.0, 0.25]),
                                   jnp.array(10.0))
    got = intrinsic.normalize_observation(stats, jnp.array([[3.0, -1.5], [100.0, -100.0]]))
    np.testing.assert_allclose(got, [[1.0, -1.0], [5.0, -5.0]], rtol=1e-6)


def test_lifelong_modulator_and_the_ngu_reward():
    stats = intrinsic.RunningStats(jnp.array(2.0), jnp.array(4.0), jnp.array(100.0))
    alpha = intrinsic.lifelong_modulator(jnp.array([0.0, 2.0, 4.0, 20.0]), stats)
    np.testing.assert_allclose(alpha, [0.0, 1.0, 2.0, 10.0], rtol=1e-6)
    reward = intrinsic.ngu_intrinsic_reward(jnp.full(4, 0.5), alpha)
    np.testing.assert_allclose(reward, [0.5, 0.5, 1.0, 2.5], rtol=1e-6)  # alpha in [1, 5]
    reward = intrinsic.ngu_intrinsic_reward(jnp.full(4, 0.5), alpha, max_modulator=3.0)
    np.testing.assert_allclose(reward, [0.5, 0.5, 1.0, 1.5], rtol=1e-6)


def test_rnd_error_trains_the_predictor_only():
    p = jnp.array([[1.0, 2.0], [0.0, -1.0]])
    t = jnp.array([[0.5, 2.5], [0.0, 1.0]])
    np.testing.assert_allclose(intrinsic.rnd_error(p, t), [0.5, 4.0], rtol=1e-6)
    dp, dt = jax.grad(lambda p, t: jnp.mean(intrinsic.rnd_error(p, t)), argnums=(0, 1))(p, t)
    np.testing.assert_allclose(dp, (p - t), rtol=1e-6)  # d/dp of mean_b sum (p - t)^2
    np.testing.assert_array_equal(dt, jnp.zeros_like(t))


def test_running_stats_with_a_window_follow_a_drifting_quantity():
    stats_all = stats_window = intrinsic.running_stats_init()
    update = jax.jit(intrinsic.running_stats_update)
    # An error that falls a hundredfold: 500 samples at 100, then 1,000 at 1.
    for level, batches in ((100.0, 50), (1.0, 100)):
        for _ in range(batches):
            batch = level + 0.1 * level * jnp.asarray(np.random.default_rng(0).normal(size=10),
                                                      jnp.float32)
            stats_all = update(stats_all, batch)
            stats_window = update(stats_window, batch, None, 100.0)
    assert float(stats_all.mean) == pytest.approx(34.0, rel=0.02)  # all-time
    # The old level's weight decays as (100 / 110) per batch of 10: 7e-5 after 100.
    assert float(stats_window.mean) == pytest.approx(1.0, rel=0.02)
    assert float(stats_window.count) == 110.0 and float(stats_all.count) == 1500.0


def test_the_neighbour_distance_mean_can_forget_an_old_scale():
    """An embedding that shrinks tenfold: with a window the running mean d_m^2
    follows it; over all distances it stays near the old scale."""
    rng = np.random.default_rng(5)
    step = jax.jit(intrinsic.episodic_memory_step, static_argnames="num_neighbors")
    means = {}
    for window in (jnp.inf, 50.0):
        memory = intrinsic.episodic_memory_init(64, 4)
        for scale in (1.0, 0.1):
            for _ in range(3):  # three episodes at each scale
                memory = intrinsic.episodic_memory_reset(memory, jnp.asarray(True))
                for e in rng.normal(size=(20, 4)) * scale:
                    _, memory = step(memory, jnp.asarray(e, jnp.float32), num_neighbors=3,
                                     distance_window=window)
        means[window] = float(memory.mean_sq_distance)
    # Squared distances scale with s^2: the recent ones are 0.01 of the old, and
    # the all-time mean holds half of each.
    assert means[50.0] < 0.2 * means[jnp.inf]
