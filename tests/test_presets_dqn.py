"""The DQN-family presets against their papers and reference code.

Each test derives its expected value from the paper's table or from the
reference implementation's arithmetic (the Lua learner of Nature DQN,
dqn_zoo's flags), not from the code under test.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl57 import configs, envs, exploration, losses
from jaxrl57.agents.dqn import (
    DQNConfig,
    DQNHParams,
    make_dqn,
    make_optimizer,
    online_passes,
    priority_beta,
)
from jaxrl57.networks import QNetwork, make_q_network
from jaxrl57.replay import frame_init
from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners.on_device import make_train

ATARI = "Pong-v5"
CATCH = envs.make_env("jax:Catch").spec  # obs [8, 8, 1], 3 actions


def _atari(agent):
    return configs.resolve(agent, ATARI, {})


# --- 1. Optimizer epsilons in the units of a batch-mean loss -------------------------------


def _lua_rmsprop_steps(summed_grads, lr, eps=0.01, decay=0.95):
    """Nature DQN's update (`NeuralQLearner.lua`, qLearnMinibatch) on gradients of the
    loss SUMMED over the batch: g = .95 g + .05 dw; g2 = .95 g2 + .05 dw^2;
    step = lr * dw / sqrt(g2 - g^2 + 0.01) (written here as descent on the loss)."""
    g = np.zeros_like(summed_grads[0])
    g2 = np.zeros_like(summed_grads[0])
    steps = []
    for dw in summed_grads:
        g = decay * g + (1 - decay) * dw
        g2 = decay * g2 + (1 - decay) * dw * dw
        steps.append(-lr * dw / np.sqrt(g2 - g * g + eps))
    return steps


def test_nature_rmsprop_on_the_mean_loss_steps_as_the_lua_learner_on_the_summed_loss():
    s = _atari("dqn")
    assert s.agent_config.optimizer == "rmsprop" and s.agent_config.batch_size == 32
    hp = DQNHParams.create(**s.hparams)
    opt = make_optimizer(s.agent_config, hp)
    rng = np.random.default_rng(0)
    # Per-example gradients of a batch of 32, small enough that eps matters.
    per_example = rng.normal(0.0, 0.02, size=(3, 32, 50)).astype(np.float64)
    mean_grads = per_example.mean(axis=1)  # d(mean loss)
    summed_grads = per_example.sum(axis=1)  # d(summed loss) = 32 x d(mean loss)
    expected = _lua_rmsprop_steps(summed_grads, lr=2.5e-4)
    params = {"w": jnp.zeros(50)}
    state = opt.init(params)
    for k in range(3):
        updates, state = opt.update({"w": jnp.asarray(mean_grads[k], jnp.float32)}, state,
                                    params)
        np.testing.assert_allclose(updates["w"], expected[k], rtol=2e-4, atol=1e-12)
    # The eps in the Lua learner's units would be 32**2 times too large here.
    assert not np.allclose(_lua_rmsprop_steps(mean_grads, 2.5e-4)[0], expected[0], rtol=0.01)


@pytest.mark.parametrize("agent", ["c51", "qr_dqn", "iqn"])
def test_adam_eps_over_batch_size_on_the_mean_loss_is_eps_on_the_summed_loss(agent):
    """Bellemare et al. 2017 (eps_ADAM = 0.01 / L) as dqn_zoo applies it to a batch-mean
    loss: Adam's eps is outside the square root, so it scales with the gradient."""
    s = _atari(agent)
    assert s.hparams["optimizer_eps"] == pytest.approx(0.01 / 32)
    lr = s.hparams["learning_rate"]
    ours = make_optimizer(s.agent_config, DQNHParams.create(**s.hparams))
    summed_adam = optax.adam(lr, eps=0.01)
    rng = np.random.default_rng(1)
    params = {"w": jnp.zeros(20)}
    st_ours, st_sum = ours.init(params), summed_adam.init(params)
    for _ in range(3):
        per_example = rng.normal(0.0, 1e-3, size=(32, 20))
        u_ours, st_ours = ours.update({"w": jnp.asarray(per_example.mean(0), jnp.float32)},
                                      st_ours, params)
        u_sum, st_sum = summed_adam.update({"w": jnp.asarray(per_example.sum(0), jnp.float32)},
                                           st_sum, params)
        np.testing.assert_allclose(u_ours["w"], u_sum["w"], rtol=1e-4)


def test_apex_keeps_the_papers_rmsprop_eps():
    hp = _atari("apex").hparams
    assert (hp["optimizer_eps"], hp["learning_rate"], hp["max_grad_norm"]) == (
        1.5e-7, 2.5e-4 / 4, 40.0)


# --- 2. Target period: one unit (updates), set from each paper -----------------------------

# Agent steps between target copies in each paper (frames / 4), and its source.
TARGET_AGENT_STEPS = {
    "dqn": 10_000,  # Mnih et al. 2015, Ext. Data Table 1; Lua `target_q`; dqn_zoo 4e4 frames
    "double_dqn": 30_000,  # van Hasselt et al. 2016, tuned; dqn_zoo 1.2e5 frames
    "dueling": 30_000,  # Wang et al. 2016: the tuned Double DQN's settings
    "prioritized": 30_000,  # Schaul et al. 2016: the tuned Double DQN's settings
    "c51": 10_000,  # Bellemare et al. 2017: DQN's; dqn_zoo 4e4 frames
    "qr_dqn": 10_000,  # Dabney et al. 2018a; dqn_zoo 4e4 frames
    "iqn": 10_000,  # Dabney et al. 2018b; dqn_zoo 4e4 frames
    "rainbow": 32_000 // 4,  # Hessel et al. 2018, Table 1: 32K frames
}


def _agent_steps_per_update(run):
    return run.train_every * run.num_envs / run.updates_per_train


@pytest.mark.parametrize("agent", sorted(TARGET_AGENT_STEPS))
def test_target_moves_every_paper_period_in_agent_steps(agent):
    s = _atari(agent)
    period = s.hparams["target_period"] * _agent_steps_per_update(s.run_config)
    assert period == TARGET_AGENT_STEPS[agent]


def test_apex_target_period_is_2500_updates():
    # Horgan et al. 2018, appendix: "every 2500 training batches".
    assert _atari("apex").hparams["target_period"] == 2_500


def test_target_moves_every_target_period_times_agent_steps_per_update():
    """The move logic under the Atari loop (one env, 4 steps then one update): with a
    tiny target_period of 2 updates the target moves every 8 agent steps."""
    agent = make_dqn(DQNConfig(hidden_sizes=(16,), replay_capacity=64, batch_size=4),
                     CATCH, 1)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0),
                                DQNHParams.create(learning_starts=8, target_period=2))
    observe, update = jax.jit(agent.observe), jax.jit(agent.update)
    rng = np.random.default_rng(0)
    moves = []
    for phase in range(12):
        for _ in range(4):
            obs = rng.uniform(size=(1, *CATCH.obs_shape)).astype(np.float32)
            state = observe(state, EnvSteps(obs, np.array([1], np.int32), np.ones(1, np.float32),
                                            np.zeros(1, bool), np.zeros(1, bool), obs))
        old_target = state.target_params
        state, _ = update(state, jax.random.PRNGKey(phase))
        moved = not all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(old_target), jax.tree.leaves(state.target_params), strict=True))
        if moved:
            moves.append(int(state.env_steps))
            # A copy, to float32 rounding (see test_dqn_agent._tree_copy).
            assert all(np.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(
                jax.tree.leaves(state.target_params), jax.tree.leaves(state.params),
                strict=True))
    # The first update comes at 8 transitions; copies after updates 2, 4, ... (4 agent
    # steps each, the first at 8 + 4).
    assert moves == [12, 20, 28, 36, 44]
    assert set(np.diff(moves)) == {2 * 4}


# --- 6. Prioritized beta reaches 1 at the run's last update --------------------------------


def _count_updates(run, learning_starts, batch_size, n_step):
    """Updates of the on-device loop, phase by phase: the replay of n-step transitions
    holds num_envs * (s - n + 1) after s steps of each env."""
    phases = np.arange(1, run.num_rows * run.phases_per_row + 1)
    steps = phases * run.train_every
    size = run.num_envs * np.maximum(0, steps - n_step + 1)
    return int(np.sum(size >= max(learning_starts, batch_size))) * run.updates_per_train


@pytest.mark.parametrize("agent,env", [
    ("prioritized", "jax:CartPole-v1"), ("rainbow", "jax:CartPole-v1"),
    ("prioritized", "jax:Catch"), ("rainbow", "jax:Catch"),
    ("prioritized", ATARI), ("rainbow", ATARI),
])
def test_beta_reaches_one_at_the_last_update(agent, env):
    s = configs.resolve(agent, env, {})
    n = _count_updates(s.run_config, s.hparams["learning_starts"], s.agent_config.batch_size,
                       s.agent_config.n_step)
    hp = DQNHParams.create(**s.hparams)
    assert float(priority_beta(hp, n - 1)) == pytest.approx(1.0)  # the last update
    assert float(priority_beta(hp, n - 2)) < 1.0  # not before
    assert float(priority_beta(hp, 0)) == pytest.approx(0.4)


def test_beta_steps_match_a_real_run():
    """Prioritized 3-step DQN on Catch through the on-device runner: the last update it
    makes is the one at which beta reaches 1."""
    s = configs.resolve("prioritized", "jax:Catch", {
        "total_steps": "320", "num_envs": "4", "train_every": "2", "updates_per_train": "3",
        "num_rows": "1", "learning_starts": "37", "batch_size": "8", "hidden_sizes": "8",
        "n_step": "3", "eval_episodes": "1", "replay_capacity": "64"})
    env = envs.make_env("jax:Catch")
    agent = make_dqn(s.agent_config, env.spec, s.run_config.num_envs)
    final, _ = jax.jit(make_train(agent, env, s.run_config))(
        jax.random.PRNGKey(0), DQNHParams.create(**s.hparams))
    # 40 phases of 2 steps; 37 transitions need 10 steps per env, +2 for the 3-step
    # windows: phases 6..40 update, 35 x 3 = 105 updates.
    assert int(final.agent.updates) == 105
    assert s.hparams["priority_beta_steps"] == 104


def test_apex_beta_stays_fixed():
    hp = DQNHParams.create(**_atari("apex").hparams)
    assert float(priority_beta(hp, 10**9)) == pytest.approx(0.4)


# --- 7. Rainbow's priority is the KL divergence --------------------------------------------


def _np_project(atoms, probs, r, d):
    """Bellemare et al. 2017, Algorithm 1, on a uniform support (NumPy, float64)."""
    v_min, v_max = atoms[0], atoms[-1]
    dz = atoms[1] - atoms[0]
    m = np.zeros_like(atoms)
    for z, p in zip(atoms, probs, strict=True):
        tz = np.clip(r + d * z, v_min, v_max)
        b = np.clip((tz - v_min) / dz, 0, len(atoms) - 1)
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            m[lo] += p
        else:
            m[lo] += p * (hi - b)
            m[hi] += p * (b - lo)
    return m


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("double", [False, True])
def test_kl_priority_against_numpy(double):
    rng = np.random.default_rng(3)
    B, A, N = 6, 3, 11
    atoms = np.linspace(-2.0, 2.0, N)
    logits_tm1 = rng.normal(size=(B, A, N))
    logits_t = rng.normal(size=(B, A, N))
    a_tm1 = rng.integers(0, A, B)
    r_t = rng.uniform(-1.5, 1.5, B)
    d_t = rng.choice([0.0, 0.9], B)
    q_sel = rng.normal(size=(B, A))
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    if double:
        _, ce = jax.jit(losses.categorical_double_dqn_loss)(
            f32(logits_tm1), jnp.asarray(a_tm1), f32(r_t), f32(d_t), f32(logits_t), f32(q_sel),
            f32(atoms))
    else:
        _, ce = jax.jit(losses.categorical_dqn_loss)(
            f32(logits_tm1), jnp.asarray(a_tm1), f32(r_t), f32(d_t), f32(logits_t), f32(atoms))
    kl = jax.jit(losses.categorical_kl_priority)(ce, f32(r_t), f32(d_t), f32(logits_t),
                                                f32(atoms), f32(q_sel) if double else None)
    expected = []
    for b in range(B):
        p_t = _np_softmax(logits_t[b])
        a_t = np.argmax(q_sel[b] if double else p_t @ atoms)
        m = _np_project(atoms, p_t[a_t], r_t[b], d_t[b])
        log_p = np.log(_np_softmax(logits_tm1[b, a_tm1[b]]))
        nz = m > 0
        expected.append(np.sum(m[nz] * (np.log(m[nz]) - log_p[nz])))
    np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(kl) < np.asarray(ce))  # the targets have entropy > 0 here
    # The entropy term carries no gradient: KL and cross-entropy train alike.
    grad = jax.jit(jax.grad(lambda lt: jnp.sum(losses.categorical_kl_priority(
        ce, f32(r_t), f32(d_t), lt, f32(atoms), None))))(f32(logits_t))
    assert not np.any(np.asarray(grad))


def test_c51_prioritized_agent_writes_kl_priorities():
    """Terminal transitions with reward 0.25 between atoms 0 and 0.5: the projected
    target is (1/2, 1/2), its entropy log 2, so the priority is CE - log 2."""
    atoms = np.linspace(-1.0, 1.0, 5)
    config = DQNConfig(hidden_sizes=(8,), replay_capacity=64, batch_size=8, distribution="c51",
                       num_atoms=5, prioritized=True)
    agent = make_dqn(config, CATCH, 4)
    hp = DQNHParams.create(learning_starts=8, v_min=-1.0, v_max=1.0, priority_alpha=1.0)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)
    obs = np.full((4, *CATCH.obs_shape), 0.5, np.float32)
    observe = jax.jit(agent.observe)
    for _ in range(4):
        state = observe(state, EnvSteps(obs, np.zeros(4, np.int32), np.full(4, 0.25, np.float32),
                                        np.ones(4, bool), np.zeros(4, bool), obs))
    network = make_q_network(CATCH.num_actions, CATCH.obs_shape, hidden_sizes=(8,),
                             distribution="c51", num_atoms=5)
    log_p = np.log(_np_softmax(np.asarray(network.apply(state.params, obs[:1]))[0, 0]))
    m = _np_project(atoms, np.eye(5)[0], 0.25, 0.0)
    ce = -np.sum(m * log_p)
    kl = ce - math.log(2.0)
    new, _ = jax.jit(agent.update)(state, jax.random.PRNGKey(1))
    tree = new.replay.store.tree
    leaves = np.asarray(tree)[tree.shape[0] // 2:][:16]
    written = leaves[leaves != 1.0]  # unsampled slots keep max_priority ** alpha = 1
    assert written.size > 0
    np.testing.assert_allclose(written, kl + 1e-6, rtol=1e-4)


# --- 8a. Epsilon anneals after the replay warm-up on Atari, from step 0 on small tasks -----


def test_nature_epsilon_starts_decaying_at_the_replay_warmup():
    hp = _atari("dqn").hparams
    eps = lambda step: float(exploration.linear_epsilon(
        step, hp["epsilon_start"], hp["epsilon_end"], hp["epsilon_decay_steps"],
        hp["epsilon_decay_start"]))
    # Lua eGreedy: ep_end + (ep_start - ep_end) * (ep_endt - max(0, t - learn_start)) / ep_endt
    lua = lambda t: 0.1 + 0.9 * max(0.0, (1e6 - max(0, t - 50_000)) / 1e6)
    for t in (0, 50_000, 300_000, 550_000, 1_050_000, 2_000_000):
        assert eps(t) == pytest.approx(lua(t), abs=1e-6)


def test_atari_epsilon_decay_follows_an_overridden_warmup():
    hp = configs.resolve("dqn", ATARI, {"learning_starts": "500"}).hparams
    assert hp["epsilon_decay_start"] == 500
    hp = configs.resolve("dqn", ATARI, {"epsilon_decay_start": "0"}).hparams
    assert (hp["epsilon_decay_start"], hp["learning_starts"]) == (0, 50_000)


@pytest.mark.parametrize("env", ["jax:CartPole-v1", "jax:Catch", "jax:Cave"])
def test_small_tasks_anneal_from_step_zero(env):
    assert configs.resolve("dqn", env, {}).hparams["epsilon_decay_start"] == 0.0


def test_agent_explores_fully_until_the_decay_starts():
    agent = make_dqn(DQNConfig(hidden_sizes=(8,), replay_capacity=64, batch_size=4), CATCH, 512)
    state = agent.init(jax.random.PRNGKey(0), DQNHParams.create(
        epsilon_end=0.0, epsilon_decay_steps=100, epsilon_decay_start=1_000))
    obs = jnp.zeros((512, *CATCH.obs_shape))
    greedy = int(jnp.argmax(make_q_network(CATCH.num_actions, CATCH.obs_shape,
                                           hidden_sizes=(8,)).apply(state.params, obs[:1])[0]))
    act = jax.jit(agent.actor.act)
    at = lambda steps: np.asarray(act(agent.view(state._replace(env_steps=jnp.int32(steps))),
                                      (), obs, jax.random.PRNGKey(steps))[0])
    # Epsilon 1 at step 1,000 (uniform actions: about 2/3 not greedy) ...
    assert 0.55 < np.mean(at(1_000) != greedy) < 0.78
    # ... and 0 from step 1,100 on.
    assert np.all(at(1_100) == greedy)


# --- 8b. Dueling: Wang et al.'s learning rate and the 1/sqrt(2) gradient rescale ----------


def test_dueling_atari_learning_rate_and_clipping():
    hp = _atari("dueling").hparams
    assert (hp["learning_rate"], hp["max_grad_norm"]) == (6.25e-5, 10.0)


def test_conv_dueling_network_rescales_only_the_torso_gradient():
    """Wang et al. 2016, sec. 4.2: the gradient entering the last convolutional layer
    is 1/sqrt(2) of the plain one; the streams' own gradients and the values are not
    changed."""
    obs_shape = (6, 6, 2)
    net = make_q_network(4, obs_shape, torso="small_cnn", dueling=True)
    assert net.head.input_grad_scale == pytest.approx(2**-0.5)
    assert make_q_network(4, (6,), dueling=True).head.input_grad_scale == 1.0
    plain = QNetwork(net.torso, net.head.clone(input_grad_scale=1.0))
    obs = jax.random.uniform(jax.random.PRNGKey(0), (3, *obs_shape))
    params = net.init(jax.random.PRNGKey(1), obs)
    def grads(p):
        return [jax.grad(lambda q, n=n: jnp.sum(n.apply(q, obs) ** 2))(p) for n in (net, plain)]

    np.testing.assert_array_equal(net.apply(params, obs), plain.apply(params, obs))
    g, g_plain = jax.jit(grads)(params)
    for name in g["params"]:
        scale = 2**-0.5 if name.startswith("torso") else 1.0
        for a, b in zip(jax.tree.leaves(g["params"][name]),
                        jax.tree.leaves(g_plain["params"][name]), strict=True):
            np.testing.assert_allclose(a, scale * b, rtol=1e-5, atol=1e-7)


# --- 8c. Ape-X replay ------------------------------------------------------------------------


def test_apex_replay_holds_two_million_transitions_in_about_14_gb():
    s = _atari("apex")
    assert s.agent_config.replay_capacity == 2_000_000  # Horgan et al. 2018, appendix
    shapes = jax.eval_shape(lambda: frame_init(jnp.zeros((4, 84, 84), jnp.uint8),
                                               s.run_config.num_envs, 2_000_000, 3))
    gigabytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes)) / 1e9
    assert 13.5 < gigabytes < 15.0


# --- 8d. Noisy double Q: the selection pass draws its own noise ----------------------------


def test_noisy_double_selection_uses_independent_noise():
    net = make_q_network(3, (6,), hidden_sizes=(16,), noisy=True)
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    params = net.init({"params": jax.random.PRNGKey(1), "noise": jax.random.PRNGKey(2)}, obs)

    def forward(p, x, key, taus=None):
        return net.apply(p, x, rngs={"noise": key})

    key = jax.random.PRNGKey(3)
    passes = jax.jit(online_passes, static_argnums=0, static_argnames="independent_noise")
    shared = passes(forward, params, obs, obs, key, independent_noise=False)
    independent = passes(forward, params, obs, obs, key, independent_noise=True)
    # Same inputs at s_tm1 and s_t: one noise sample gives equal rows ...
    np.testing.assert_allclose(shared[:4], shared[4:], rtol=1e-6)
    # ... independent samples do not, and the pass at s_tm1 is the same either way.
    assert not np.allclose(independent[:4], independent[4:])
    np.testing.assert_allclose(independent[:4], shared[:4], rtol=1e-6)
