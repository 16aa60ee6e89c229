"""Tests of the JAX envs (against gymnasium and hand-derived values), the registry and the
EnvPool adapter."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.envs import (
    UnknownEnvError,
    env_spec,
    is_jax_env,
    list_env_ids,
    make_cartpole,
    make_catch,
    make_cave,
    make_deep_sea,
    make_env,
    make_key_door,
)
from jaxrl57.envs.cartpole import CartPoleState

NUM_ENVS = 16


def _batch_reset_step(env, num_envs=NUM_ENVS, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), num_envs)
    state, obs = jax.jit(jax.vmap(env.reset))(keys)
    actions = jnp.zeros((num_envs,), jnp.int32)
    step = jax.jit(jax.vmap(env.step))
    out = step(keys, state, actions)
    return obs, out


# ---------------------------------------------------------------- generic contract


@pytest.mark.parametrize(
    "env", [make_cartpole(), make_catch(), make_catch(size=16), make_cave(), make_cave(24, 2),
            make_deep_sea(12), make_key_door(6)],
    ids=["cartpole", "catch8", "catch16", "cave48x4", "cave24x2", "deepsea12", "keydoor6"],
)
def test_contract_under_jit_and_vmap(env):
    obs0, (state, obs, reward, terminated, truncated) = _batch_reset_step(env)
    spec = env.spec
    for o in (obs0, obs):
        chex.assert_shape(o, (NUM_ENVS, *spec.obs_shape))
        assert o.dtype == spec.obs_dtype
    chex.assert_shape([reward, terminated, truncated], (NUM_ENVS,))
    assert reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert spec.discrete and spec.num_actions >= 2


def test_step_compiles_once():
    env = make_catch()
    step = jax.jit(jax.vmap(chex.assert_max_traces(env.step, n=1)))
    keys = jax.random.split(jax.random.PRNGKey(0), NUM_ENVS)
    state, _ = jax.vmap(env.reset)(keys)
    for a in range(3):
        state, *_ = step(keys, state, jnp.full((NUM_ENVS,), a, jnp.int32))


# ---------------------------------------------------------------- CartPole


def _gym_cartpole():
    gymnasium = pytest.importorskip("gymnasium")
    return gymnasium.make("CartPole-v1")


def test_cartpole_matches_gymnasium_step_by_step():
    gym_env = _gym_cartpole()
    env = make_cartpole()
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    key = jax.random.PRNGKey(0)
    checked = 0
    for episode in range(5):
        gym_env.reset(seed=episode)
        state, obs = env.reset(jax.random.fold_in(key, episode))
        gym_env.unwrapped.state = np.asarray(obs, np.float64)
        for _ in range(500):
            action = int(rng.integers(2))
            g_obs, g_r, g_term, g_trunc, _ = gym_env.step(action)
            state, obs, r, term, trunc = step(key, state, jnp.int32(action))
            np.testing.assert_allclose(np.asarray(obs), g_obs, rtol=1e-4, atol=1e-5)
            assert float(r) == g_r == 1.0
            assert bool(term) == g_term and bool(trunc) == g_trunc
            checked += 1
            if g_term:
                break
        assert bool(term)
    assert checked > 50


@pytest.mark.parametrize(
    "physics",
    [(2.39, 1.0, 0.0, 0.0), (-2.39, -1.0, 0.0, 0.0), (0.0, 0.0, 0.2, 1.0), (0.0, 0.0, -0.2, -1.0)],
)
def test_cartpole_terminates_at_thresholds(physics):
    env = make_cartpole()
    gym_env = _gym_cartpole()
    gym_env.reset(seed=0)
    gym_env.unwrapped.state = np.asarray(physics, np.float64)
    _, _, g_term, _, _ = gym_env.step(1)
    state = CartPoleState(jnp.asarray(physics, jnp.float32), jnp.int32(0))
    _, obs, reward, term, trunc = env.step(jax.random.PRNGKey(0), state, jnp.int32(1))
    x, theta = float(obs[0]), float(obs[2])
    assert abs(x) > 2.4 or abs(theta) > 12 * 2 * math.pi / 360
    assert bool(term) and g_term and not bool(trunc) and float(reward) == 1.0
    # Just inside the bounds: not terminated.
    state = CartPoleState(jnp.asarray(physics, jnp.float32) * 0.5, jnp.int32(0))
    assert not bool(env.step(jax.random.PRNGKey(0), state, jnp.int32(1))[3])


def test_cartpole_truncates_at_500():
    env = make_cartpole()
    assert env.spec.max_episode_steps == 500
    state, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    state = state._replace(t=jnp.int32(498))
    state, _, _, term, trunc = step(jax.random.PRNGKey(0), state, jnp.int32(0))
    assert not bool(term) and not bool(trunc)
    state, _, _, term, trunc = step(jax.random.PRNGKey(0), state, jnp.int32(1))
    assert not bool(term) and bool(trunc) and int(state.t) == 500


# ---------------------------------------------------------------- Catch


def _catch_rollout(size, policy, num_envs, seed=0):
    """Runs `size - 1` steps of `num_envs` Catch games; returns per-step (r, term, trunc)."""
    env = make_catch(size)

    def run(key):
        reset_key, act_key = jax.random.split(key)
        state, _ = env.reset(reset_key)

        def body(state, k):
            action = policy(state, k)
            state, obs, r, term, trunc = env.step(k, state, action)
            return state, (r, term, trunc, obs)

        _, out = jax.lax.scan(body, state, jax.random.split(act_key, size - 1))
        return out

    keys = jax.random.split(jax.random.PRNGKey(seed), num_envs)
    return jax.jit(jax.vmap(run))(keys)


def _random_policy(state, key):
    return jax.random.randint(key, (), 0, 3)


def _perfect_policy(state, key):
    return jnp.sign(state.ball_col - state.paddle_col) + 1


@pytest.mark.parametrize("size", [8, 16])
def test_catch_random_policy_return(size):
    # The ball's column is uniform and independent of the paddle: P(catch) = 1 / size,
    # so E[return] = (+1) / size + (-1) (1 - 1 / size) = 2 / size - 1.
    num_envs = 4096
    r, term, trunc, _ = _catch_rollout(size, _random_policy, num_envs)
    returns = np.asarray(r.sum(axis=1))
    expected = 2 / size - 1
    stderr = math.sqrt(1 - expected**2) / math.sqrt(num_envs)
    assert abs(returns.mean() - expected) < 5 * stderr
    assert set(np.unique(returns)) <= {-1.0, 1.0}


@pytest.mark.parametrize("size", [8, 16])
def test_catch_perfect_policy_and_episode_length(size):
    r, term, trunc, obs = _catch_rollout(size, _perfect_policy, 256)
    np.testing.assert_array_equal(np.asarray(r.sum(axis=1)), 1.0)
    # Episodes last exactly size - 1 steps and never truncate.
    assert bool(term[:, -1].all()) and not bool(term[:, :-1].any())
    assert not bool(trunc.any())
    # Observations: the ball and the paddle, merged into one cell when caught.
    counts = np.asarray(obs.sum(axis=(2, 3, 4)))
    assert (counts[:, :-1] == 2).all() and (counts[:, -1] == 1).all()


def test_catch_observation_layout():
    env = make_catch(8)
    state, obs = env.reset(jax.random.PRNGKey(3))
    assert obs[0, int(state.ball_col), 0] == 1.0
    assert obs[7, 4, 0] == 1.0 and float(obs.sum()) == 2.0
    state, obs, *_ = env.step(jax.random.PRNGKey(0), state, jnp.int32(0))  # left
    assert int(state.paddle_col) == 3 and obs[7, 3, 0] == 1.0 and obs[1, int(state.ball_col), 0]


# ---------------------------------------------------------------- Cave


def _cave_rollout(env, action, steps, num_envs=NUM_ENVS):
    def run(key):
        reset_key, step_key = jax.random.split(key)
        state, obs = env.reset(reset_key)

        def body(state, k):
            state, obs, r, term, trunc = env.step(k, state, jnp.int32(action))
            return state, (obs, r, term, trunc, state.ceil, state.floor)

        return obs, jax.lax.scan(body, state, jax.random.split(step_key, steps))[1]

    keys = jax.random.split(jax.random.PRNGKey(1), num_envs)
    return jax.jit(jax.vmap(run))(keys)


@pytest.mark.parametrize("action", [0, 1])
def test_cave_constant_action_hits_a_wall(action):
    size = 48
    env = make_cave(size)
    _, (obs, r, term, trunc, _, _) = _cave_rollout(env, action, size)
    term = np.asarray(term)
    # Rows 0 and size - 1 are always wall and the player moves one row per step from the
    # middle of the passage, so it crashes within size / 2 + 1 steps.
    assert term.any(axis=1).all()
    first = term.argmax(axis=1)
    assert (first <= size // 2 + 1).all() and (first >= 3).all()
    r = np.asarray(r)
    for i, t in enumerate(first):
        np.testing.assert_array_equal(r[i, :t], 1.0)  # +1 per step survived
        assert r[i, t] == 0.0  # the crash step
    assert not np.asarray(trunc).any()


def test_cave_frame_stack_shifts_and_passage_stays_open():
    size, frames = 48, 4
    env = make_cave(size, frames)
    obs0, (obs, _, _, _, ceil, floor) = _cave_rollout(env, 1, 300, num_envs=4)
    obs0, obs = np.asarray(obs0), np.asarray(obs)
    assert (obs0 == obs0[..., :1]).all()  # reset fills the stack with the first frame
    np.testing.assert_array_equal(obs[:, 0, ..., :-1], obs0[..., 1:])
    np.testing.assert_array_equal(obs[:, 1:, ..., :-1], obs[:, :-1, ..., 1:])
    assert set(np.unique(obs)) <= {0, 128, 255}
    # The walls scroll left by one column per step (away from the player's cells: new column
    # px - 1 is old column px, the old player's column).
    px = size // 4
    keep = np.setdiff1d(np.arange(size - 1), [px - 1, px])
    new_walls = obs[:, 1:, :, :-1, -1][..., keep] == 255
    old_walls = obs[:, :-1, :, 1:, -1][..., keep] == 255
    np.testing.assert_array_equal(new_walls, old_walls)
    # The passage (the steps go on after the crash: the walls keep scrolling).
    ceil, floor = np.asarray(ceil), np.asarray(floor)
    gap = floor - ceil + 1
    assert (ceil >= 1).all() and (floor <= size - 2).all()
    assert (gap >= size // 3).all() and (gap <= size // 2).all()
    assert (np.abs(np.diff(ceil, axis=-1)) <= 1).all()
    assert (np.abs(np.diff(floor, axis=-1)) <= 1).all()


def test_cave_truncates_at_1000():
    env = make_cave(24)
    state, _ = env.reset(jax.random.PRNGKey(0))
    row = (state.ceil[24 // 4] + state.floor[24 // 4]) // 2
    state = state._replace(t=jnp.int32(999), player_row=row + 1)  # action 1 keeps it at row
    state, _, r, term, trunc = env.step(jax.random.PRNGKey(0), state, jnp.int32(1))
    assert not bool(term) and bool(trunc) and float(r) == 1.0


# ---------------------------------------------------------------- registry


def test_registry_makes_jax_envs():
    assert is_jax_env("jax:Catch") and not is_jax_env("CartPole-v1")
    assert make_env("jax:Catch", size=5).spec.obs_shape == (5, 5, 1)
    assert make_env("jax:CartPole-v1").spec.name == "jax:CartPole-v1"
    assert env_spec("jax:Cave", frames=2).obs_shape == (48, 48, 2)
    ids = list_env_ids()
    assert {"jax:CartPole-v1", "jax:Catch", "jax:Cave", "jax:DeepSea", "jax:KeyDoor"} <= set(ids)


@pytest.mark.envpool
@pytest.mark.parametrize("typo, suggestion", [("jax:catc", "jax:Catch"),
                                              ("Breakout-v4", "Breakout-v5"),
                                              ("breakout-V5", "Breakout-v5")])
def test_registry_suggests_close_ids(typo, suggestion):
    pytest.importorskip("envpool")
    with pytest.raises(UnknownEnvError, match=suggestion) as info:
        make_env(typo)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownEnvError):
        env_spec(typo)


# ---------------------------------------------------------------- EnvPool adapter


@pytest.mark.envpool
def test_envpool_spec_without_envs():
    pytest.importorskip("envpool")
    spec = env_spec("Breakout-v5")
    assert spec.obs_shape == (4, 84, 84) and spec.obs_dtype == np.uint8
    assert spec.num_actions == 4
    spec = env_spec("CartPole-v1")
    assert spec.obs_shape == (4,) and spec.num_actions == 2 and spec.max_episode_steps == 500
    spec = env_spec("Pendulum-v1")
    assert not spec.discrete and spec.action_low == (-2.0,) and spec.action_high == (2.0,)


@pytest.mark.envpool
def test_envpool_cartpole_transitions_follow_the_dynamics():
    pytest.importorskip("envpool")
    from jaxrl57.envs.envpool_env import make_envpool

    num_envs = 4
    envs = make_envpool("CartPole-v1", num_envs, seed=0)
    assert envs.spec == env_spec("CartPole-v1")
    # Our JAX dynamics predict EnvPool's next observation from the observation acted on:
    # this checks that `final_obs` is the transition's true next observation, including
    # for the last step of an episode, and that `obs` after a done is the new episode's.
    jax_step = jax.jit(jax.vmap(make_cartpole().step, in_axes=(None, 0, 0)))
    obs = envs.reset()
    assert obs.shape == (num_envs, 4) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    tally_r = np.zeros(num_envs)
    tally_len = np.zeros(num_envs, int)
    expected_returns, expected_lengths = [], []
    for _ in range(300):
        actions = rng.integers(0, 2, num_envs)
        state = CartPoleState(jnp.asarray(obs), jnp.zeros(num_envs, jnp.int32))
        _, pred, _, pred_term, _ = jax_step(jax.random.PRNGKey(0), state, jnp.asarray(actions))
        out = envs.step(actions)
        assert out.obs.shape == out.final_obs.shape == (num_envs, 4)
        assert out.reward.dtype == np.float32 and out.terminated.dtype == bool
        np.testing.assert_allclose(out.final_obs, np.asarray(pred), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(out.terminated, np.asarray(pred_term))
        np.testing.assert_array_equal(out.reward, 1.0)
        done = out.terminated | out.truncated
        np.testing.assert_array_equal(out.obs[~done], out.final_obs[~done])
        assert (np.abs(out.obs[done]) <= 0.05).all()  # fresh episodes
        tally_r += out.reward
        tally_len += 1
        for i in np.flatnonzero(done):  # envs end in env order within one step
            expected_returns.append(tally_r[i])
            expected_lengths.append(tally_len[i])
        tally_r[done] = 0
        tally_len[done] = 0
        obs = out.obs
    stats = envs.pop_episode_stats()
    assert len(expected_returns) > 10
    np.testing.assert_array_equal(stats.returns, expected_returns)
    np.testing.assert_array_equal(stats.lengths, expected_lengths)
    assert envs.pop_episode_returns().size == 0  # popped
    envs.close()


@pytest.mark.envpool
def test_envpool_breakout_eval_games():
    pytest.importorskip("envpool")
    from jaxrl57.envs.envpool_env import make_envpool

    # Evaluation plays the whole game with real rewards, whatever the agent trains with.
    envs = make_envpool("Breakout-v5", 2, seed=0, train=False, episodic_life=True,
                        reward_clip=True)
    assert envs.pool.config["episodic_life"] is False
    assert envs.pool.config["reward_clip"] is False
    assert envs.pool.config["repeat_action_probability"] == 0.25
    obs = envs.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    tally = np.zeros(2)
    expected = []
    for _ in range(600):
        out = envs.step(rng.integers(0, 4, 2))
        done = out.terminated | out.truncated
        tally += out.reward
        for i in np.flatnonzero(done):
            expected.append(tally[i])
            # A new game: EnvPool fills the whole stack with the first frame.
            assert (out.obs[i] == out.obs[i, -1:]).all()
            assert not (out.final_obs[i] == out.obs[i]).all()
        tally[done] = 0
    assert len(expected) >= 1
    np.testing.assert_array_equal(envs.pop_episode_returns(), expected)
    envs.close()


@pytest.mark.envpool
def test_envpool_breakout_train_lives():
    pytest.importorskip("envpool")
    from jaxrl57.envs.envpool_env import make_envpool

    # The DQN family's training settings (Mnih et al. 2015), passed by the runner.
    envs = make_envpool("Breakout-v5", 2, seed=1, train=True, episodic_life=True,
                        reward_clip=True)
    assert envs.pool.config["episodic_life"] and envs.pool.config["reward_clip"]
    envs.reset()
    rng = np.random.default_rng(1)
    num_terminated = 0
    continued = 0
    for _ in range(400):
        out = envs.step(rng.integers(0, 4, 2))
        assert out.reward.dtype == np.float32 and set(np.unique(out.reward)) <= {0.0, 1.0}
        for i in np.flatnonzero(out.terminated):
            num_terminated += 1
            if not (out.obs[i] == out.obs[i, -1:]).all():
                # A lost life: the same game goes on, the stack moves one frame on.
                np.testing.assert_array_equal(out.obs[i, :-1], out.final_obs[i, 1:])
                continued += 1
    stats = envs.pop_episode_stats()
    # Each game has 5 lives: a life loss is `terminated`, a game is counted once.
    assert len(stats.returns) >= 1 and continued >= 4
    assert num_terminated >= 5 * len(stats.returns)
    assert (stats.returns >= 0).all() and (stats.lengths > 20).all()
    envs.close()
