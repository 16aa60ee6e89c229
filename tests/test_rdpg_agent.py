"""RDPG (`agents.rdpg`): shapes, the recurrent states' reset at episode starts and in
replay, the critic's loss and both gradients against step-by-step references, jit +
vmap over members, and a tiny run through the command line with a checkpoint round
trip. The tests share one agent and one compiled program of each kind: compiling is
most of their time."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import checkpoint, configs
from jaxrl57.agents.rdpg import (
    RDPGConfig,
    RDPGHParams,
    make_networks,
    make_rdpg,
    make_sequence_gradients,
)
from jaxrl57.cli import main
from jaxrl57.envs.base import EnvSpec
from jaxrl57.replay.base import EnvSteps

E = 3
SPEC = EnvSpec("toy", obs_shape=(2,), action_low=(-2.0, 0.0), action_high=(2.0, 1.0),
               max_episode_steps=50)
LOW, HIGH = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
# Sequences of 2 burn-in + 4 trained + 1 bootstrap steps; twin critics (critic 0 drives
# the actor, the target takes their minimum).
SMALL = dict(hidden_sizes=(8,), core_size=6, head_hidden=(8,), burn_in=2, trace_length=4,
             period=3, batch_size=4, replay_capacity=32, num_critics=2, exploration="ou")
STEPS = 12


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent XLA cache for this module, so the command-line run and the
    drivers of the same program compile it once (results do not depend on it)."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cc.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    cc.reset_cache()


def _hp(**values):
    return RDPGHParams.create(**{"learning_starts": 4, "random_steps": 0,
                                 "exploration_noise": 0.3, **values})


@functools.cache
def _agent():
    return make_rdpg(RDPGConfig(**SMALL), SPEC, E)


@functools.cache
def _jitted():
    agent = _agent()
    return (jax.jit(agent.init), jax.jit(agent.actor.act), jax.jit(agent.observe),
            jax.jit(agent.actor.observe))


def _episode_ends(t):
    """Env e's episodes end after steps (4, 9), (5,) and (6,): at different steps per
    env, the one at step 6 a termination."""
    return np.array([False, False, t == 6]), np.array([t in (4, 9), t == 5, False])


def _play(hp, seed=0):
    """Acts, observes and stores STEPS steps of E toy envs (random observations and
    rewards) as the runners do. Returns the learner state and the actor's states:
    `states[t]` before step t, as `actor.observe` left it (`states[STEPS]` the last)."""
    init, act, observe, actor_observe = _jitted()
    agent = _agent()
    state = init(jax.random.PRNGKey(seed), hp)
    actor = agent.actor.init(agent.view(state), E)
    key = jax.random.PRNGKey(seed + 100)
    states = []
    obs = jax.random.normal(key, (E, 2))
    for t in range(STEPS):
        key, k1, k2, k3 = jax.random.split(key, 4)
        states.append(actor)
        actions, actor = act(agent.view(state), actor, obs, k1)
        next_obs, reward = jax.random.normal(k2, (E, 2)), jax.random.normal(k3, (E,))
        term, trunc = (jnp.asarray(x) for x in _episode_ends(t))
        state = observe(state, EnvSteps(obs, actions, reward, term, trunc, next_obs), actor)
        actor = actor_observe(actor, actions, reward, term | trunc)
        obs = jnp.where((term | trunc)[:, None], -next_obs, next_obs)  # the next episode
    return state, states + [actor]


@pytest.fixture(scope="module")
def played():
    return _play(_hp())


def test_actions_and_states_have_the_specs_shapes(played):
    agent = _agent()
    state, _ = played
    _, act, _, _ = _jitted()
    view = agent.view(state)
    actor = agent.actor.init(view, E)
    assert actor.carry.policy[0].shape == (E, 6) and actor.carry.critic[0].shape == (E, 2, 6)
    obs = jax.random.normal(jax.random.PRNGKey(1), (E, 2)) * 100
    loud = view._replace(hparams=_hp(exploration_noise=5.0))
    actions, actor = act(loud, actor, obs, jax.random.PRNGKey(2))
    assert actions.shape == (E, 2) and actions.dtype == jnp.float32
    assert np.all((actions >= LOW) & (actions <= HIGH))  # noise far past the bounds: clipped
    # The step moved both cores' states on (the critics' is advanced for replay).
    for leaf in jax.tree.leaves(actor.next_carry):
        assert leaf.dtype == jnp.float32 and np.all(np.any(np.asarray(leaf) != 0.0, -1))
    evals, eval_actor = jax.jit(agent.eval_actor.act)(view, agent.eval_actor.init(view, E), obs,
                                                      jax.random.PRNGKey(3))
    assert evals.shape == (E, 2) and np.all((evals >= LOW) & (evals <= HIGH))
    # Evaluation stores nothing: only the actor's core moves.
    assert np.all(np.asarray(eval_actor.next_carry.critic[0]) == 0.0)
    assert np.any(np.asarray(eval_actor.next_carry.policy[0]) != 0.0)
    # Random steps: uniform in the bounds, whatever the actor says.
    random = view._replace(hparams=_hp(random_steps=100))
    draws = jax.jit(jax.vmap(lambda k: act(random, agent.actor.init(view, E), obs, k)[0]))(
        jax.random.split(jax.random.PRNGKey(4), 400))
    np.testing.assert_allclose(draws.reshape(-1, 2).mean(0), (LOW + HIGH) / 2, atol=0.06)


def test_states_reset_at_episode_starts(played):
    state, states = played
    # After an episode's last step the next one starts from zero states, no previous
    # action and a restarted OU process; elsewhere the states carry on.
    for t in range(1, STEPS + 1):
        done = np.logical_or(*_episode_ends(t - 1))
        actor = states[t]  # its next_carry: the states `act` reached on step t - 1
        np.testing.assert_array_equal(actor.reset, done)
        for leaf, reached in zip(jax.tree.leaves(actor.carry), jax.tree.leaves(actor.next_carry),
                                 strict=True):
            for e in range(E):
                if done[e]:
                    assert np.all(np.asarray(leaf[e]) == 0.0)
                else:
                    np.testing.assert_array_equal(leaf[e], reached[e])
        for e in range(E):
            assert np.all(np.asarray(actor.prev_action[e]) == 0.0) == bool(done[e])
            assert np.all(np.asarray(actor.noise[e]) == 0.0) == bool(done[e])
    # The networks zero the state and the previous action themselves at a reset step.
    agent = _agent()
    view = agent.view(state)
    obs = jnp.ones((E, 2))
    junk = states[3]._replace(reset=jnp.ones(E, bool), prev_action=jnp.full((E, 2), 7.0),
                              carry=jax.tree.map(lambda x: x + 3.0, states[3].carry))
    fresh = agent.eval_actor.init(view, E)
    np.testing.assert_allclose(agent.eval_actor.act(view, junk, obs, jax.random.PRNGKey(0))[0],
                               agent.eval_actor.act(view, fresh, obs, jax.random.PRNGKey(0))[0],
                               rtol=1e-6)


def test_sequences_hold_the_stored_states_reset_flags_and_final_observations(played):
    cfg = RDPGConfig(**SMALL)
    state, states = played
    # Each env pushes its steps and, after an episode's last step, its final observation
    # (mask 0, no reset flag), stored with the states after that step (`act`'s next_carry).
    pushed = [[] for _ in range(E)]
    order = []  # (env, push) in the order the pushes reach the buffer
    for t in range(STEPS):
        done = np.logical_or(*_episode_ends(t))
        for kind in ("step", "final"):
            for e in range(E):
                if kind == "step" or done[e]:
                    pushed[e].append((kind, t))
                    order.append(e)
    replay, slot = state.replay, 0
    seen = [0] * E
    for e in order:  # the emission rule of `replay.sequence`
        seen[e] += 1
        c = seen[e]
        if c < cfg.seq_len or (c - cfg.seq_len) % cfg.period:
            continue
        window = pushed[e][c - cfg.seq_len:c]
        kind, t0 = window[0]
        start = states[t0].carry if kind == "step" else states[t0 + 1].next_carry
        for stored, leaf in zip(jax.tree.leaves(replay.start_core_states),
                                jax.tree.leaves(start), strict=True):
            np.testing.assert_array_equal(stored[slot], leaf[e])
        np.testing.assert_array_equal(replay.steps["mask"][slot],
                                      [k == "step" for k, _ in window])
        np.testing.assert_array_equal(replay.steps["reset"][slot],
                                      [k == "step" and bool(states[t].reset[e])
                                       for k, t in window])
        finals = [i for i, (k, _) in enumerate(window) if k == "final" and i > 0]
        for i in finals:  # the final observation continues its episode's history
            np.testing.assert_array_equal(replay.steps["prev_action"][slot, i],
                                          replay.steps["action"][slot, i - 1])
            assert replay.steps["discount"][slot, i - 1] == (0.0 if window[i][1] == 6 else 1.0)
        slot += 1
    assert slot == int(replay.size) >= 4


# ------------------------------------------------------------------- the gradients


def _batch(cfg, B, seed=0):
    rng = np.random.default_rng(seed)
    L = cfg.seq_len
    mask = np.ones((L, B), np.float32)
    reset = np.zeros((L, B), bool)
    mask[cfg.burn_in + 1, 0] = 0.0  # a final observation inside the trained part ...
    reset[cfg.burn_in + 2, 0] = True  # ... followed by an episode start
    reset[1, 1] = True  # an episode start inside the burn-in
    return jax.tree.map(jnp.asarray, dict(
        obs=rng.normal(size=(L, B, 2)).astype(np.float32),
        action=rng.uniform(LOW, HIGH, (L, B, 2)).astype(np.float32),
        reward=rng.normal(size=(L, B)).astype(np.float32),
        discount=(rng.uniform(size=(L, B)) > 0.2).astype(np.float32), mask=mask,
        reset=reset, prev_action=rng.uniform(LOW, HIGH, (L, B, 2)).astype(np.float32)))


@functools.cache
def _gradients(bounding):
    cfg = RDPGConfig(**{**SMALL, "action_bounding": bounding})
    networks = make_networks(cfg, SPEC)
    return cfg, networks, jax.jit(make_sequence_gradients(networks, cfg, SPEC))




def _inputs(steps, sl):
    return steps["obs"][sl], steps["prev_action"][sl], steps["reset"][sl]


def _setup(played, bounding, B=3, seed=0):
    """The networks of the played agent (the bounding does not change their parameters)
    and a target that differs from them."""
    cfg, networks, grads = _gradients(bounding)
    rng = np.random.default_rng(seed)  # NumPy: a JAX draw per leaf shape would compile each

    def noisy(x, scale):
        return jnp.asarray(np.asarray(x) + scale * rng.normal(size=x.shape), jnp.float32)

    params = played[0].params
    target = jax.tree.map(lambda x: noisy(x, 0.1), params)
    start = jax.tree.map(lambda x: noisy(x, 0.5), networks.zero_state(B))
    return cfg, networks, grads, params, target, _batch(cfg, B, seed), start


def test_critic_loss_and_gradient_are_the_td_errors_of_each_step(played):
    """y_t = r_t + gamma d_t min_i Q'_i(h_{t+1}, mu'(h_{t+1})) against Q_i(h_t, a_t), with
    every h built by stepping the networks one step at a time from the stored state,
    and no gradient through the burn-in."""
    cfg, networks, grads, params, target, steps, start = _setup(played, "tanh")
    c_grads, _, metrics = grads(params, target, steps, start, _hp(discount=0.9),
                                jax.random.PRNGKey(0))
    burn, L = cfg.burn_in, cfg.seq_len

    @jax.jit
    def target_values(target):  # [L, B]: min_i Q'_i(h_t, mu'(h_t)), one step at a time
        q, p_carry, c_carry = [], start.policy, start.critic
        for t in range(L):
            now = _inputs(steps, slice(t, t + 1))
            a_t, p_carry = networks.policy(target.actor, *now, p_carry)
            z_t, c_carry = networks.encode(target.critic, *now, c_carry)
            q.append(jnp.min(networks.value(target.critic, z_t, a_t)[:, 0], axis=0))
        return jnp.stack(q)

    q_next = target_values(target)
    y = steps["reward"][burn:L - 1] + 0.9 * steps["discount"][burn:L - 1] * q_next[burn + 1:]
    mask = steps["mask"][burn:L - 1]
    _, warm = networks.encode(params.critic, *_inputs(steps, slice(0, burn)), start.critic)

    def reference(critic_params):
        carry, loss = jax.lax.stop_gradient(warm), 0.0
        for t in range(burn, L - 1):
            z, carry = networks.encode(critic_params, *_inputs(steps, slice(t, t + 1)), carry)
            q = networks.value(critic_params, z, steps["action"][t:t + 1])[:, 0]  # [N, B]
            loss += jnp.sum(mask[t - burn] * (q - y[t - burn]) ** 2)
        return loss / jnp.sum(mask)

    loss, expected = jax.jit(jax.value_and_grad(reference))(params.critic)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7),
                 c_grads, expected)


@pytest.mark.parametrize("bounding", ["tanh", "inverting_gradients"])
def test_actor_gradient_is_the_critics_action_gradient_through_the_unroll(played, bounding):
    cfg, networks, grads, params, target, steps, start = _setup(played, bounding, seed=3)
    _, a_grads, metrics = grads(params, target, steps, start, _hp(), jax.random.PRNGKey(0))
    burn = cfg.burn_in
    trained = _inputs(steps, slice(burn, -1))
    mask = steps["mask"][burn:-1]

    @jax.jit
    def reference(params):
        _, p_carry = networks.policy(params.actor, *_inputs(steps, slice(0, burn)), start.policy)
        _, c_carry = networks.encode(params.critic, *_inputs(steps, slice(0, burn)),
                                     start.critic)
        z, _ = networks.encode(params.critic, *trained, c_carry)

        def mean_q(actor_params):  # critic 0 at the actor's actions, over the unmasked steps
            mu, _ = networks.policy(actor_params, *trained, p_carry)
            return jnp.sum(mask * networks.value(params.critic, z, mu)[0]) / jnp.sum(mask)

        if bounding == "tanh":  # the deterministic policy gradient: jax.grad itself
            return mean_q(params.actor), jax.grad(lambda p: -mean_q(p))(params.actor)
        # dQ/da inverted at the bounds (Hausknecht & Stone 2016), then through mu.
        mu, vjp = jax.vjp(lambda p: networks.policy(p, *trained, p_carry)[0], params.actor)
        dqda = jax.grad(lambda a: jnp.sum(mask * networks.value(params.critic, z, a)[0]))(mu)
        room = jnp.where(dqda > 0, HIGH - mu, mu - LOW) / (HIGH - LOW)
        return mean_q(params.actor), vjp(-dqda * room / jnp.sum(mask))[0]

    actor_q, expected = reference(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7),
                 a_grads, expected)
    np.testing.assert_allclose(metrics["actor_q"], actor_q, rtol=1e-5)


# ------------------------------------------------------------------- the learner


def test_updates_trace_once_wait_for_the_replay_and_vmap_over_members():
    agent = _agent()
    hps = [_hp(critic_learning_rate=1e-3),
           _hp(critic_learning_rate=1e-2, policy_delay=2, target_noise=0.2),
           _hp(learning_starts=1_000)]  # never ready: its update is a no-op
    members = [_play(hp, seed=i)[0] for i, hp in enumerate(hps)]
    states = jax.tree.map(lambda *x: jnp.stack(x), *members)
    chex.clear_trace_counter()
    update = jax.jit(jax.vmap(chex.assert_max_traces(agent.update, n=1)))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    s1, m1 = update(states, keys)
    s2, m2 = update(s1, keys + 1)
    np.testing.assert_array_equal(m2["updated"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(s2.updates, [2, 2, 0])
    for name in agent.metric_names:
        assert np.all(np.isfinite(np.asarray(m2[name]))), name

    def moved(new, old):  # [K] bool: any leaf of member k changed
        return np.any(np.stack([np.any(np.asarray(a != b).reshape(a.shape[0], -1), -1)
                                for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old),
                                                strict=True)]), axis=0)

    np.testing.assert_array_equal(moved(s1.params.critic, states.params.critic),
                                  [True, True, False])
    # Member 1 waits `policy_delay` = 2 critic updates for its actor and target step.
    np.testing.assert_array_equal(moved(s1.params.actor, states.params.actor),
                                  [True, False, False])
    np.testing.assert_array_equal(moved(s2.params.actor, s1.params.actor), [True, True, False])
    np.testing.assert_array_equal(moved(s1.target_params, states.target_params),
                                  [True, False, False])
    # Polyak averaging with tau (0.005).
    expected = jax.tree.map(lambda t, p: 0.005 * p + 0.995 * t, states.target_params,
                            s1.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-7),
                 s1.target_params, expected)


def test_impossible_settings_and_discrete_specs_are_refused():
    for bad, needle in [(dict(trace_length=0), "trace_length"), (dict(period=0), "period"),
                        (dict(batch_size=64, replay_capacity=32), "batch_size"),
                        (dict(action_bounding="sigmoid"), "action_bounding"),
                        (dict(core_size=0), "core_size")]:
        with pytest.raises(ValueError, match=needle):
            RDPGConfig(**bad).validate()
    with pytest.raises(ValueError, match="continuous action space"):
        make_rdpg(RDPGConfig(), EnvSpec("d", (3,), num_actions=2), 1)


def test_the_experiments_listed_settings_are_the_presets():
    path = pathlib.Path(__file__).resolve().parent.parent / "experiments/rdpg_masked_pendulum.py"
    spec = importlib.util.spec_from_file_location("experiment_rdpg_masked_pendulum", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def everything(s):
        return (dataclasses.asdict(s.agent_config), s.hparams, dataclasses.asdict(s.run_config))

    listed = configs.resolve(script.AGENT, script.ENV, dict(script.SETTINGS))
    assert everything(listed) == everything(configs.resolve(script.AGENT, script.ENV, {}))
    assert listed.family.name == "rdpg" and listed.run_config.total_steps == 15_000


TINY = {"num_envs": "2", "num_rows": "2", "core_size": "8", "head_hidden": "8",
        "burn_in": "2", "trace_length": "4", "period": "4", "batch_size": "4",
        "learning_starts": "4", "random_steps": "100", "eval_episodes": "2",
        "eval_max_steps": "20"}


@pytest.mark.slow
def test_tiny_run_through_the_command_line_and_a_checkpoint_round_trip(tmp_path, played):
    env, out = "jax:MaskedPendulum-v1", str(tmp_path / "run")
    sets = [arg for name, value in TINY.items() for arg in ("--set", f"{name}={value}")]
    argv = ["train", "rdpg", "--env", env, "--steps", "480", *sets,
            "--no-progress", "--out", out]
    assert main(argv) == 0
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["finished"] and summary["env_steps"] == 480
    assert all(np.isfinite(m["final_eval_return"]) for m in summary["per_member"])
    # --resume restores the run's checkpoint into the driver's state (nothing left to run).
    assert main(["train", "--resume", out, "--no-progress"]) == 0
    # The learner's and the actor's states, replay and stored core states included, come
    # back from a checkpoint leaf for leaf.
    state, states = played
    path = str(tmp_path / "ckpt")
    checkpoint.save(path, (state, states[-1]), {"note": "rdpg"})
    restored, meta = checkpoint.load(path, like=(state, states[-1]))
    assert meta["note"] == "rdpg"
    assert jax.tree.structure(restored) == jax.tree.structure((state, states[-1]))
    jax.tree.map(np.testing.assert_array_equal, restored, (state, states[-1]))
