"""`jaxrl57.bandit`: Agent57's sliding-window UCB meta-controller (Badia et al.
2020b, sec. 4 and appendix D)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import bandit


def _play(state, means_per_episode, key, noise=0.1):
    """Runs the bandit over episodes whose arm means are `means_per_episode` [T, A]
    (Gaussian returns); returns the final state and the arms chosen [T]."""

    def episode(state, inputs):
        means, key = inputs
        select_key, reward_key = jax.random.split(key)
        arm = bandit.ucb_select(state, select_key)
        reward = means[arm] + noise * jax.random.normal(reward_key)
        return bandit.ucb_update(state, arm, reward), arm

    keys = jax.random.split(key, means_per_episode.shape[0])
    return jax.lax.scan(episode, state, (means_per_episode, keys))


def test_scores_are_window_means_plus_the_bonus():
    state = bandit.ucb_init(3, window_size=4, beta=2.0)
    for arm, reward in [(0, 9.0), (0, 1.0), (1, 2.0), (0, 3.0), (1, 4.0)]:
        state = bandit.ucb_update(state, arm, reward)
    # The window holds the last 4 episodes: (0, 1), (1, 2), (0, 3), (1, 4); the 9 left.
    scores = np.asarray(bandit.ucb_scores(state))
    np.testing.assert_allclose(scores[:2], [2.0 + 2 / np.sqrt(2), 3.0 + 2 / np.sqrt(2)],
                               rtol=1e-6)
    assert scores[2] == np.inf  # never played in the window: tried first
    np.testing.assert_array_equal(state.pulls, [3, 2, 0])
    assert int(bandit.ucb_select(state._replace(epsilon=jnp.float32(0.0)),
                                 jax.random.PRNGKey(0))) == 2


def test_the_greedy_arm_reads_only_played_arms():
    state = bandit.ucb_init(4, window_size=8)
    assert int(bandit.greedy_arm(state)) == 0  # nothing played yet
    for arm, reward in [(1, 2.0), (2, 5.0), (2, 3.0), (3, 1.0)]:
        state = bandit.ucb_update(state, arm, reward)
    mean, n = bandit.window_means(state)
    np.testing.assert_allclose(mean, [0.0, 2.0, 4.0, 1.0])
    np.testing.assert_array_equal(n, [0, 1, 2, 1])
    assert int(bandit.greedy_arm(state)) == 2  # not arm 0, whose UCB score is +inf


def test_each_arm_is_played_once_first():
    state = bandit.ucb_init(5, epsilon=1.0)
    arms = []
    for k in range(5):
        arm = bandit.ucb_select(state, jax.random.PRNGKey(k))
        arms.append(int(arm))
        state = bandit.ucb_update(state, arm, 0.0)
    assert arms == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(4))
def test_stationary_arms_concentrate_on_the_best(seed):
    means = jnp.tile(jnp.array([0.0, 0.5, 1.0, 0.2]), (1000, 1))
    state, arms = jax.jit(_play)(bandit.ucb_init(4), means, jax.random.PRNGKey(seed))
    late = np.bincount(np.asarray(arms[500:]), minlength=4) / 500
    # epsilon 0.5 spreads half the episodes uniformly: the best arm gets 0.5 + 0.125.
    assert late[2] > 0.5 and late[[0, 1, 3]].max() < 0.25, late
    assert int(state.count) == 1000 and int(state.pulls.sum()) == 1000


def test_the_window_follows_a_switching_best_arm():
    """The best arm changes from 0 to 3 after 500 episodes: a 90-episode window
    forgets the old returns and follows; a window holding the whole history keeps
    arm 0's past mean and lags."""
    before = jnp.tile(jnp.array([1.0, 0.3, 0.2, 0.0]), (500, 1))
    after = jnp.tile(jnp.array([0.0, 0.3, 0.2, 1.0]), (300, 1))
    means = jnp.concatenate([before, after])
    play = jax.jit(_play)
    follow, lag = [], []
    for seed in range(4):
        key = jax.random.PRNGKey(seed)
        _, arms = play(bandit.ucb_init(4, window_size=90), means, key)
        follow.append(np.mean(np.asarray(arms[600:]) == 3))
        _, arms = play(bandit.ucb_init(4, window_size=1000), means, key)
        lag.append(np.mean(np.asarray(arms[600:]) == 3))
    assert min(follow) > 0.5, follow
    assert max(lag) < min(follow) - 0.15, (lag, follow)


def test_one_bandit_per_env_under_vmap_and_traced_settings():
    num_envs = 6
    states = jax.vmap(lambda b: bandit.ucb_init(8, beta=b))(jnp.linspace(0.5, 2.0, num_envs))
    select = jax.jit(jax.vmap(bandit.ucb_select))
    update = jax.jit(jax.vmap(bandit.ucb_update))
    key = jax.random.PRNGKey(0)
    for _ in range(20):
        key, sub = jax.random.split(key)
        arms = select(states, jax.random.split(sub, num_envs))
        states = update(states, arms, arms.astype(jnp.float32))
    assert arms.shape == (num_envs,) and arms.dtype == jnp.int32
    assert np.all((np.asarray(arms) >= 0) & (np.asarray(arms) < 8))
    np.testing.assert_array_equal(states.count, 20)
    assert select._cache_size() == 1 and update._cache_size() == 1


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="num_arms and window_size"):
        bandit.ucb_init(0)
    with pytest.raises(ValueError, match="num_arms and window_size"):
        bandit.ucb_init(4, window_size=0)
