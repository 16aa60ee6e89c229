"""Frame replay (`jaxrl57.replay.frames`) against a naive full-transition replay.

The reference keeps every transition's whole `obs` and `next_obs` and its
n-step return from `replay.nstep` (fed the same stream); the frame replay
must give the same transitions for exactly the rows whose window is complete
and whose stack is still in the ring.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.replay import nstep_emit, nstep_init, nstep_push
from jaxrl57.replay.base import EnvSteps
from jaxrl57.replay.frames import (
    frame_add,
    frame_bytes_per_transition,
    frame_get,
    frame_init,
    frame_sample,
    frame_sample_prioritized,
    frame_update_priorities,
)

S, H, W = 4, 5, 6


def _stacked_stream(seed, t_len, num_envs):
    """Random episodes of a frame-stacking env: [T, E, ...] arrays.

    New games start with copies of the first frame (EnvPool) or with zeros
    (gym's FrameStack); a termination may instead keep the stack going (EnvPool's
    episodic life); some steps are both terminated and truncated.
    """
    rng = np.random.default_rng(seed)
    new_frame = lambda: rng.integers(1, 256, size=(H, W), dtype=np.uint8)
    stacks = [np.stack([new_frame()] * S) for _ in range(num_envs)]
    out = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated", "next_obs")}
    for _ in range(t_len):
        obs = np.stack(stacks)
        nxt = np.stack([np.concatenate([s[1:], new_frame()[None]]) for s in stacks])
        u = rng.uniform(size=num_envs)
        term, trunc = u < 0.07, (u >= 0.07) & (u < 0.11)
        trunc |= term & (rng.uniform(size=num_envs) < 0.3)
        for e in range(num_envs):
            if not (term[e] or trunc[e]):
                stacks[e] = nxt[e]
                continue
            mode = rng.integers(3) if term[e] and not trunc[e] else rng.integers(2)
            first = new_frame()
            if mode == 0:
                stacks[e] = np.stack([first] * S)
            elif mode == 1:
                stacks[e] = np.concatenate([np.zeros((S - 1, H, W), np.uint8), first[None]])
            else:
                stacks[e] = np.concatenate([nxt[e][1:], first[None]])
        out["obs"].append(obs)
        out["next_obs"].append(nxt)
        out["action"].append(rng.integers(0, 6, size=num_envs).astype(np.int32))
        out["reward"].append(rng.normal(size=num_envs).astype(np.float32))
        out["terminated"].append(term)
        out["truncated"].append(trunc)
    return {k: np.stack(v) for k, v in out.items()}


def _reference(stream, n, gamma):
    """nstep.py's transitions for every start step: tr.obs[t, e], ... (padding the end)."""
    t_len, num_envs = stream["reward"].shape
    pad = lambda x: np.concatenate([x, np.zeros((n - 1,) + x.shape[1:], x.dtype)])
    xs = tuple(jnp.asarray(pad(stream[k])) for k in
               ("obs", "action", "reward", "terminated", "truncated", "next_obs"))

    def step(state, x):
        state = nstep_push(state, *x)
        return state, nstep_emit(state, gamma)[0]

    state = nstep_init(jnp.asarray(stream["obs"][0, 0]), num_envs, n)
    _, tr = jax.lax.scan(step, state, xs)
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[n - 1:], tr)


def _expected_rows(stream, n, num_rows, upto):
    """{leaf: (env, step)} of the rows that must be sampleable after `upto` steps."""
    done = stream["terminated"][:upto] | stream["truncated"][:upto]
    num_envs = done.shape[1]
    expected = {}
    for e in range(num_envs):
        heads = np.concatenate([[0], np.cumsum(1 + done[:, e])])
        end = heads[upto - 1] + 2
        for t in range(upto):
            ends = np.flatnonzero(done[t:t + n, e])
            complete = ends.size > 0 or t + n <= upto
            if complete and heads[t] >= end - num_rows + S - 1:
                expected[e * num_rows + heads[t] % num_rows] = (e, t)
    return expected


def _feed(state, stream, lo, hi, n, alpha=0.0):
    xs = tuple(jnp.asarray(stream[k][lo:hi]) for k in
               ("obs", "action", "reward", "terminated", "truncated", "next_obs"))

    def step(s, x):
        return frame_add(s, *x, n_step=n, alpha=alpha), None

    return jax.jit(lambda s, xs: jax.lax.scan(step, s, xs)[0])(state, xs)


# Jitted: called op by op, frame_get compiles some 280 small programs per test.
_frame_get = jax.jit(frame_get, static_argnames=("stack_size", "n_step"))


def _check_against_reference(state, stream, ref, n, gamma, upto):
    num_rows = state.action.shape[1]
    expected = _expected_rows(stream, n, num_rows, upto)
    leaves = np.asarray(state.tree)[state.tree.shape[0] // 2:]
    valid = np.flatnonzero(leaves > 0)
    assert set(valid.tolist()) == set(expected), "sampleable rows differ from the reference"
    assert int(state.size) == len(valid)
    assert int(state.stack_mismatches) == 0
    got = _frame_get(state, jnp.asarray(valid), stack_size=S, n_step=n, gamma=gamma)
    env, step = np.array([expected[i] for i in valid]).T
    np.testing.assert_array_equal(got.obs, ref.obs[step, env])
    np.testing.assert_array_equal(got.next_obs, ref.next_obs[step, env])
    np.testing.assert_array_equal(got.action, ref.action[step, env])
    np.testing.assert_allclose(got.reward, ref.reward[step, env], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.discount, ref.discount[step, env], rtol=1e-6)
    return valid


@pytest.mark.parametrize("n", [1, 3])
def test_rebuilt_transitions_equal_full_replay(n):
    gamma, num_envs, t_len, num_rows = 0.9, 3, 200, 40
    stream = _stacked_stream(n, t_len, num_envs)
    done = stream["terminated"] | stream["truncated"]
    assert stream["terminated"].any() and stream["truncated"].any() and done.sum() > 20
    ref = _reference(stream, n, gamma)
    state = frame_init(jnp.zeros((S, H, W), jnp.uint8), num_envs, num_envs * num_rows, n)
    # Checked before the ring is full, as it wraps, and after several laps.
    for lo, hi in ((0, 25), (25, 45), (45, 200)):
        state = _feed(state, stream, lo, hi, n)
        _check_against_reference(state, stream, ref, n, gamma, hi)


def test_samplers_never_return_invalid_rows():
    gamma, n, num_envs, num_rows = 0.99, 3, 2, 30
    stream = _stacked_stream(7, 90, num_envs)
    ref = _reference(stream, n, gamma)
    state = frame_init(jnp.zeros((S, H, W), jnp.uint8), num_envs, num_envs * num_rows, n)
    state = _feed(state, stream, 0, 90, n, alpha=0.6)
    valid = set(_check_against_reference(state, stream, ref, n, gamma, 90).tolist())
    keys = jax.random.split(jax.random.PRNGKey(0), 50)
    uniform = jax.jit(jax.vmap(lambda k: frame_sample(state, k, 16, stack_size=S, n_step=n,
                                                      gamma=gamma)[1]))(keys)
    assert set(np.asarray(uniform).ravel().tolist()) <= valid
    sample = jax.jit(jax.vmap(
        lambda s, k: frame_sample_prioritized(s, k, 16, stack_size=S, n_step=n, gamma=gamma,
                                              beta=0.4), in_axes=(None, 0)))
    _, idx, weights = sample(state, keys)
    assert set(np.asarray(idx).ravel().tolist()) <= valid
    np.testing.assert_allclose(np.max(weights, axis=1), 1.0)
    # Raising one row's priority makes it the most drawn; a stale leaf stays 0.
    invalid = next(i for i in range(num_envs * num_rows) if i not in valid)
    hot = min(valid)
    updated = frame_update_priorities(state, jnp.array([hot, invalid]),
                                      jnp.array([50.0, 50.0]), alpha=0.6)
    leaves = np.asarray(updated.tree)[updated.tree.shape[0] // 2:]
    assert leaves[invalid] == 0.0 and leaves[hot] > 1.0
    assert float(updated.max_priority) == 50.0
    _, idx, _ = sample(updated, keys)
    counts = np.bincount(np.asarray(idx).ravel(), minlength=leaves.shape[0])
    assert np.argmax(counts) == hot and set(np.flatnonzero(counts).tolist()) <= valid


def test_jit_vmap_two_members():
    n, num_envs, num_rows = 3, 2, 20
    streams = [_stacked_stream(s, 60, num_envs) for s in (11, 12)]
    init = frame_init(jnp.zeros((S, H, W), jnp.uint8), num_envs, num_envs * num_rows, n)
    states = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), init)
    keys = ("obs", "action", "reward", "terminated", "truncated", "next_obs")
    xs = tuple(jnp.stack([jnp.asarray(s[k]) for s in streams], axis=1) for k in keys)
    alphas = jnp.array([0.0, 0.5])
    add = jax.vmap(lambda s, x, a: frame_add(s, *x, n_step=n, alpha=a))
    states = jax.jit(lambda st, xs: jax.lax.scan(
        lambda s, x: (add(s, x, alphas), None), st, xs)[0])(states, xs)
    gammas = jnp.array([0.9, 0.99])
    batch, idx, weights = jax.jit(jax.vmap(
        lambda s, k, g: frame_sample_prioritized(s, k, 8, stack_size=S, n_step=n, gamma=g,
                                                 beta=0.4)))(
        states, jax.random.split(jax.random.PRNGKey(1), 2), gammas)
    assert batch.obs.shape == (2, 8, S, H, W) and batch.obs.dtype == jnp.uint8
    for m in range(2):
        member = jax.tree_util.tree_map(lambda x, m=m: x[m], states)
        ref = _reference(streams[m], n, float(gammas[m]))
        _check_against_reference(member, streams[m], ref, n, float(gammas[m]), 60)
        single = frame_get(member, idx[m], stack_size=S, n_step=n, gamma=gammas[m])
        np.testing.assert_array_equal(single.obs, batch.obs[m])
        np.testing.assert_allclose(single.discount, batch.discount[m])


@pytest.mark.parametrize("num_envs", [1, 8])
def test_atari_bytes_per_transition(num_envs):
    capacity = 1_000_000
    shapes = jax.eval_shape(lambda: frame_init(jnp.zeros((4, 84, 84), jnp.uint8), num_envs,
                                               capacity, n_step=3))
    assert shapes.frames.shape == (num_envs, capacity // num_envs, 84, 84)
    per_row = frame_bytes_per_transition(shapes)
    assert 84 * 84 < per_row <= 1.1 * 84 * 84


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="stacked frames"):
        frame_init(jnp.zeros((84, 84), jnp.uint8), 1, 100)
    with pytest.raises(ValueError, match="rows per env"):
        frame_init(jnp.zeros((4, 84, 84), jnp.uint8), 8, 64, n_step=3)


@pytest.mark.envpool
def test_envpool_breakout_stacks_rebuilt_exactly():
    """EnvPool's real stacks: copies at a new game, kept frames after a lost life."""
    pytest.importorskip("envpool")
    from jaxrl57.envs.envpool_env import make_envpool

    num_envs, t_len, n, gamma = 2, 400, 3, 0.99
    envs = make_envpool("Breakout-v5", num_envs, seed=3, train=True, episodic_life=True)
    rng = np.random.default_rng(0)
    out = {k: [] for k in ("obs", "action", "reward", "terminated", "truncated", "next_obs")}
    obs = envs.reset()
    for _ in range(t_len):
        action = rng.integers(0, envs.spec.num_actions, size=num_envs).astype(np.int32)
        step = envs.step(action)
        for k, v in (("obs", obs), ("action", action), ("reward", step.reward),
                     ("terminated", step.terminated), ("truncated", step.truncated),
                     ("next_obs", step.final_obs)):
            out[k].append(np.array(v))
        obs = step.obs
    envs.close()
    stream = {k: np.stack(v) for k, v in out.items()}
    assert stream["terminated"].sum() >= 2
    ref = _reference(stream, n, gamma)
    state = frame_init(jnp.asarray(stream["obs"][0, 0]), num_envs, num_envs * 150, n)
    state = _feed(state, stream, 0, t_len, n)
    _check_against_reference(state, stream, ref, n, gamma, t_len)


def _frame_agent(**overrides):
    from jaxrl57.agents.dqn import DQNConfig, make_dqn
    from jaxrl57.envs.base import EnvSpec

    spec = EnvSpec(name="stacked", obs_shape=(S, H, W), obs_dtype=np.uint8, num_actions=6)
    config = DQNConfig(**{"hidden_sizes": (32,), "replay_capacity": 200, "batch_size": 8,
                          "replay_storage": "frames", **overrides})
    return make_dqn(config, spec, 2)


@pytest.mark.parametrize("overrides", [dict(), dict(prioritized=True, n_step=3, double=True)])
def test_dqn_agent_with_frame_replay(overrides):
    import chex

    from jaxrl57.agents.dqn import DQNHParams

    chex.clear_trace_counter()  # the parametrized cases share the counter
    agent = _frame_agent(**overrides)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), DQNHParams.create(learning_starts=20))
    assert state.replay.frames.shape == (2, 100, H, W)
    stream = _stacked_stream(5, 30, 2)
    keys = ("obs", "action", "reward", "terminated", "truncated", "next_obs")
    observe = jax.jit(chex.assert_max_traces(agent.observe, n=1))
    update = jax.jit(chex.assert_max_traces(agent.update, n=1))
    for t in range(30):
        state = observe(state, EnvSteps(*(jnp.asarray(stream[k][t]) for k in keys)))
        state, metrics = update(state, jax.random.PRNGKey(t))
        assert float(metrics["updated"]) == float(agent.can_update(state))
    assert int(state.env_steps) == 60 and bool(agent.can_update(state))
    assert int(state.updates) > 0 and np.isfinite(float(metrics["loss"]))
    assert int(state.replay.stack_mismatches) == 0


def test_dqn_frame_replay_rejects_bad_settings():
    from jaxrl57.agents.dqn import DQNConfig, make_dqn

    with pytest.raises(ValueError, match="replay_storage"):
        DQNConfig(replay_storage="frame").validate()
    from jaxrl57 import envs

    with pytest.raises(ValueError, match="stacked uint8 frames"):
        make_dqn(DQNConfig(replay_storage="frames"), envs.make_env("jax:Catch").spec, 2)
    with pytest.raises(ValueError, match="too small"):
        _frame_agent(replay_capacity=10)


def test_cli_rejects_frames_for_non_pixel_env(tmp_path, capsys):
    from jaxrl57.cli import main

    rc = main(["train", "dqn", "--env", "jax:Catch", "--steps", "100", "--set",
               "replay_storage=frames", "--out", str(tmp_path), "--no-progress"])
    assert rc == 2 and "stacked uint8 frames" in capsys.readouterr().err


def test_add_writes_the_ring_in_place():
    """No copy of the frame ring in the compiled add (it is the 7 GB array)."""
    num_rows = 50
    state = frame_init(jnp.zeros((S, H, W), jnp.uint8), 2, 2 * num_rows, n_step=3)
    stream = _stacked_stream(0, 1, 2)
    xs = [jnp.asarray(stream[k][0]) for k in
          ("obs", "action", "reward", "terminated", "truncated", "next_obs")]
    add = jax.jit(lambda s, *x: frame_add(s, *x, n_step=3, alpha=0.5), donate_argnums=0)
    hlo = add.lower(state, *xs).compile().as_text()
    ring = f"u8[2,{num_rows},{H},{W}]"
    assert not [line for line in hlo.splitlines() if ring in line and " copy(" in line]
