"""NGU (`agents.ngu`): the actor's intrinsic reward and policy index, what the
learner stores and trains, jit/vmap, resume."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from resume_check import assert_resume_is_exact

from jaxrl57 import configs, envs, intrinsic
from jaxrl57.agents.ngu import NGUConfig, NGUHParams, family_tables, make_ngu
from jaxrl57.envs.base import EnvSpec
from jaxrl57.replay.base import EnvSteps

E = 4
SMALL = dict(hidden_sizes=(16,), core_size=16, head_hidden=(16,), burn_in=2, trace_length=6,
             period=4, batch_size=4, replay_capacity=64, num_policies=4, memory_capacity=32,
             num_neighbors=3, embedding_size=8, rnd_output_size=8, intrinsic_hidden=(16,))


def _deep_sea_hparams(agent_name="ngu", **extra):
    """The DeepSea preset's, without the RND warm-up (its own test below) unless asked."""
    return NGUHParams.create(**{**configs.resolve(agent_name, "jax:DeepSea", {}).hparams,
                                "obs_norm_steps": 0, **extra})


def _agent(size=6):
    env = envs.make_env("jax:DeepSea", size=size)
    return make_ngu(NGUConfig(**SMALL), env.spec, E), env


def _play(agent, env, hp, steps, key, learner=None, evaluation=False):
    """Steps E envs `steps` times with the (training or evaluation) actor, storing
    into the learner; returns the learner, and per step the actor's policy index,
    reset flag, intrinsic reward and memory size [steps, E]."""
    learner = agent.init(jax.random.PRNGKey(0), hp) if learner is None else learner
    actor_fns = agent.eval_actor if evaluation else agent.actor
    actor = actor_fns.init(agent.view(learner), E)
    act, actor_observe = jax.jit(actor_fns.act), jax.jit(actor_fns.observe)
    observe, view = jax.jit(agent.observe), jax.jit(agent.view)
    env_step, env_reset = jax.jit(jax.vmap(env.step)), jax.jit(jax.vmap(env.reset))
    keys = jax.random.split(key, E)
    env_state, obs = env_reset(keys)
    trace = []
    for t in range(steps):
        action, actor = act(view(learner), actor, obs, jax.random.fold_in(key, t))
        trace.append((actor.policy, actor.reset, actor.intrinsic_reward, actor.memory.size))
        next_state, next_obs, reward, term, trunc = env_step(keys, env_state, action)
        learner = observe(learner, EnvSteps(obs, action, reward, term, trunc, next_obs), actor)
        done = term | trunc
        actor = actor_observe(actor, action, reward, done)
        reset_state, reset_obs = env_reset(keys)
        env_state = jax.tree.map(lambda a, b, d=done: jnp.where(d, a, b), reset_state, next_state)
        obs = jnp.where(done[:, None, None], reset_obs, next_obs)
    return learner, [np.stack([np.asarray(x[i]) for x in trace]) for i in range(4)]


def test_the_policy_index_is_drawn_at_episode_starts_and_kept_within_an_episode():
    agent, env = _agent(size=5)
    hp = _deep_sea_hparams()
    _, (policy, reset, r_i, size) = _play(agent, env, hp, 25, jax.random.PRNGKey(1))
    assert reset[0].all() and reset[5].all() and not reset[1:5].any()  # episodes of 5
    for start in range(0, 25, 5):
        assert (policy[start:start + 5] == policy[start]).all()
    assert len(np.unique(policy)) > 1  # drawn anew: 5 episodes x 4 envs over 4 policies
    # The memory holds the episode so far: emptied at each start, then one per step.
    np.testing.assert_array_equal(size[:, 0], np.tile(np.arange(1, 6), 5))
    assert np.all(np.isfinite(r_i)) and np.all(r_i > 0)
    # Evaluation follows the exploitative policy j = 0.
    _, (eval_policy, *_) = _play(agent, env, hp, 10, jax.random.PRNGKey(2), evaluation=True)
    assert (eval_policy == 0).all()


def test_the_replay_holds_rewards_policy_and_behaviour_probabilities():
    agent, env = _agent(size=5)
    hp = _deep_sea_hparams()
    learner, (policy, _, r_i, _) = _play(agent, env, hp, 6, jax.random.PRNGKey(4))
    ring = learner.replay.ring_steps  # [E, seq_len = 9, ...]: pushes 0..8 in slots 0..8
    # Five steps of the first episode, its final observation, then the next episode.
    np.testing.assert_array_equal(ring["final"][:, :7].any(0), [0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(ring["intrinsic_reward"][:, :5], r_i[:5].T, rtol=1e-6)
    np.testing.assert_array_equal(ring["policy"][:, :5], policy[:5].T)
    np.testing.assert_allclose(ring["intrinsic_reward"][:, 6], r_i[5], rtol=1e-6)
    # The previous intrinsic reward fed at step t + 1 is r_i of step t.
    np.testing.assert_allclose(ring["prev_reward"][:, 1:5, 1], r_i[:4].T, rtol=1e-6)
    assert np.all(ring["prev_reward"][:, 6] == 0)  # an episode's first step: none
    # The behaviour probability of an epsilon-greedy action: at least epsilon / 2.
    eps = 0.4 ** (1 + 7 * np.arange(E) / (E - 1))
    mu = np.asarray(ring["behaviour_prob"][:, :5])
    assert np.all(mu >= eps[:, None] / 2 - 1e-6) and np.all(mu <= 1.0)
    np.testing.assert_array_equal(ring["behaviour_prob"][:, 5], 0.0)  # the final step
    assert int(learner.env_steps) == 6 * E
    assert float(learner.obs_stats.count) == float(learner.error_stats.count) == 6 * E


def test_family_tables_follow_the_hyperparameters():
    hp = _deep_sea_hparams()
    betas, gammas = family_tables(hp, 8)
    assert betas[0] == 0.0 and float(betas[-1]) == pytest.approx(0.3)
    assert float(gammas[0]) == pytest.approx(0.997) and float(gammas[-1]) == pytest.approx(0.99)


@pytest.mark.parametrize("relabel", [False, True])
def test_updates_train_all_three_networks_under_vmap_and_compile_once(relabel):
    env = envs.make_env("jax:DeepSea", size=5)
    agent = make_ngu(NGUConfig(**dict(SMALL, relabel_policy=relabel)), env.spec, E)
    hp = _deep_sea_hparams(learning_starts=1)
    learner, _ = _play(agent, env, hp, 30, jax.random.PRNGKey(6))
    learners = jax.tree.map(lambda x: jnp.stack([x, x]), learner)
    update = jax.jit(jax.vmap(agent.update))
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    new, metrics = update(learners, keys)
    new, metrics = update(new, keys)
    assert update._cache_size() == 1
    np.testing.assert_array_equal(metrics["updated"], [1.0, 1.0])
    for name in ("loss", "embedding_loss", "rnd_loss"):
        assert np.all(np.isfinite(metrics[name])) and np.all(np.asarray(metrics[name]) > 0)
    for net in ("q", "embedding", "rnd"):
        moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                             new.params[net], learners.params[net])
        assert max(jax.tree.leaves(moved)) > 0, net
    # RND's target never trains.
    jax.tree.map(np.testing.assert_array_equal, new.rnd_target, learners.rnd_target)


def test_continuous_specs_are_refused():
    with pytest.raises(ValueError, match="discrete action space"):
        make_ngu(NGUConfig(**SMALL), EnvSpec("c", (3,), action_low=(-1.0,), action_high=(1.0,)),
                 1)


def test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path):
    """Memories, policy indices and running statistics travel in the checkpoint:
    rows 1-2, a save and a load, rows 3-4 equal rows 1-4 without the save."""
    s = configs.resolve("ngu", "jax:DeepSea", {
        **{k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
           for k, v in SMALL.items()},
        "total_steps": "640", "num_rows": "4", "eval_episodes": "2", "learning_starts": "4",
        "obs_norm_steps": "100", "num_envs": str(E)})
    env = envs.make_env("jax:DeepSea", size=5)
    agent = make_ngu(s.agent_config, env.spec, s.run_config.num_envs)
    half, first, rows = assert_resume_is_exact(
        agent, env, s.run_config, NGUHParams.create(**s.hparams), jax.random.PRNGKey(3),
        str(tmp_path / "ckpt"))
    assert float(rows["updates"][-1]) > float(first["updates"][-1]) > 0
    assert isinstance(half.actor.memory, intrinsic.EpisodicMemory)


A57 = dict(SMALL, num_policies=10, split_values=True, meta_controller="bandit",
           discount_family="agent57", bandit_window=6, evaluator_window=12)


def _agent57(size=5):
    env = envs.make_env("jax:DeepSea", size=size)
    return make_ngu(NGUConfig(**A57), env.spec, E), env


def _a57_hparams(**extra):
    return _deep_sea_hparams("agent57", **extra)


def test_agent57_bandits_learn_each_episode_return_and_choose_the_next_policy():
    agent, env = _agent57(size=5)
    hp = _a57_hparams()
    learner = agent.init(jax.random.PRNGKey(0), hp)
    actor = agent.actor.init(agent.view(learner), E)
    act, actor_observe = jax.jit(agent.actor.act), jax.jit(agent.actor.observe)
    observe = jax.jit(agent.observe)
    keys = jax.random.split(jax.random.PRNGKey(1), E)
    env_state, obs = jax.vmap(env.reset)(keys)
    returns, policies = np.zeros(E), []
    for t in range(5 * 12):  # 12 episodes of 5 steps per env
        action, actor = act(agent.view(learner), actor, obs, jax.random.PRNGKey(t))
        if t % 5 == 0:
            policies.append(np.asarray(actor.policy))
        env_state, next_obs, reward, term, trunc = jax.vmap(env.step)(keys, env_state, action)
        learner = observe(learner, EnvSteps(obs, action, reward, term, trunc, next_obs), actor)
        returns += np.asarray(reward)
        actor = actor_observe(actor, action, reward, term | trunc)
        if bool(term.all()):
            # Each env's bandit holds this episode's arm and extrinsic return.
            k = int(actor.bandit.count[0]) - 1
            slot = k % 6
            np.testing.assert_array_equal(actor.bandit.arms[:, slot], policies[-1])
            np.testing.assert_allclose(actor.bandit.rewards[:, slot], returns, rtol=1e-5)
            returns[:] = 0.0
            env_state, obs = jax.vmap(env.reset)(keys)
        else:
            obs = next_obs
    np.testing.assert_array_equal(actor.bandit.count, 12)
    policies = np.stack(policies)  # [12 episodes, E]
    # Each bandit first plays its arms in turn: episode k uses arm k for k < 10.
    np.testing.assert_array_equal(policies[:10], np.tile(np.arange(10)[:, None], (1, E)))
    # The evaluator's record over all envs, and its greedy choice.
    assert int(learner.arm_returns.count) == 12 * E
    eval_actor = agent.eval_actor.init(agent.view(learner), 2)
    obs2 = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(2), 2))[1]
    _, eval_actor = agent.eval_actor.act(agent.view(learner), eval_actor, obs2,
                                         jax.random.PRNGKey(3))
    from jaxrl57 import bandit
    best = int(bandit.greedy_arm(learner.arm_returns))
    np.testing.assert_array_equal(eval_actor.policy, best)


def test_agent57_acts_on_the_combined_heads_and_trains_both():
    from jaxrl57 import losses

    agent, env = _agent57(size=5)
    hp = _a57_hparams(learning_starts=1)
    learner, _ = _play(agent, env, hp, 30, jax.random.PRNGKey(6))
    assert sorted(learner.params["q"]) == ["extrinsic", "intrinsic"]
    # What the actor acts on: h(h^-1(Q_e) + beta_j h^-1(Q_i)) of the two networks.
    from jaxrl57.agents.r2d2 import make_network
    net = make_network(NGUConfig(**A57), env.spec)
    actor = agent.actor.init(agent.view(learner), E)
    obs = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), E))[1]
    policy = jnp.arange(E, dtype=jnp.int32)
    actor = actor._replace(policy=policy, reset=jnp.zeros(E, bool))
    heads = {}
    for h in ("extrinsic", "intrinsic"):
        heads[h] = net.apply(learner.params["q"][h], obs[None], actor.prev_action[None],
                             reset=actor.reset[None], carry=actor.carry[h],
                             prev_reward=actor.prev_reward[None],
                             context=jax.nn.one_hot(policy, 10)[None])[0][0]
    betas, _ = family_tables(hp, 10, "agent57")
    combined = losses.agent57_q(heads["extrinsic"], heads["intrinsic"], betas[policy][:, None])
    eval_hp = agent.view(learner)._replace(hparams=hp.replace(epsilon=jnp.float32(0.0)))
    action, _ = agent.actor.act(eval_hp, actor, obs, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(action, jnp.argmax(combined, axis=-1))
    update = jax.jit(agent.update)
    new, metrics = update(learner, jax.random.PRNGKey(7))
    assert float(metrics["updated"]) == 1.0 and np.isfinite(float(metrics["loss"]))
    for h in ("extrinsic", "intrinsic"):
        moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                             new.params["q"][h], learner.params["q"][h])
        assert max(jax.tree.leaves(moved)) > 0, h


def test_agent57_needs_ten_policies_for_its_discounts():
    with pytest.raises(ValueError, match="num_policies >= 10"):
        NGUConfig(**dict(A57, num_policies=8)).validate()


def test_the_ablations_split_the_reward_into_its_two_factors():
    """r_i = r_episodic * clip(alpha, 1, L): the 'episodic' ablation gives the first
    factor, 'lifelong' the second, from the same learner and observations."""
    env = envs.make_env("jax:DeepSea", size=6)
    hp = _deep_sea_hparams()
    rewards = {}
    for kind in ("ngu", "episodic", "lifelong"):
        agent = make_ngu(NGUConfig(**dict(SMALL, intrinsic_reward=kind)), env.spec, E)
        learner, (_, _, r_i, _) = _play(agent, env, hp, 8, jax.random.PRNGKey(9))
        rewards[kind] = r_i
    # The first two steps: later, the previous intrinsic reward (a network input)
    # differs between the three and so do the actions and states.
    np.testing.assert_allclose(rewards["ngu"][:2],
                               rewards["episodic"][:2] * rewards["lifelong"][:2], rtol=1e-5)
    assert np.all((rewards["lifelong"] >= 1.0) & (rewards["lifelong"] <= 5.0))
    assert np.any(rewards["lifelong"] > 1.0)  # RND's error varies from the start
    with pytest.raises(ValueError, match="intrinsic_reward must be"):
        NGUConfig(**dict(SMALL, intrinsic_reward="count")).validate()
    with pytest.raises(ValueError, match="relabel_policy needs burn_in"):
        NGUConfig(**dict(SMALL, relabel_policy=True, burn_in=0)).validate()


def test_a_non_episodic_intrinsic_value_differs_only_at_terminations():
    """`intrinsic_episodic=False` bootstraps Agent57's intrinsic head through a
    termination: the same update gives another loss on sequences with
    terminations, and the same loss where the replay holds none."""
    env = envs.make_env("jax:DeepSea", size=5)
    agents = {flag: make_ngu(NGUConfig(**dict(A57, intrinsic_episodic=flag)), env.spec, E)
              for flag in (True, False)}
    learner, _ = _play(agents[True], env, _a57_hparams(learning_starts=1), 30,
                       jax.random.PRNGKey(6))
    assert float(jnp.min(learner.replay.steps["discount"][:int(learner.replay.size)])) == 0.0
    no_ends = learner._replace(replay=learner.replay._replace(steps=dict(
        learner.replay.steps, discount=jnp.ones_like(learner.replay.steps["discount"]))))
    key = jax.random.PRNGKey(7)
    loss = {(flag, ends): float(jax.jit(agents[flag].update)(state, key)[1]["loss"])
            for flag in (True, False) for ends, state in ((True, learner), (False, no_ends))}
    assert loss[(True, True)] != pytest.approx(loss[(False, True)], rel=1e-4)
    assert loss[(True, False)] == pytest.approx(loss[(False, False)], rel=1e-6)
    with pytest.raises(ValueError, match="intrinsic_episodic"):
        NGUConfig(**dict(SMALL, intrinsic_episodic=False)).validate()


def test_rnd_normaliser_warms_up_on_a_random_policy_before_any_learning():
    """Burda et al. 2019, sec. 2.4: the first `obs_norm_steps` env steps act
    uniformly and only feed the observation statistics; the modulator is 1
    (the episodic reward alone), the error statistics and the learner wait."""
    agent, env = _agent(size=5)
    episodic_only = make_ngu(NGUConfig(**dict(SMALL, intrinsic_reward="episodic")), env.spec, E)
    warm = 5 * E
    hp = _deep_sea_hparams(obs_norm_steps=warm, learning_starts=1)
    key = jax.random.PRNGKey(8)
    learner, (_, _, r_i, _) = _play(agent, env, hp, 10, key)
    _, (_, _, r_episodic, _) = _play(episodic_only, env, hp, 10, key)
    np.testing.assert_allclose(r_i[:5], r_episodic[:5], rtol=1e-6)
    assert np.any(np.abs(r_i[5:] - r_episodic[5:]) > 1e-3)
    assert float(learner.obs_stats.count) == 10 * E
    assert float(learner.error_stats.count) == 5 * E  # only the steps after the warm-up
    # Uniform actions during the warm-up, the Ape-X epsilons after it.
    start = agent.init(jax.random.PRNGKey(0), hp)
    actor = agent.actor.init(agent.view(start), E)
    obs = jax.vmap(env.reset)(jax.random.split(key, E))[1]
    for env_steps, uniform in ((warm - 1, True), (warm, False)):
        view = agent.view(start)._replace(env_steps=jnp.asarray(env_steps, jnp.int32))
        _, acted = agent.actor.act(view, actor, obs, key)
        assert np.all(np.asarray(acted.behaviour_prob) == 0.5) == uniform
    # No update before the warm-up ends, whatever the replay holds.
    assert bool(agent.can_update(learner))
    late = make_ngu(NGUConfig(**SMALL), env.spec, E)
    waiting, _ = _play(late, env, _deep_sea_hparams(obs_norm_steps=10 * E + 1, learning_starts=1),
                       10, key)
    assert not bool(late.can_update(waiting))
