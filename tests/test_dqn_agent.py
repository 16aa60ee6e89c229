"""Tests of the DQN-family agent (`jaxrl57.agents.dqn`): tracing, vmapped
populations, the target network, the algorithm variants, and a small learning check."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import configs, envs
from jaxrl57.agents.dqn import DQNConfig, DQNHParams, make_dqn
from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners.on_device import make_train

E = 4  # lockstep envs
SPEC = envs.make_env("jax:Catch").spec  # size 8: obs [8, 8, 1], 3 actions
SMALL = dict(hidden_sizes=(32,), replay_capacity=256, batch_size=16)


def _hp(**values):
    """Hyperparameters with replay warm after 16 transitions (`_fill` writes 64)."""
    return DQNHParams.create(**{"learning_starts": 16, **values})


def _agent(**overrides):
    return make_dqn(DQNConfig(**{**SMALL, **overrides}), SPEC, E)


def _transitions(seed, n):
    """`n` batches of E random transitions shaped like Catch's (NumPy: cheap to make)."""
    rng = np.random.default_rng(seed)
    return dict(
        obs=rng.uniform(size=(n, E, *SPEC.obs_shape)).astype(np.float32),
        action=rng.integers(0, SPEC.num_actions, (n, E)).astype(np.int32),
        reward=rng.normal(size=(n, E)).astype(np.float32),
        terminated=rng.uniform(size=(n, E)) < 0.2,
        truncated=np.zeros((n, E), bool),
        next_obs=rng.uniform(size=(n, E, *SPEC.obs_shape)).astype(np.float32),
    )


def _fill(agent, state, seed=1, n=16):
    """Observes `n` steps of E envs (one jitted scan)."""

    def body(s, t):
        return agent.observe(s, EnvSteps(t["obs"], t["action"], t["reward"], t["terminated"],
                                          t["truncated"], t["next_obs"])), None

    return jax.jit(lambda s, tr: jax.lax.scan(body, s, tr)[0])(state, _transitions(seed, n))


def _tree_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _tree_copy(a, b) -> bool:
    """Equal to float32 rounding: XLA may recompute the new online weights inside
    the target's fusion, and without LLVM's optimisations (the suite's default
    selection) that copy can round a last bit differently. One update moves the
    weights by far more than 1e-6 of their size."""
    return all(np.allclose(x, y, rtol=1e-6, atol=0) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_agent_functions_trace_once():
    agent = _agent()
    chex.clear_trace_counter()
    init = jax.jit(chex.assert_max_traces(agent.init, n=1))
    view = jax.jit(chex.assert_max_traces(agent.view, n=1))
    # chex counts traces per code object, and both actors' `act` are the one lambda
    # of `stateless_actor`: each gets a function of its own here.
    act = jax.jit(chex.assert_max_traces(lambda *a: agent.actor.act(*a), n=1))
    act_eval = jax.jit(chex.assert_max_traces(lambda *a: agent.eval_actor.act(*a), n=1))
    observe = jax.jit(chex.assert_max_traces(agent.observe, n=1))
    update = jax.jit(chex.assert_max_traces(agent.update, n=1))
    can_update = jax.jit(chex.assert_max_traces(agent.can_update, n=1))

    state = init(jax.random.PRNGKey(0), _hp())
    assert not bool(can_update(state))
    # Before replay is warm an update is a no-op (same compiled function).
    cold, metrics = update(state, jax.random.PRNGKey(99))
    assert float(metrics["updated"]) == 0.0 and int(cold.updates) == 0
    assert _tree_equal(cold.params, state.params)
    assert _tree_equal(cold.opt_state, state.opt_state)
    tr = _transitions(1, 8)
    for i in range(8):
        actions, actor = act(view(state), (), tr["obs"][i], jax.random.PRNGKey(i))
        assert actions.shape == (E,) and actions.dtype == jnp.int32 and actor == ()
        state = observe(state, EnvSteps(tr["obs"][i], actions, tr["reward"][i],
                                        tr["terminated"][i], tr["truncated"][i],
                                        tr["next_obs"][i]), actor)
        assert act_eval(view(state), (), tr["obs"][i], jax.random.PRNGKey(i))[0].shape == (E,)
    assert bool(can_update(state))
    losses = []
    for i in range(5):  # would raise on a retrace (e.g. a dtype or weak type drifting)
        state, metrics = update(state, jax.random.PRNGKey(100 + i))
        assert set(metrics) == set(agent.metric_names)
        assert float(metrics["updated"]) == 1.0
        losses.append(float(metrics["loss"]))
    assert int(state.updates) == 5
    assert int(state.env_steps) == 8 * E
    assert np.all(np.isfinite(losses))


def test_vmapped_population_with_different_learning_rates():
    agent = _agent()
    lrs = np.array([1e-4, 1e-3, 1e-2], np.float32)
    members = [_hp(learning_rate=float(lr)) for lr in lrs]
    hps = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)

    state = jax.jit(jax.vmap(agent.init))(keys, hps)
    assert state.hparams.learning_rate.shape == (3,)
    np.testing.assert_allclose(state.hparams.learning_rate, lrs)
    # The same transitions for every member.
    state = jax.vmap(lambda s: _fill(agent, s))(state)
    np.testing.assert_array_equal(state.replay.store.size, [16 * E] * 3)

    update = jax.jit(jax.vmap(agent.update))
    before = state.params
    state, metrics = update(state, jax.random.split(jax.random.PRNGKey(2), 3))
    assert metrics["loss"].shape == (3,)
    # Adam's first step moves each weight by at most lr (about lr where the gradient is
    # not tiny), so each member's largest move is its own learning rate.
    moves = jax.tree.map(lambda a, b: jnp.abs(a - b).reshape(3, -1).max(axis=1),
                         state.params, before)
    largest = np.max(np.stack(jax.tree.leaves(moves)), axis=0)
    np.testing.assert_allclose(largest, lrs, rtol=0.05)

    for _ in range(3):
        state, metrics = update(state, jax.random.split(jax.random.PRNGKey(3), 3))
    np.testing.assert_array_equal(state.updates, [4, 4, 4])
    flat = np.stack([np.concatenate([np.ravel(x[m]) for x in jax.tree.leaves(state.params)])
                     for m in range(3)])
    assert not np.allclose(flat[0], flat[1]) and not np.allclose(flat[1], flat[2])
    assert len(set(np.asarray(metrics["loss"]).tolist())) == 3


def _updates(agent, hp, num):
    """Online and target params after each of `num` updates (index 0: before any)."""
    state = _fill(agent, jax.jit(agent.init)(jax.random.PRNGKey(0), hp))
    update = jax.jit(agent.update)
    online, target = [state.params], [state.target_params]
    for i in range(num):
        state, _ = update(state, jax.random.PRNGKey(10 + i))
        online.append(state.params)
        target.append(state.target_params)
    return online, target


def test_target_network_periodic_copy():
    agent = _agent()
    online, target = _updates(agent, _hp(target_period=3, target_tau=1.0), 7)
    assert _tree_equal(target[0], online[0])
    for k in range(1, 8):
        assert not _tree_equal(online[k], online[k - 1]), "params did not move"
        if k % 3 == 0:
            assert _tree_copy(target[k], online[k]), f"target != online after update {k}"
        else:
            assert not _tree_equal(target[k], online[k]), f"target moved at update {k}"
            # Held at the last copy, bit for bit.
            assert _tree_equal(target[k], target[k - 1])
            assert _tree_copy(target[k], online[3 * (k // 3)])


def test_target_network_polyak_average():
    agent = _agent()
    online, target = _updates(agent, _hp(target_period=1, target_tau=0.5), 4)
    for k in range(1, 5):
        expected = jax.tree.map(lambda p, t: 0.5 * p + 0.5 * t, online[k], target[k - 1])
        chex.assert_trees_all_close(target[k], expected, rtol=1e-6, atol=1e-7)
        assert not _tree_equal(target[k], online[k])


@pytest.mark.parametrize("overrides", [
    dict(double=True),
    dict(double=True, dueling=True),
    dict(double=True, prioritized=True),
    dict(n_step=3),
], ids=["double", "dueling", "prioritized", "n_step3"])
def test_variants_build_and_update(overrides):
    agent = _agent(**overrides)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), _hp())
    state = _fill(agent, state)
    # n-step emits a transition only once n steps are in the window.
    expected = (16 - overrides.get("n_step", 1) + 1) * E
    assert int(state.replay.store.size) == expected
    assert bool(agent.can_update(state))
    update = jax.jit(agent.update)
    new, metrics = update(state, jax.random.PRNGKey(2))
    for name in agent.metric_names:
        assert np.isfinite(float(metrics[name])), name
    assert not _tree_equal(new.params, state.params)
    if overrides.get("prioritized"):
        # New items enter at max priority 1; the update writes |td|^alpha for the batch.
        old_store, new_store = state.replay.store, new.replay.store
        np.testing.assert_allclose(old_store.tree[-SMALL["replay_capacity"]:][:expected], 1.0)
        changed = np.flatnonzero(np.asarray(new_store.tree) != np.asarray(old_store.tree))
        assert changed.size > 0
        assert float(new_store.max_priority) >= float(old_store.max_priority)
        # Sampling follows the new priorities: a second update still works.
        update(new, jax.random.PRNGKey(3))


# Catch's family defaults as the learning test was measured with, written out so
# that retuning `jaxrl57 train`'s defaults does not move this test.
CATCH_SETTINGS = {
    "hidden_sizes": "64,64", "replay_capacity": "10000", "batch_size": "32",
    "lr_final_fraction": "0.05", "discount": "0.99", "epsilon_end": "0.05", "num_envs": "8",
    "updates_per_train": "1", "eval_episodes": "100"}


@pytest.mark.slow
def test_dqn_learns_catch():
    """Greedy DQN catches nearly every ball of Catch (size 8) after 24k env steps, on
    4 seeds trained as one vmapped program.

    A seed's trajectory depends on the CPU's float rounding, so the claim is on
    the seeds together: over seeds 0-47 on one machine 45 ended at 1.0 and 3 at
    0.70-0.82 (a column missed), none lower; a uniform random policy scores about
    -0.75 and the untrained greedy one -0.2 to -1, so a mean >= 0.8 with every
    seed >= 0.5 fails for an agent that does not learn."""
    s = configs.resolve("dqn", "jax:Catch", {
        **CATCH_SETTINGS, "total_steps": "24000", "num_rows": "2", "learning_starts": "500",
        "epsilon_decay_steps": "4000", "target_period": "50", "learning_rate": "2e-3"})
    env = envs.make_env("jax:Catch")
    agent = make_dqn(s.agent_config, env.spec, s.run_config.num_envs)
    train = jax.jit(jax.vmap(make_train(agent, env, s.run_config), in_axes=(0, None)))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(4))
    final, rows = train(keys, DQNHParams.create(**s.hparams))
    eval_return = np.asarray(rows["eval_return"])
    assert eval_return.shape == (4, 2)
    assert eval_return[:, -1].mean() >= 0.8 and eval_return[:, -1].min() >= 0.5, eval_return
    assert np.all(np.asarray(rows["env_steps"])[:, -1] >= 24000)
    assert np.all(np.asarray(final.agent.updates) > 0)
