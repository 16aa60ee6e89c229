"""`jaxrl57.replay.buffer`: transition replay as a bundle of pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_transition_buffer

E, CAPACITY, BATCH = 3, 64, 8
KINDS = [dict(), dict(prioritized=True), dict(n_step=3), dict(n_step=3, prioritized=True),
         dict(frames=True), dict(frames=True, prioritized=True, n_step=2)]


def _obs_example(frames: bool):
    return jnp.zeros((2, 4, 4), jnp.uint8) if frames else jnp.zeros((4,), jnp.float32)


def _steps(t: int, frames: bool) -> EnvSteps:
    """Step t of E envs that never end: every reward 1, observations encode (t, env)."""
    if frames:
        # Frame stacks slide by one frame a step, as EnvPool's do.
        frame = lambda u: jnp.full((E, 4, 4), u % 250, jnp.uint8)
        obs = jnp.stack([frame(t), frame(t + 1)], axis=1)
        next_obs = jnp.stack([frame(t + 1), frame(t + 2)], axis=1)
    else:
        obs = jnp.tile(jnp.arange(E, dtype=jnp.float32)[:, None] + 10.0 * t, (1, 4))
        next_obs = obs + 10.0
    false = jnp.zeros((E,), bool)
    return EnvSteps(obs, jnp.full((E,), t % 2, jnp.int32), jnp.ones((E,), jnp.float32),
                    false, false, next_obs)


def _filled(buffer, num_steps: int, frames: bool, params: ReplayParams):
    add = jax.jit(buffer.add)
    state = buffer.init()
    for t in range(num_steps):
        state = add(state, _steps(t, frames), params)
    return state


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_add_sample_and_priorities(kind):
    frames = kind.get("frames", False)
    n = kind.get("n_step", 1)
    buffer = make_transition_buffer(_obs_example(frames), E, CAPACITY, BATCH, **kind)
    params = ReplayParams(discount=0.9, priority_alpha=0.6, priority_beta=0.4)
    state = _filled(buffer, n - 1, frames, params)
    # No transition is complete before n steps.
    assert int(buffer.size(state)) == 0 and not bool(buffer.can_sample(state, 0))
    state = _filled(buffer, n + 4, frames, params)
    stored = int(buffer.size(state))
    assert stored == 5 * E or (frames and 0 < stored <= 5 * E)
    assert bool(buffer.can_sample(state, stored)) and not bool(buffer.can_sample(state, stored + 1))

    sample = jax.jit(buffer.sample)(state, jax.random.PRNGKey(0), params)
    batch = sample.batch
    assert batch.obs.shape == (BATCH, *_obs_example(frames).shape)
    assert batch.action.dtype == jnp.int32 and batch.reward.shape == (BATCH,)
    # Rewards of 1 and no episode end: the n-step return and its discount.
    np.testing.assert_allclose(batch.reward, sum(0.9**k for k in range(n)), rtol=1e-6)
    np.testing.assert_allclose(batch.discount, 0.9**n, rtol=1e-6)
    if not buffer.prioritized:
        assert sample.indices is None and sample.weights is None
        same = buffer.set_priorities(state, None, None, params, jnp.bool_(True))
        assert same is state
        return
    assert sample.indices.shape == sample.weights.shape == (BATCH,)
    assert float(jnp.max(sample.weights)) == pytest.approx(1.0)
    priorities = jnp.arange(1, BATCH + 1, dtype=jnp.float32)
    set_priorities = jax.jit(buffer.set_priorities)
    kept = set_priorities(state, sample.indices, priorities, params, jnp.bool_(False))
    for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    moved = set_priorities(state, sample.indices, priorities, params, jnp.bool_(True))
    assert any(not np.array_equal(a, b)
               for a, b in zip(jax.tree.leaves(moved), jax.tree.leaves(state), strict=True))


def test_traced_settings_sweep_under_vmap():
    # One program, three members with their own discount and priority exponents.
    buffer = make_transition_buffer(_obs_example(False), E, CAPACITY, BATCH, n_step=2,
                                    prioritized=True)
    params = ReplayParams(discount=jnp.array([0.5, 0.9, 0.99]),
                          priority_alpha=jnp.array([0.0, 0.5, 1.0]),
                          priority_beta=jnp.array([0.4, 0.7, 1.0]))
    add = jax.jit(jax.vmap(buffer.add, in_axes=(0, None, 0)))
    state = jax.vmap(lambda _: buffer.init())(jnp.arange(3))
    for t in range(6):
        state = add(state, _steps(t, False), params)
    sample = jax.jit(jax.vmap(buffer.sample, in_axes=(0, None, 0)))(
        state, jax.random.PRNGKey(1), params)
    np.testing.assert_allclose(sample.batch.reward[:, 0], 1.0 + params.discount, rtol=1e-6)
    np.testing.assert_allclose(sample.batch.discount[:, 0], params.discount**2, rtol=1e-6)


def test_bad_settings_are_refused_at_build_time():
    with pytest.raises(ValueError, match="n_step"):
        make_transition_buffer(_obs_example(False), E, CAPACITY, BATCH, n_step=0)
    with pytest.raises(ValueError, match="uint8 frames"):
        make_transition_buffer(_obs_example(False), E, CAPACITY, BATCH, frames=True)


def test_sequence_buffer_bundle():
    from jaxrl57.replay.buffer import make_sequence_buffer

    step = dict(obs=jnp.zeros((3,)), reward=jnp.zeros(()))
    core = jnp.zeros((2,))
    buffer = make_sequence_buffer(step, core, E, capacity=16, seq_len=4, period=2,
                                  batch_size=4)
    params = ReplayParams(priority_alpha=0.9, priority_beta=0.6)
    state = buffer.init()
    add = jax.jit(buffer.add)
    for t in range(8):
        steps = dict(obs=jnp.full((E, 3), float(t)), reward=jnp.ones((E,)))
        state = add(state, steps, jnp.full((E, 2), float(t)), params)
    assert int(buffer.size(state)) > 0 and bool(buffer.can_sample(state, 1))
    sample = jax.jit(buffer.sample)(state, jax.random.PRNGKey(0), params)
    assert sample.steps["obs"].shape == (4, 4, 3) and sample.start_core_state.shape == (4, 2)
    # A sequence starts with the core state stored before its first step.
    np.testing.assert_array_equal(sample.start_core_state[:, 0], sample.steps["obs"][:, 0, 0])
    priorities = jnp.arange(1.0, 5.0)
    kept = buffer.set_priorities(state, sample.indices, priorities, params, jnp.bool_(False))
    for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    moved = buffer.set_priorities(state, sample.indices, priorities, params, jnp.bool_(True))
    assert float(moved.max_priority) == pytest.approx(4.0)
