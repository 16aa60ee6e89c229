"""Tests of the memory tasks (jaxrl57/envs/memory.py): MaskedCartPole against CartPole, and
MemoryChain's layout, rewards and the returns of memory-using and memoryless policies."""

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
    make_cartpole,
    make_env,
    make_masked_cartpole,
    make_memory_chain,
)

NUM_ENVS = 16


# ---------------------------------------------------------------- generic contract


@pytest.mark.parametrize(
    "env, obs_shape, num_actions",
    [
        (make_masked_cartpole(), (2,), 2),
        (make_memory_chain(), (4,), 2),
        (make_memory_chain(length=3, num_cues=5), (7,), 5),
    ],
    ids=["masked_cartpole", "chain10x2", "chain3x5"],
)
def test_contract_under_jit_and_vmap(env, obs_shape, num_actions):
    spec = env.spec
    assert spec.obs_shape == obs_shape and spec.obs_dtype == np.float32
    assert spec.num_actions == num_actions and spec.discrete
    keys = jax.random.split(jax.random.PRNGKey(0), NUM_ENVS)
    state, obs0 = jax.jit(jax.vmap(env.reset))(keys)
    chex.clear_trace_counter()  # the chains' `step`s share one code object
    step = jax.jit(jax.vmap(chex.assert_max_traces(env.step, n=1)))
    for a in range(num_actions):
        state, obs, reward, terminated, truncated = step(
            keys, state, jnp.full((NUM_ENVS,), a, jnp.int32)
        )
        for o in (obs0, obs):
            chex.assert_shape(o, (NUM_ENVS, *obs_shape))
            assert o.dtype == jnp.float32
        chex.assert_shape([reward, terminated, truncated], (NUM_ENVS,))
        assert reward.dtype == jnp.float32
        assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_


# ---------------------------------------------------------------- MaskedCartPole


def _rollout(env, key, steps=500):
    """`steps` steps from `reset(key)` under uniformly random actions (the same ones for
    every env, given the key), never resetting; returns (obs0, per-step outputs)."""
    reset_key, run_key = jax.random.split(key)
    state, obs0 = env.reset(reset_key)

    def body(state, k):
        act_key, step_key = jax.random.split(k)
        action = jax.random.randint(act_key, (), 0, 2)
        state, obs, r, term, trunc = env.step(step_key, state, action)
        return state, (obs, r, term, trunc)

    return obs0, jax.lax.scan(body, state, jax.random.split(run_key, steps))[1]


def test_masked_cartpole_is_cartpole_positions_step_by_step():
    keys = jax.random.split(jax.random.PRNGKey(7), 32)
    run = jax.jit(jax.vmap(_rollout, in_axes=(None, 0)), static_argnums=0)
    obs0, (obs, r, term, trunc) = run(make_cartpole(), keys)
    m_obs0, (m_obs, m_r, m_term, m_trunc) = run(make_masked_cartpole(), keys)
    # Same keys, same actions, same float32 computation: exactly equal.
    np.testing.assert_array_equal(np.asarray(m_obs0), np.asarray(obs0)[:, [0, 2]])
    np.testing.assert_array_equal(np.asarray(m_obs), np.asarray(obs)[..., [0, 2]])
    np.testing.assert_array_equal(np.asarray(m_r), np.asarray(r))
    np.testing.assert_array_equal(np.asarray(m_term), np.asarray(term))
    np.testing.assert_array_equal(np.asarray(m_trunc), np.asarray(trunc))
    # Random play ends every episode, at the same step in both envs.
    term = np.asarray(term)
    assert term.any(axis=1).all()
    np.testing.assert_array_equal(np.asarray(m_term).argmax(axis=1), term.argmax(axis=1))


def test_masked_cartpole_truncates_at_500():
    env = make_masked_cartpole()
    assert env.spec.max_episode_steps == 500
    state, _ = env.reset(jax.random.PRNGKey(0))
    state = state._replace(t=jnp.int32(499))
    _, _, _, term, trunc = env.step(jax.random.PRNGKey(0), state, jnp.int32(0))
    assert not bool(term) and bool(trunc)


# ---------------------------------------------------------------- MemoryChain


def _chain_episodes(env, policy, num_episodes, seed=0):
    """Runs `num_episodes` episodes of exactly `max_episode_steps` steps (vmapped).

    `policy(memory, obs) -> (action, memory)`, with `memory` an int32 scalar starting at 0.
    Returns obs [N, T+1, D] (obs[:, 0] from reset), and actions, r, term, trunc [N, T].
    """
    steps = env.spec.max_episode_steps

    def run(key):
        state, obs0 = env.reset(key)

        def body(carry, k):
            state, obs, memory = carry
            action, memory = policy(memory, obs)
            state, obs, r, term, trunc = env.step(k, state, action)
            return (state, obs, memory), (obs, action, r, term, trunc)

        carry = (state, obs0, jnp.zeros((), jnp.int32))
        _, (obs, actions, r, term, trunc) = jax.lax.scan(body, carry, jax.random.split(key, steps))
        return jnp.concatenate([obs0[None], obs]), actions, r, term, trunc

    keys = jax.random.split(jax.random.PRNGKey(seed), num_episodes)
    return jax.tree.map(np.asarray, jax.jit(jax.vmap(run))(keys))


def _oracle(num_cues):
    """Remembers the cue shown at t = 0 and answers it at every step."""

    def policy(memory, obs):
        cue = obs[:num_cues]
        memory = jnp.where(cue.sum() > 0, jnp.argmax(cue), memory).astype(jnp.int32)
        return memory, memory

    return policy


@pytest.mark.parametrize("length, num_cues", [(10, 2), (1, 2), (5, 4)])
def test_chain_layout_and_episode_length(length, num_cues):
    env = make_memory_chain(length, num_cues)
    assert env.spec.max_episode_steps == length + 1
    obs, _, r, term, trunc = _chain_episodes(env, _oracle(num_cues), 64)
    cues = obs[:, 0, :num_cues]
    # The cue: one-hot at t = 0 only.
    np.testing.assert_array_equal(cues.sum(axis=1), 1.0)
    assert set(np.unique(cues)) == {0.0, 1.0}
    np.testing.assert_array_equal(obs[:, 1:, :num_cues], 0.0)
    # Query flag at t = length only; time t / length, clipped at 1 on the final obs.
    flag = np.zeros(length + 2)
    flag[length] = 1.0
    np.testing.assert_array_equal(obs[:, :, num_cues], np.broadcast_to(flag, (64, length + 2)))
    time = np.minimum(np.arange(length + 2), length) / length
    np.testing.assert_allclose(obs[:, :, num_cues + 1], np.broadcast_to(time, (64, length + 2)))
    # Termination exactly at step length + 1; never a truncation.
    assert term[:, -1].all() and not term[:, :-1].any()
    assert not trunc.any()
    # Reward only at the answer.
    np.testing.assert_array_equal(r[:, :-1], 0.0)
    # Both cues occur.
    assert len(np.unique(cues.argmax(axis=1))) == num_cues


@pytest.mark.parametrize("num_cues", [2, 3])
def test_chain_reward_for_each_cue_and_answer(num_cues):
    length = 3
    env = make_memory_chain(length, num_cues)
    step = jax.jit(env.step)
    key = jax.random.PRNGKey(0)
    for cue in range(num_cues):
        for answer in range(num_cues):
            state, _ = env.reset(key)
            state = state._replace(cue=jnp.int32(cue))
            for _ in range(length):  # actions before the query are ignored
                state, _, r, term, _ = step(key, state, jnp.int32((cue + 1) % num_cues))
                assert float(r) == 0.0 and not bool(term)
            state, _, r, term, trunc = step(key, state, jnp.int32(answer))
            assert float(r) == (1.0 if answer == cue else -1.0)
            assert bool(term) and not bool(trunc) and int(state.t) == length + 1


@pytest.mark.parametrize("length, num_cues", [(10, 2), (20, 3)])
def test_chain_oracle_that_remembers_always_wins(length, num_cues):
    env = make_memory_chain(length, num_cues)
    _, _, r, _, _ = _chain_episodes(env, _oracle(num_cues), 1000)
    np.testing.assert_array_equal(r.sum(axis=1), 1.0)


@pytest.mark.parametrize("length, num_cues", [(10, 2), (5, 4)])
def test_chain_memoryless_policies_are_at_chance(length, num_cues):
    # The query observation is the same in every episode, so a policy that sees only it
    # answers a fixed action a; the cue is uniform, so it is right with probability
    # 1 / num_cues: E[return] = 2 / num_cues - 1 (0 for 2 cues). Policies: every constant
    # action, and random linear ones, argmax(W obs + b).
    env = make_memory_chain(length, num_cues)
    num_episodes, obs_dim = 1000, num_cues + 2
    w = jax.random.normal(jax.random.PRNGKey(1), (6, num_cues, obs_dim))
    b = jax.random.normal(jax.random.PRNGKey(2), (6, num_cues))
    w = jnp.concatenate([jnp.zeros((num_cues, num_cues, obs_dim)), w])
    b = jnp.concatenate([jnp.eye(num_cues), b])

    def episode_return(key, w, b):
        state, obs = env.reset(key)

        def body(carry, k):
            state, obs = carry
            action = jnp.argmax(w @ obs + b)
            state, next_obs, r, _, _ = env.step(k, state, action)
            return (state, next_obs), (obs, r)

        _, (obs, r) = jax.lax.scan(body, (state, obs), jax.random.split(key, length + 1))
        return obs[length], r.sum()

    keys = jax.random.split(jax.random.PRNGKey(0), num_episodes)
    run = jax.jit(jax.vmap(jax.vmap(episode_return, (0, None, None)), (None, 0, 0)))
    query_obs, returns = jax.tree.map(np.asarray, run(keys, w, b))
    np.testing.assert_array_equal(query_obs, np.broadcast_to(query_obs[0, 0], query_obs.shape))
    assert set(np.unique(returns)) <= {-1.0, 1.0}
    expected = 2 / num_cues - 1
    stderr = math.sqrt(1 - expected**2) / math.sqrt(num_episodes)
    assert (np.abs(returns.mean(axis=1) - expected) < 5 * stderr).all()
    # The same episodes (keys) with the oracle: +1 each.
    _, _, r, _, _ = _chain_episodes(env, _oracle(num_cues), num_episodes)
    np.testing.assert_array_equal(r.sum(axis=1), 1.0)


# ---------------------------------------------------------------- registry


def test_registry_makes_memory_envs_with_kwargs():
    assert is_jax_env("jax:MaskedCartPole-v1") and is_jax_env("jax:MemoryChain")
    assert {"jax:MaskedCartPole-v1", "jax:MemoryChain"} <= set(list_env_ids())
    assert make_env("jax:MaskedCartPole-v1").spec.obs_shape == (2,)
    spec = make_env("jax:MemoryChain").spec
    assert (spec.obs_shape, spec.num_actions, spec.max_episode_steps) == ((4,), 2, 11)
    spec = env_spec("jax:MemoryChain", length=3, num_cues=np.int64(4))
    assert spec.name == "jax:MemoryChain"
    assert (spec.obs_shape, spec.num_actions, spec.max_episode_steps) == ((6,), 4, 4)


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [
        ("jax:MemoryChain", {"length": 0}, "length must be >= 1, got 0"),
        ("jax:MemoryChain", {"num_cues": 1}, "num_cues must be >= 2, got 1"),
        ("jax:MemoryChain", {"length": 2.5}, "length must be an integer >= 1, got 2.5"),
        ("jax:MemoryChain", {"length": "ten"}, "length must be an integer"),
        ("jax:MemoryChain", {"num_cues": True}, "num_cues must be an integer"),
        ("jax:MemoryChain", {"size": 3}, "unknown argument.*size.*length, num_cues"),
        ("jax:MaskedCartPole-v1", {"length": 3}, "unknown argument.*length.*no arguments"),
    ],
)
def test_registry_rejects_bad_kwargs(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_env(env_id, **kwargs)
    with pytest.raises(ValueError, match=message):
        env_spec(env_id, **kwargs)
