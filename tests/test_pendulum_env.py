"""Tests of Pendulum-v1 in JAX (jaxrl57/envs/pendulum.py) and its masked variant
(jaxrl57/envs/memory.py): hand-computed steps, gymnasium's Pendulum-v1 as the reference,
reset, jit/vmap, the drawing and the registry."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.envs import (
    env_spec,
    is_jax_env,
    list_env_ids,
    make_env,
    make_masked_pendulum,
    make_pendulum,
    render,
)
from jaxrl57.envs.pendulum import RENDER_SIZE, PendulumState, render_pendulum

NUM_ENVS = 16
KEY = jax.random.PRNGKey(0)
BG, ROD, AXLE = (np.array(c, np.uint8) for c in (render.BACKGROUND, render.POLE,
                                                  render.FOREGROUND))


def _state(theta, theta_dot, t=0):
    return PendulumState(jnp.array([theta, theta_dot], jnp.float32), jnp.int32(t))


def _torque(u):
    return jnp.array([u], jnp.float32)


# ---------------------------------------------------------------- hand-computed steps


def _normalize(x):
    return (x + math.pi) % (2 * math.pi) - math.pi


@pytest.mark.parametrize(
    "theta, theta_dot, u, clipped_u, new_theta_dot",
    [
        # At rest upright: only the torque acts, 3 u dt.
        (0.0, 0.0, 1.0, 1.0, 0.15),
        # Horizontal, torque 5 clipped to 2: 1 + (15 + 6) dt.
        (math.pi / 2, 1.0, 5.0, 2.0, 2.05),
        # The same from 7.9 rad/s: 8.95 clipped to the max speed.
        (math.pi / 2, 7.9, 2.0, 2.0, 8.0),
        (-math.pi / 2, -7.9, -2.0, -2.0, -8.0),
        # theta beyond +-pi: the cost wraps it, the dynamics do not need to.
        (7.0, -1.0, -3.0, -2.0, -1.0 + (15 * math.sin(7.0) - 6.0) * 0.05),
        (-4.0, 0.0, 0.0, 0.0, 15 * math.sin(-4.0) * 0.05),
        # Hanging down, spinning: gravity has no torque at theta = pi.
        (math.pi, -3.0, -100.0, -2.0, -3.0 - 0.3),
    ],
)
def test_one_step_matches_hand_computed(theta, theta_dot, u, clipped_u, new_theta_dot):
    env = make_pendulum()
    state, obs, reward, terminated, truncated = jax.jit(env.step)(
        KEY, _state(theta, theta_dot, t=5), _torque(u))
    new_theta = theta + new_theta_dot * 0.05
    cost = _normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * clipped_u**2
    np.testing.assert_allclose(np.asarray(state.physics), [new_theta, new_theta_dot],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(obs), [math.cos(new_theta), math.sin(new_theta), new_theta_dot],
        rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(reward), -cost, rtol=1e-6, atol=1e-6)
    assert int(state.t) == 6 and not bool(terminated) and not bool(truncated)
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32
    assert state.physics.dtype == jnp.float32


def test_reward_is_zero_only_upright_at_rest_without_torque():
    step = jax.jit(make_pendulum().step)
    assert float(step(KEY, _state(0.0, 0.0), _torque(0.0))[2]) == 0.0
    # The worst: hanging, at max speed, full torque, -(pi^2 + 0.1 * 64 + 0.001 * 4).
    worst = float(step(KEY, _state(-math.pi, 8.0), _torque(-2.0))[2])
    np.testing.assert_allclose(worst, -(math.pi**2 + 6.4 + 0.004), rtol=1e-6)


# ---------------------------------------------------------------- against gymnasium


def _gym_pendulum(physics):
    """gymnasium's Pendulum-v1 (with its 200-step TimeLimit) put in the state `physics`."""
    gym = pytest.importorskip("gymnasium")
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.asarray(physics, np.float64)
    return env


def _pumping_torques(theta_dot, i, rng):
    """Torque 3 (clipped to 2) along theta_dot on most steps, to reach the max speed;
    a random one in [-4, 4] on every third."""
    if i % 3 == 2:
        return np.array([rng.uniform(-4.0, 4.0)], np.float32)
    return np.array([3.0 if theta_dot >= 0 else -3.0], np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_step_matches_gymnasium_for_200_steps(seed):
    """Each step from the same state as gymnasium's: gymnasium is put in this env's state
    before every step. (Free-running, the float32 and float64 trajectories part where the
    pendulum passes slowly by the upright position, which amplifies rounding.)"""
    env = make_pendulum()
    step = jax.jit(env.step)
    state, obs = env.reset(jax.random.PRNGKey(seed))
    reference = _gym_pendulum(state.physics)
    rng = np.random.default_rng(seed)
    speeds, torques = [], []
    for i in range(200):
        u = _pumping_torques(float(state.physics[1]), i, rng)
        reference.unwrapped.state = np.asarray(state.physics, np.float64)
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(u)
        state, obs, reward, terminated, truncated = step(KEY, state, jnp.asarray(u))
        np.testing.assert_allclose(np.asarray(obs), ref_obs, rtol=0, atol=1e-4)
        np.testing.assert_allclose(float(reward), ref_reward, rtol=0, atol=1e-4)
        assert not bool(terminated) and not ref_terminated
        assert bool(truncated) == ref_truncated == (i == 199), i
        speeds.append(abs(float(state.physics[1])))
        torques.append(abs(float(u[0])))
    # The trajectory went through both clips.
    assert max(speeds) == 8.0 and max(torques) > 2.0


def test_free_running_trajectory_matches_gymnasium_while_hanging():
    """200 steps from theta = pi with torques in [-4, 4], each env on its own state. The
    pendulum stays in the lower half, away from the unstable upright position, so the
    float32 rounding is not amplified and the trajectories stay together."""
    env = make_pendulum()
    step = jax.jit(env.step)
    state = _state(math.pi, 0.0)
    reference = _gym_pendulum(state.physics)
    torques = np.random.default_rng(0).uniform(-4.0, 4.0, (200, 1)).astype(np.float32)
    assert np.abs(torques).max() > 2.0
    for i, u in enumerate(torques):
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(u)
        state, obs, reward, terminated, truncated = step(KEY, state, jnp.asarray(u))
        np.testing.assert_allclose(np.asarray(obs), ref_obs, rtol=0, atol=1e-4)
        np.testing.assert_allclose(float(reward), ref_reward, rtol=0, atol=1e-4)
        assert not bool(terminated) and not ref_terminated
        assert bool(truncated) == ref_truncated == (i == 199), i
        assert ref_obs[0] < 0  # cos(theta): the premise above
    assert int(state.t) == 200


# ---------------------------------------------------------------- reset, jit, vmap


def test_reset_distribution():
    env = make_pendulum()
    keys = jax.random.split(KEY, 4096)
    state, obs = jax.jit(jax.vmap(env.reset))(keys)
    theta, theta_dot = np.asarray(state.physics).T
    assert obs.dtype == jnp.float32 and state.physics.dtype == jnp.float32
    chex.assert_shape(obs, (4096, 3))
    assert np.all(np.abs(theta) <= math.pi) and np.all(np.abs(theta_dot) <= 1.0)
    # Uniform over the whole range, not a corner of it.
    assert theta.min() < -0.95 * math.pi and theta.max() > 0.95 * math.pi
    assert theta_dot.min() < -0.95 and theta_dot.max() > 0.95
    assert abs(theta.mean()) < 0.1 and abs(theta_dot.mean()) < 0.05
    np.testing.assert_allclose(np.asarray(obs),
                               np.stack([np.cos(theta), np.sin(theta), theta_dot], -1),
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.t), 0)
    assert len({tuple(o) for o in np.asarray(obs[:64]).round(6)}) == 64


@pytest.mark.parametrize("env", [make_pendulum(), make_masked_pendulum()],
                         ids=["pendulum", "masked_pendulum"])
def test_contract_under_jit_and_vmap(env):
    spec = env.spec
    keys = jax.random.split(KEY, NUM_ENVS)
    state, obs0 = jax.jit(jax.vmap(env.reset))(keys)
    actions = jnp.linspace(-3.0, 3.0, NUM_ENVS, dtype=jnp.float32)[:, None]
    state, obs, reward, terminated, truncated = jax.jit(jax.vmap(env.step))(keys, state,
                                                                             actions)
    for o in (obs0, obs):
        chex.assert_shape(o, (NUM_ENVS, *spec.obs_shape))
        assert o.dtype == spec.obs_dtype == np.float32
    chex.assert_shape([reward, terminated, truncated], (NUM_ENVS,))
    assert reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert not np.any(terminated) and not np.any(truncated)
    assert not spec.discrete and spec.num_actions is None
    assert (spec.action_low, spec.action_high) == ((-2.0,), (2.0,))
    assert spec.max_episode_steps == 200
    images = jax.jit(jax.vmap(env.render))(state)
    chex.assert_shape(images, (NUM_ENVS, RENDER_SIZE, RENDER_SIZE, 3))
    assert images.dtype == jnp.uint8
    # Batched equals one by one.
    for i in (0, NUM_ENVS - 1):
        one = jax.tree.map(lambda x, i=i: x[i], state)
        np.testing.assert_array_equal(np.asarray(images[i]), np.asarray(env.render(one)))
        _, one_obs, *_ = env.step(keys[i], env.reset(keys[i])[0], actions[i])
        np.testing.assert_allclose(np.asarray(obs[i]), np.asarray(one_obs), atol=1e-6)


def test_truncates_at_200_in_a_scan():
    env = make_pendulum()

    def body(state, key):
        state, _, reward, terminated, truncated = env.step(key, state, _torque(1.0))
        return state, (reward, terminated, truncated)

    state, _ = env.reset(KEY)
    _, (rewards, terminated, truncated) = jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(KEY, 200)))(state)
    assert not np.any(terminated)
    np.testing.assert_array_equal(np.flatnonzero(truncated), [199])
    assert np.all(np.asarray(rewards) <= 0.0)


# ---------------------------------------------------------------- drawing


def test_render_draws_the_rod_where_the_state_puts_it():
    draw = jax.jit(render_pendulum)
    pivot = RENDER_SIZE // 2  # 66; the rod is 30 px long, 6 px wide
    upright = np.asarray(draw(_state(0.0, 0.0)))
    assert upright.shape == (RENDER_SIZE, RENDER_SIZE, 3) and upright.dtype == np.uint8
    np.testing.assert_array_equal(upright[pivot, pivot], AXLE)
    np.testing.assert_array_equal(upright[50, pivot], ROD)  # up the rod
    np.testing.assert_array_equal(upright[40, pivot - 1], ROD)
    np.testing.assert_array_equal(upright[28, pivot], BG)  # above its tip (row 36)
    np.testing.assert_array_equal(upright[80, pivot], BG)  # below the pivot
    np.testing.assert_array_equal(upright[50, pivot + 10], BG)
    np.testing.assert_array_equal(upright[2, 2], BG)
    rows, cols = np.nonzero(np.all(upright == ROD, axis=-1))
    assert rows.min() >= 32 and rows.max() <= 70 and cols.min() >= 62 and cols.max() <= 70
    # theta = pi / 2: counter-clockwise a quarter turn, the rod points left.
    left = np.asarray(draw(_state(math.pi / 2, 0.0)))
    np.testing.assert_array_equal(left[pivot, 50], ROD)
    np.testing.assert_array_equal(left[pivot, 82], BG)
    np.testing.assert_array_equal(left[50, pivot], BG)
    rows, cols = np.nonzero(np.all(left == ROD, axis=-1))
    assert cols.min() >= 32 and cols.max() <= 70 and rows.min() >= 62 and rows.max() <= 70
    # theta = pi and 3 pi (unwrapped) draw the same hanging rod.
    down = np.asarray(draw(_state(math.pi, 0.0)))
    np.testing.assert_array_equal(down[82, pivot], ROD)
    np.testing.assert_array_equal(down[50, pivot], BG)
    np.testing.assert_array_equal(np.asarray(draw(_state(3 * math.pi, 0.0))), down)


# ---------------------------------------------------------------- masked variant


def test_masked_pendulum_observes_the_angle_of_the_same_trajectory():
    full, masked = make_pendulum(), make_masked_pendulum()
    full_step, masked_step = jax.jit(full.step), jax.jit(masked.step)
    key = jax.random.PRNGKey(3)
    full_state, full_obs = full.reset(key)
    masked_state, masked_obs = masked.reset(key)
    np.testing.assert_array_equal(np.asarray(masked_obs), np.asarray(full_obs)[:2])
    torques = np.random.default_rng(3).uniform(-4.0, 4.0, (200, 1)).astype(np.float32)
    for i, u in enumerate(torques):
        full_state, full_obs, r, te, tr = full_step(KEY, full_state, jnp.asarray(u))
        masked_state, masked_obs, mr, mte, mtr = masked_step(KEY, masked_state, jnp.asarray(u))
        assert masked_obs.shape == (2,) and masked_obs.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(masked_obs), np.asarray(full_obs)[:2])
        np.testing.assert_array_equal(np.asarray(masked_state.physics),
                                      np.asarray(full_state.physics))
        assert float(mr) == float(r) and bool(mte) == bool(te) and bool(mtr) == bool(tr)
        assert bool(mtr) == (i == 199)
    np.testing.assert_array_equal(np.asarray(masked.render(masked_state)),
                                  np.asarray(full.render(full_state)))


# ---------------------------------------------------------------- registry


def test_registry_reports_continuous_bounds():
    assert {"jax:Pendulum-v1", "jax:MaskedPendulum-v1"} <= set(list_env_ids())
    assert is_jax_env("jax:Pendulum-v1") and is_jax_env("jax:MaskedPendulum-v1")
    spec = env_spec("jax:Pendulum-v1")
    assert spec.name == "jax:Pendulum-v1" and not spec.discrete
    assert spec.obs_shape == (3,) and spec.obs_dtype == np.float32
    assert (spec.action_low, spec.action_high) == ((-2.0,), (2.0,))
    assert spec.num_actions is None and spec.max_episode_steps == 200
    masked = env_spec("jax:MaskedPendulum-v1")
    assert masked.name == "jax:MaskedPendulum-v1" and not masked.discrete
    assert masked.obs_shape == (2,)
    assert (masked.action_low, masked.action_high) == ((-2.0,), (2.0,))
    assert masked.max_episode_steps == 200
    assert make_env("jax:Pendulum-v1").spec == spec
    with pytest.raises(ValueError, match="no arguments"):
        make_env("jax:Pendulum-v1", g=9.81)
