"""R2D2 as Kapturowski et al. 2019 and acme's R2D2 train it: bootstrapping at time limits,
80 trained steps after a 40-step burn-in, Atari training episodes that do not end at a
lost life, and a zero previous action, reward and recurrent state at every episode's
first step."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import configs, envs
from jaxrl57.agents.r2d2 import R2D2Config, R2D2HParams, make_network, make_r2d2, make_sequence_loss
from jaxrl57.envs.base import EnvSpec
from jaxrl57.replay.base import EnvSteps

SPEC = envs.make_env("jax:MemoryChain").spec  # obs [4], 2 actions
# Sequences of 6 steps (no burn-in, 5 trained, 1 bootstrap), one every 5 pushes.
CFG = R2D2Config(hidden_sizes=(8,), core_size=8, head_hidden=(8,), batch_size=2,
                 replay_capacity=16, burn_in=0, trace_length=5, period=5, n_step=2)
GAMMA = 0.9


@functools.cache
def _agent():
    """The 2-env agent of CFG with its jitted act, observe (of learner and actor,
    as the runners call them) and sequence loss."""
    agent = make_r2d2(CFG, SPEC, 2)
    loss_fn = jax.jit(make_sequence_loss(make_network(CFG, SPEC), CFG))

    def act(learner, actor, obs, key):
        return agent.actor.act(agent.view(learner), actor, obs, key)

    def observe(learner, actor, steps):
        return (agent.observe(learner, steps, actor),
                agent.actor.observe(actor, steps.action, steps.reward,
                                    steps.terminated | steps.truncated))

    return agent, jax.jit(act), jax.jit(observe), loss_fn


def _start(seed):
    """The learner of the 2-env agent, with its actor's initial state."""
    agent = _agent()[0]
    learner = agent.init(jax.random.PRNGKey(seed), _hp())
    return learner, agent.actor.init(agent.view(learner), 2)


def _h(x, eps=1e-3):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1.0) - 1.0) + eps * x


def _h_inv(x, eps=1e-3):
    return np.sign(x) * (((np.sqrt(1.0 + 4.0 * eps * (np.abs(x) + 1.0 + eps)) - 1.0)
                          / (2.0 * eps)) ** 2 - 1.0)


def _feed(state, actor, num_steps, *, ends, seed=0):
    """Drives `act`/`observe` by hand for E = 2 envs: random observations, actions and
    rewards; `ends[t] = (terminated [2], truncated [2])` where an episode ends.
    Returns the learner state, the actor state and a log of the steps."""
    rng = np.random.default_rng(seed)
    _, act, observe, _ = _agent()
    obs = rng.normal(size=(2, 4)).astype(np.float32)
    log = []
    for t in range(num_steps):
        actions, actor = act(state, actor, obs, jax.random.PRNGKey(t))
        reward = rng.normal(size=2).astype(np.float32)
        term, trunc = ends.get(t, (np.zeros(2, bool), np.zeros(2, bool)))
        next_obs = rng.normal(size=(2, 4)).astype(np.float32)
        log.append(dict(obs=obs, action=np.asarray(actions), reward=reward, next_obs=next_obs,
                        next_carry=actor.next_carry))
        state, actor = observe(state, actor, EnvSteps(obs, actions, reward, jnp.asarray(term),
                                                      jnp.asarray(trunc), next_obs))
        done = np.asarray(term) | np.asarray(trunc)
        # What the env hands the actor next: a new episode's first observation.
        obs = np.where(done[:, None], rng.normal(size=(2, 4)), next_obs).astype(np.float32)
    return state, actor, log


def _hp():
    return R2D2HParams.create(learning_starts=1, discount=GAMMA)


def test_truncation_bootstraps_from_the_final_observation_and_termination_does_not():
    """Env 0's episode is cut by a time limit after step 2, env 1's terminates there.
    The stored sequence holds steps 0-2, the final observation, then steps 3-4. The
    2-step targets of steps 1 and 2 of env 0 end in the value of the final
    observation (h^-1 of its double-Q target value); env 1's end in nothing."""
    agent, _, _, loss_fn = _agent()
    ends = {2: (np.array([False, True]), np.array([True, False]))}
    state, _, log = _feed(*_start(0), 5, ends=ends)
    replay = state.replay
    assert int(replay.size) == 2  # one 6-step sequence per env
    steps = jax.tree.map(lambda x: np.asarray(x[:2]), replay.steps)  # [B = env, T]
    np.testing.assert_array_equal(steps["final"], np.eye(6, dtype=bool)[[3, 3]])
    np.testing.assert_array_equal(steps["obs"][:, 3], log[2]["next_obs"])  # kept, not dropped
    np.testing.assert_array_equal(steps["discount"][:, 2], [1.0, 0.0])  # only termination cuts
    np.testing.assert_array_equal(steps["mask"][:, 2:4], [[1, 0], [1, 0]])

    time_major = jax.tree.map(lambda x: jnp.swapaxes(jnp.asarray(x), 0, 1), steps)
    start = jax.tree.map(lambda x: x[:2], replay.start_core_states)

    def td_of(obs):
        batch = dict(time_major, obs=obs)
        return np.asarray(loss_fn(state.params, state.params, batch, start, None,
                                  state.hparams)[1][3])

    td = td_of(time_major["obs"])
    # The same from the network's Q-values, written from the paper (eq. of sec. 2.3).
    q = np.asarray(make_network(CFG, SPEC).apply(
        state.params, time_major["obs"], time_major["prev_action"], time_major["prev_reward"],
        time_major["reset"], start)[0], np.float64)  # [T, B, A]
    r, a = steps["reward"].astype(np.float64), steps["action"]
    v3 = _h_inv(q[3, np.arange(2), np.argmax(q[3], -1)])  # value of the final observation
    cut = np.array([1.0, 0.0])  # env 0 truncated, env 1 terminated
    expected_2 = _h(r[:, 2] + GAMMA * cut * v3)
    expected_1 = _h(r[:, 1] + GAMMA * r[:, 2] + GAMMA**2 * cut * v3)
    # float32 h^-1 (a difference of squares over 2 eps) is good to ~1e-4 here.
    for b in range(2):
        np.testing.assert_allclose(td[b, 2], expected_2[b] - q[2, b, a[b, 2]], atol=1e-4)
        np.testing.assert_allclose(td[b, 1], expected_1[b] - q[1, b, a[b, 1]], atol=1e-4)
    assert np.all(td[:, 3] == 0.0)  # the final observation itself carries no loss
    assert abs(GAMMA * v3[0]) > 1e-2  # the bootstrap term is far above that tolerance

    # Changing the final observation's Q (through its observation) moves the
    # truncated targets and leaves the terminated ones as they were.
    td_other = td_of(time_major["obs"].at[3].add(3.0))
    assert np.all(np.abs(td_other[0, 1:3] - td[0, 1:3]) > 1e-6)
    np.testing.assert_array_equal(td_other[1, :3], td[1, :3])


def test_episode_start_feeds_zero_action_reward_and_state():
    """After an episode end the actor acts from the zero state with no previous
    action or reward, and the replay stores exactly that for the learner."""
    agent, act, _, _ = _agent()
    ends = {3: (np.array([True, False]), np.array([False, True]))}
    # Actions of 1 and nonzero rewards before the end, so zeros are not a coincidence.
    state, actor, log = _feed(*_start(1), 4, ends=ends, seed=3)
    assert all(np.abs(entry["reward"]).min() > 0 for entry in log)
    # Pushes per env: steps 0-3 and the final observation, then the new episode's
    # steps 0-5: sequences of pushes 1-6 (the new episode starts at its last step)
    # and 6-11 (it starts at the new episode's first step).
    _, mid = act(state, actor, np.ones((2, 4), np.float32), jax.random.PRNGKey(9))
    assert np.all(np.asarray(mid.reset))
    np.testing.assert_array_equal(mid.prev_action, [0, 0])
    np.testing.assert_array_equal(mid.prev_reward, [0.0, 0.0])
    for leaf in jax.tree.leaves(mid.carry):
        np.testing.assert_array_equal(leaf, 0.0)
    for leaf in jax.tree.leaves(log[3]["next_carry"]):
        assert np.all(np.abs(np.asarray(leaf)) > 0)  # the state was not zero before

    state, _, _ = _feed(state, actor, 6, ends={}, seed=4)
    steps = jax.tree.map(np.asarray, state.replay.steps)
    size = int(state.replay.size)
    assert size == 4
    firsts = [(i, k) for i in range(size) for k in range(CFG.seq_len)
              if steps["reset"][i, k] and k > 0]
    assert firsts  # episode starts inside stored sequences
    for i, k in firsts:
        assert steps["prev_action"][i, k] == 0 and steps["prev_reward"][i, k] == 0.0
    starts_at_reset = [i for i in range(size) if steps["reset"][i, 0] and i >= 2]
    assert starts_at_reset
    for i in starts_at_reset:
        for leaf in jax.tree.leaves(state.replay.start_core_states):
            np.testing.assert_array_equal(np.asarray(leaf)[i], 0.0)

    # Evaluation: the episode's end zeroes what the next step is fed.
    actor = agent.eval_actor.init(agent.view(state), 2)
    actor = agent.eval_actor.observe(
        actor._replace(next_carry=jax.tree.map(jnp.ones_like, actor.next_carry)),
        jnp.array([1, 1]), jnp.array([2.0, -1.0]), jnp.array([True, False]))
    np.testing.assert_array_equal(actor.prev_action, [0, 1])
    np.testing.assert_array_equal(actor.prev_reward, [0.0, -1.0])
    np.testing.assert_array_equal(actor.reset, [True, False])
    for leaf in jax.tree.leaves(actor.carry):
        np.testing.assert_array_equal(np.asarray(leaf)[0], 0.0)
        np.testing.assert_array_equal(np.asarray(leaf)[1], 1.0)


def test_atari_preset_trains_80_steps_after_40_burn_in():
    """Table 2: sequences of 80 trained steps after a 40-step burn-in, a new one every
    40 steps: 121 stored steps, of which exactly 80 carry a loss (the steps whose
    observation gets a gradient), none in the burn-in."""
    settings = configs.resolve("r2d2", "Breakout-v5", {})
    cfg = settings.agent_config
    assert (cfg.burn_in, cfg.trace_length, cfg.period, cfg.seq_len) == (40, 80, 40, 121)
    # The Atari sequence layout on a small network (the count does not depend on it).
    small = dataclasses.replace(cfg, torso="mlp", hidden_sizes=(8,), core_size=8,
                                head_hidden=(8,))
    spec = EnvSpec(name="vec", obs_shape=(4,), obs_dtype=np.float32, num_actions=3,
                   max_episode_steps=1_000)
    network = make_network(small, spec)
    loss_fn = make_sequence_loss(network, small)
    T, B = small.seq_len, 1
    rng = np.random.default_rng(0)
    steps = dict(
        obs=rng.normal(size=(T, B, 4)).astype(np.float32),
        action=rng.integers(0, 3, (T, B)).astype(np.int32),
        reward=rng.normal(size=(T, B)).astype(np.float32), discount=np.ones((T, B), np.float32),
        mask=np.ones((T, B), np.float32), reset=np.zeros((T, B), bool),
        final=np.zeros((T, B), bool), prev_action=np.zeros((T, B), np.int32),
        prev_reward=np.zeros((T, B), np.float32))
    agent = make_r2d2(small, spec, B)
    state = agent.init(jax.random.PRNGKey(0), R2D2HParams.create())

    def loss_of_obs(obs):
        return loss_fn(state.params, state.params, dict(steps, obs=obs),
                       agent.actor.init(agent.view(state), B).carry, None, state.hparams)

    (_, aux), g = jax.jit(jax.value_and_grad(loss_of_obs, has_aux=True))(steps["obs"])
    trained = np.flatnonzero(np.any(np.asarray(g)[:, 0] != 0.0, axis=-1))
    np.testing.assert_array_equal(trained, np.arange(40, 120))
    assert aux[3].shape == (B, 80)  # the loss's time axis


def test_atari_training_episodes_follow_the_agent():
    """R2D2 trains on whole games with unclipped rewards (sec. 2.3), the DQN family
    with Nature's lost-life episode ends and clipped rewards; evaluation always plays
    the whole game with real rewards."""
    assert configs.resolve("r2d2", "Breakout-v5", {}).train_env == dict(
        episodic_life=False, reward_clip=False)
    assert configs.resolve("dqn", "Breakout-v5", {}).train_env == dict(
        episodic_life=True, reward_clip=True)
    assert configs.resolve("r2d2", "jax:MemoryChain", {}).train_env == {}
    pytest.importorskip("envpool")
    from jaxrl57.envs.envpool_env import envpool_kwargs

    for agent, expected in (("r2d2", False), ("dqn", True)):
        train_env = configs.resolve(agent, "Breakout-v5", {}).train_env
        kwargs = envpool_kwargs("Breakout-v5", train=True, **train_env)
        assert kwargs["episodic_life"] is expected and kwargs["reward_clip"] is expected
        evaluation = envpool_kwargs("Breakout-v5", train=False, **train_env)
        assert evaluation["episodic_life"] is False and evaluation["reward_clip"] is False
    # Without an agent's settings the env layer plays the whole game.
    kwargs = envpool_kwargs("Breakout-v5")
    assert kwargs["episodic_life"] is False and kwargs["reward_clip"] is False


def test_envpool_driver_gives_the_training_envs_the_agents_settings(monkeypatch):
    """The EnvPool runner builds its training pool with the family's settings under
    the user's --env-arg (the pool itself is not built: the check stops there)."""
    from jaxrl57.build import make_driver
    from jaxrl57.envs import envpool_env

    calls = []

    class Built(Exception):
        pass

    def make_envpool(env_id, num_envs, seed, *, train=True, **kwargs):
        calls.append(dict(kwargs, train=train))
        raise Built

    monkeypatch.setattr(envpool_env, "make_envpool", make_envpool)
    for agent, user, expected in (("r2d2", {}, False), ("dqn", {}, True),
                                  ("dqn", {"reward_clip": False}, True)):
        s = configs.resolve(agent, "Breakout-v5", {})
        with pytest.raises(Built):
            make_driver("Breakout-v5", s, [s.hparams], [0], env_kwargs=user)
        assert calls[-1]["train"] is True and calls[-1]["episodic_life"] is expected
        assert calls[-1]["reward_clip"] is user.get("reward_clip", expected)
