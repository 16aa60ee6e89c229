"""DDPG and TD3 (`agents.ddpg`): the policy gradient, action bounds, delays, noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from resume_check import assert_resume_is_exact

from jaxrl57 import configs, envs, losses
from jaxrl57.agents.ddpg import (
    DDPGConfig,
    DDPGHParams,
    OUState,
    make_ddpg,
    policy_gradient,
)
from jaxrl57.envs.base import EnvSpec
from jaxrl57.replay.base import EnvSteps
from jaxrl57.request import TrainRequest
from jaxrl57.runners.on_device import make_train
from jaxrl57.train import resolve_run

SPEC = EnvSpec("toy", obs_shape=(3,), action_low=(-2.0, 0.0), action_high=(2.0, 1.0),
               max_episode_steps=50)
LOW, HIGH = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)


def _linear_policy(w, obs):  # unbounded: w [3, 2]
    return obs @ w


def _quadratic_critic(obs, a):  # dQ/da = -2 (a - target(obs)), distinct per state
    target = jnp.stack([3.0 * obs[:, 0], obs[:, 1] - 0.5], -1)
    return -jnp.sum((a - target) ** 2, axis=-1)


def test_invert_gradients_is_differentiable_and_scales_by_the_room_left():
    a = jnp.array([1.0, -1.5, 0.2])
    g = jax.grad(lambda d: jnp.sum(losses.invert_gradients(d, a, -2.0, 2.0)))(
        jnp.array([1.0, -1.0, 1.0]))
    # d/d(dqda) of the inverted gradient is its scale: (high - a)/4 up, (a - low)/4 down.
    np.testing.assert_allclose(g, [0.25, 0.125, 0.45], rtol=1e-6)


@pytest.mark.parametrize("invert", [False, True])
def test_policy_gradient_is_the_inverted_dqda_chained_through_the_actor(invert):
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    critic = lambda a: _quadratic_critic(obs, a)  # noqa: E731
    grads, actions, q_mean = jax.jit(
        lambda w: policy_gradient(lambda p: _linear_policy(p, obs), critic, w, LOW, HIGH,
                                  invert=invert))(w)
    a = np.asarray(obs @ w)
    np.testing.assert_allclose(actions, a, rtol=1e-6)
    np.testing.assert_allclose(q_mean, np.mean(critic(a)), rtol=1e-6)
    target = np.stack([3.0 * obs[:, 0], obs[:, 1] - 0.5], -1)
    dqda = -2.0 * (a - target)
    if invert:  # Hausknecht & Stone 2016, sec. 4.3.3, written out
        room = np.where(dqda > 0, (HIGH - a), (a - LOW)) / (HIGH - LOW)
        dqda = dqda * room
    # mu = obs @ w: d mu_bd / d w_id = obs_bi, so the chain is obs^T dqda.
    expected = -np.asarray(obs).T @ dqda / 5
    np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-6)
    if not invert:
        auto = jax.grad(lambda p: -jnp.mean(critic(_linear_policy(p, obs))))(w)
        np.testing.assert_allclose(grads, auto, rtol=1e-5, atol=1e-6)


def _agent(**config):
    config = {"hidden_sizes": (16,), "batch_size": 8, "replay_capacity": 64, **config}
    return make_ddpg(DDPGConfig(**config), SPEC, num_envs=4)


def _hp(**values):
    return DDPGHParams.create(**{"learning_starts": 8, "random_steps": 0, **values})


def _fill(agent, state, steps=6, seed=1):
    key = jax.random.PRNGKey(seed)
    for i in range(steps):
        k1, k2, key = jax.random.split(jax.random.fold_in(key, i), 3)
        obs = jax.random.normal(k1, (4, 3))
        actions = jax.random.uniform(k2, (4, 2), minval=LOW, maxval=HIGH)
        state = agent.observe(state, EnvSteps(obs, actions, jnp.ones(4), jnp.zeros(4, bool),
                                              jnp.zeros(4, bool), obs + 0.1))
    return state


def test_actions_have_the_specs_shape_and_stay_in_bounds():
    agent = _agent(action_bounding="none")
    hp = _hp(exploration_noise=5.0)  # noise far past the bounds: the sent action is clipped
    state = agent.init(jax.random.PRNGKey(0), hp)
    view = agent.view(state)
    obs = jax.random.normal(jax.random.PRNGKey(2), (4, 3)) * 100
    actions, _ = jax.jit(agent.actor.act)(view, agent.actor.init(view, 4), obs,
                                          jax.random.PRNGKey(3))
    assert actions.shape == (4, 2) and actions.dtype == jnp.float32
    assert np.all((actions >= LOW) & (actions <= HIGH))
    # Random steps: uniform in the bounds, whatever the actor says.
    view = agent.view(agent.init(jax.random.PRNGKey(0), _hp(random_steps=100)))
    draws = jax.vmap(lambda k: agent.actor.act(view, (), obs, k)[0])(
        jax.random.split(jax.random.PRNGKey(4), 500))
    np.testing.assert_allclose(draws.reshape(-1, 2).mean(0), (LOW + HIGH) / 2, atol=0.06)
    evals, _ = agent.eval_actor.act(view, (), obs, jax.random.PRNGKey(5))
    assert np.all((evals >= LOW) & (evals <= HIGH))


def test_ou_noise_is_carried_between_steps_and_restarted_at_episode_ends():
    agent = _agent(exploration="ou")
    state = agent.init(jax.random.PRNGKey(0), _hp(exploration_noise=0.2, ou_theta=0.15))
    view = agent.view(state)
    actor = agent.actor.init(view, 4)
    assert isinstance(actor, OUState) and actor.noise.shape == (4, 2)
    obs = jnp.zeros((4, 3))
    _, actor = agent.actor.act(view, actor, obs, jax.random.PRNGKey(1))
    noise1 = np.asarray(actor.noise)
    _, actor2 = agent.actor.act(view, actor, obs, jax.random.PRNGKey(2))
    eps = np.asarray(jax.random.normal(jax.random.split(jax.random.PRNGKey(2))[0], (4, 2)))
    np.testing.assert_allclose(actor2.noise, 0.85 * noise1 + 0.2 * eps, rtol=1e-5)
    done = jnp.array([True, False, True, False])
    after = agent.actor.observe(actor2, None, None, done)
    np.testing.assert_array_equal(after.noise[0], 0.0)
    np.testing.assert_array_equal(after.noise[1], actor2.noise[1])


def test_update_waits_for_the_replay_then_trains_both_networks():
    agent = _agent()
    state = agent.init(jax.random.PRNGKey(0), _hp(learning_starts=20))
    update = jax.jit(agent.update)
    early = _fill(agent, state, steps=3)  # 12 transitions < 20
    same, metrics = update(early, jax.random.PRNGKey(9))
    assert float(metrics["updated"]) == 0.0 and int(same.updates) == 0
    jax.tree.map(np.testing.assert_array_equal, same.params, early.params)
    ready = _fill(agent, state)
    new, metrics = update(ready, jax.random.PRNGKey(9))
    assert float(metrics["updated"]) == 1.0 and np.isfinite(float(metrics["loss"]))
    for net in ("actor", "critic"):
        moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                             getattr(new.params, net),
                                             getattr(ready.params, net)))
        assert any(moved), net


def test_the_finite_check_covers_both_optimizers():
    """The run stops a member whose Adam moments overflowed; DDPG keeps one
    optimizer state per network, and each must be covered."""
    from jaxrl57.runners.driver import learner_tree, member_finite

    agent = _agent()
    state = agent.init(jax.random.PRNGKey(0), _hp())
    assert bool(member_finite(learner_tree(state)))
    for name in ("actor_opt_state", "critic_opt_state"):
        leaves, treedef = jax.tree.flatten(getattr(state, name))
        i = next(i for i, x in enumerate(leaves) if jnp.issubdtype(x.dtype, jnp.floating))
        leaves[i] = leaves[i].at[(0,) * leaves[i].ndim].set(jnp.inf)
        bad = state._replace(**{name: jax.tree.unflatten(treedef, leaves)})
        assert not bool(member_finite(learner_tree(bad))), name


def test_td3_moves_actor_and_targets_every_policy_delay_critic_updates():
    agent = _agent(num_critics=2)
    state = _fill(agent, agent.init(jax.random.PRNGKey(0),
                                    _hp(policy_delay=2, target_noise=0.2)))
    update = jax.jit(agent.update)
    s1, _ = update(state, jax.random.PRNGKey(1))  # update 1: critic only
    jax.tree.map(np.testing.assert_array_equal, s1.params.actor, state.params.actor)
    jax.tree.map(np.testing.assert_array_equal, s1.target_params, state.target_params)
    assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                            s1.params.critic, state.params.critic)))
    s2, _ = update(s1, jax.random.PRNGKey(2))  # update 2: actor and targets too
    tau = 0.005
    expected = jax.tree.map(lambda t, p: tau * p + (1 - tau) * t, s1.target_params, s2.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 s2.target_params, expected)
    assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                            s2.params.actor, s1.params.actor)))
    # Twin critics: two independent sets of weights.
    kernels = [x for x in jax.tree.leaves(state.params.critic) if x.ndim == 3]
    assert kernels and all(k.shape[0] == 2 and not np.allclose(k[0], k[1]) for k in kernels)


def test_a_sweep_is_one_vmapped_program():
    agent = _agent(num_critics=2)
    hps = jax.tree.map(lambda *x: jnp.stack(x), _hp(critic_learning_rate=1e-3),
                       _hp(critic_learning_rate=1e-2))
    states = jax.vmap(agent.init)(jax.random.split(jax.random.PRNGKey(0), 2), hps)
    states = jax.vmap(lambda s: _fill(agent, s))(states)
    new, metrics = jax.jit(jax.vmap(agent.update))(states, jax.random.split(
        jax.random.PRNGKey(1), 2))
    assert metrics["loss"].shape == (2,) and np.all(np.asarray(metrics["updated"]) == 1)


def test_learning_rate_sets_both_networks_and_sweeps_in_one_program():
    s = configs.resolve("td3", "jax:Pendulum-v1", {"learning_rate": "5e-4"})
    assert s.hparams["actor_learning_rate"] == s.hparams["critic_learning_rate"] == 5e-4
    s = configs.resolve("ddpg", "jax:Pendulum-v1",
                        {"actor_learning_rate": "1e-4", "learning_rate": "5e-4"})
    assert (s.hparams["actor_learning_rate"], s.hparams["critic_learning_rate"]) == (1e-4, 5e-4)
    listed = {r.name: (r.value, r.kind) for r in configs.describe(s)}
    assert listed["learning_rate"] == ("(differ)", "traced")
    s = configs.resolve("ddpg", "jax:Pendulum-v1", {"learning_rate": "5e-4"})
    assert {r.name: r.value for r in configs.describe(s)}["learning_rate"] == 5e-4
    run = resolve_run(TrainRequest(agent="ddpg", env="jax:Pendulum-v1", seeds=1,
                                   sweep=("learning_rate=1e-4,1e-3",)))
    assert [(m.hparams["actor_learning_rate"], m.hparams["critic_learning_rate"])
            for m in run.member_settings] == [(1e-4, 1e-4), (1e-3, 1e-3)]
    with pytest.raises(configs.ConfigError, match="did you mean learning_rate"):
        configs.resolve("ddpg", "jax:Pendulum-v1", {"learning_rat": "1e-3"})


def test_discrete_specs_are_refused():
    with pytest.raises(ValueError, match="continuous action space"):
        make_ddpg(DDPGConfig(), EnvSpec("d", (3,), num_actions=2), 1)
    with pytest.raises(ValueError, match="action_bounding must be one of"):
        DDPGConfig(action_bounding="sigmoid").validate()


def _train_pendulum(agent_name: str, seeds: int, overrides: dict):
    """Final RunnerState and rows of `seeds` members of AGENT on jax:Pendulum-v1 with
    the family defaults and `overrides`, trained as one vmapped program."""
    s = configs.resolve(agent_name, "jax:Pendulum-v1", overrides)
    env = envs.make_env("jax:Pendulum-v1")
    agent = make_ddpg(s.agent_config, env.spec, s.run_config.num_envs)
    train = jax.jit(jax.vmap(make_train(agent, env, s.run_config), in_axes=(0, None)))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    return train(keys, DDPGHParams.create(**s.hparams))


@pytest.mark.slow
def test_ddpg_improves_on_pendulum_within_5000_steps():
    """A short check: an untrained or random policy
    scores about -1200 to -1600 on Pendulum-v1 (200 steps of cost up to 16.3);
    after 5,000 env steps (4,000 updates) DDPG's greedy policy holds the pendulum up
    from most starts. Measured on seeds 0-7 of one machine: -131 to -352 (and -1009
    to -1249 halfway, at 2,500 steps); the bound leaves room for another CPU's
    trajectory but not for an agent that does not learn."""
    final, rows = _train_pendulum("ddpg", 2, {"total_steps": "5000", "num_rows": "2",
                                               "eval_episodes": "20"})
    eval_return = np.asarray(rows["eval_return"])
    assert eval_return.shape == (2, 2)
    assert np.all(eval_return[:, -1] >= -700), eval_return
    assert np.all(np.asarray(final.agent.updates) > 0)


@pytest.mark.slow
@pytest.mark.parametrize("agent_name", ["ddpg", "td3"])
def test_ddpg_and_td3_reach_minus_200_on_pendulum(agent_name):
    """The claim of `jaxrl57 train ddpg|td3 --env jax:Pendulum-v1`: a mean greedy
    return >= -200 over 100 episodes after 15,000 env steps. Over 8 seeds on one
    machine every final return was -136 to -165; the claim is on 4 seeds together
    (mean >= -200) with each seed >= -250, so one seed's CPU-dependent trajectory
    may wander a little, a method that fails may not."""
    final, rows = _train_pendulum(agent_name, 4, {})
    eval_return = np.asarray(rows["eval_return"])
    assert eval_return[:, -1].mean() >= -200 and eval_return[:, -1].min() >= -250, eval_return
    assert np.all(np.asarray(rows["env_steps"])[:, -1] >= 15000)


def test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path):
    """What `--resume` does on a JAX env, for DDPG with OU noise (whose per-env
    state lives in the runner state): rows 1-2, a save and a load of the whole
    runner state, rows 3-4 give exactly the rows and state of rows 1-4 without the save.
    Row by row, as the command line's driver runs them (one compiled program)."""
    s = configs.resolve("ddpg", "jax:Pendulum-v1", {
        "total_steps": "1680", "num_rows": "4", "eval_episodes": "2", "learning_starts": "200",
        "random_steps": "200", "hidden_sizes": "16,16", "batch_size": "16"})
    env = envs.make_env("jax:Pendulum-v1")
    agent = make_ddpg(s.agent_config, env.spec, s.run_config.num_envs)
    half, first, rows = assert_resume_is_exact(
        agent, env, s.run_config, DDPGHParams.create(**s.hparams), jax.random.PRNGKey(3),
        str(tmp_path / "ckpt"))
    assert float(rows["updates"][-1]) > float(first["updates"][-1]) > 0  # trained both sides
    assert np.any(np.asarray(half.actor.noise) != 0)  # an OU state in flight was saved


def test_critic_weight_decay_reaches_the_weight_matrices_only():
    """L2 decay (Lillicrap et al. 2016, sec. 7) as in the DDPG reference code: the
    gradient gains weight_decay * w on weight matrices; a decayed output bias would
    pull every Q towards 0, like a constant extra reward."""
    from jaxrl57.agents.ddpg import make_optimizer

    params = {"Dense_0": {"kernel": jnp.full((2, 3), 2.0), "bias": jnp.full(3, 2.0)}}
    tx = make_optimizer(1.0, jnp.inf, 0.01)
    zero = jax.tree.map(jnp.zeros_like, params)
    decay = tx.update(zero, tx.init(params), params)[0]
    with_decay_only = optax.chain(optax.add_decayed_weights(0.01))  # what it must not be
    unmasked = with_decay_only.update(zero, with_decay_only.init(params), params)[0]
    assert bool(jnp.all(unmasked["Dense_0"]["bias"] != 0))
    # Adam's first step moves every decayed entry by -lr * sign: the kernel only.
    np.testing.assert_allclose(decay["Dense_0"]["kernel"], -1.0, rtol=1e-3)
    np.testing.assert_array_equal(decay["Dense_0"]["bias"], 0.0)
