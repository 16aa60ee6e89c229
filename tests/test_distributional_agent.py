"""The DQN-family agent with distributional heads and noisy nets:
C51, QR-DQN, IQN, noisy layers and the Rainbow combination, on the same
init/act/update functions as DQN."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxrl57 import configs, envs, losses
from jaxrl57.agents.dqn import DQNConfig, DQNHParams, make_dqn
from jaxrl57.presets import DQN_PRESETS
from jaxrl57.replay.base import EnvSteps

E = 4
SPEC = envs.make_env("jax:Catch").spec  # obs [8, 8, 1], 3 actions
SMALL = dict(hidden_sizes=(32,), replay_capacity=256, batch_size=16)

VARIANTS = {
    "c51": dict(distribution="c51", num_atoms=11),
    "c51_double_dueling": dict(distribution="c51", num_atoms=11, double=True, dueling=True),
    "qr": dict(distribution="qr", num_atoms=8),
    "qr_double": dict(distribution="qr", num_atoms=8, double=True),
    "iqn": dict(distribution="iqn", num_atoms=8, num_act_taus=4),
    "noisy_dueling": dict(noisy=True, dueling=True, double=True),
    "rainbow": dict(distribution="c51", num_atoms=11, double=True, dueling=True, noisy=True,
                    n_step=3, prioritized=True),
}


def _hp(**values):
    return DQNHParams.create(**{"learning_starts": 16, "v_min": -2.0, "v_max": 2.0, **values})


def _agent(**overrides):
    return make_dqn(DQNConfig(**{**SMALL, **overrides}), SPEC, E)


def _filled(agent, hp, seed=1, n=16):
    rng = np.random.default_rng(seed)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), hp)

    def body(s, t):
        return agent.observe(s, EnvSteps(*t)), None

    tr = (rng.uniform(size=(n, E, *SPEC.obs_shape)).astype(np.float32),
          rng.integers(0, SPEC.num_actions, (n, E)).astype(np.int32),
          rng.normal(size=(n, E)).astype(np.float32), rng.uniform(size=(n, E)) < 0.2,
          np.zeros((n, E), bool), rng.uniform(size=(n, E, *SPEC.obs_shape)).astype(np.float32))
    return jax.jit(lambda s, t: jax.lax.scan(body, s, t)[0])(state, tr), tr[0][0]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_acts_and_updates_under_jit(name):
    agent = _agent(**VARIANTS[name])
    state, obs = _filled(agent, _hp())
    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(agent.update, n=1))
    act = jax.jit(chex.assert_max_traces(lambda *a: agent.actor.act(*a), n=1))
    actions, _ = act(agent.view(state), (), obs, jax.random.PRNGKey(1))
    assert actions.shape == (E,) and actions.dtype == jnp.int32
    new, metrics = update(state, jax.random.PRNGKey(2))
    new, metrics = update(new, jax.random.PRNGKey(3))
    assert float(metrics["updated"]) == 1.0
    for k in agent.metric_names:
        assert np.isfinite(float(metrics[k])), k
    changed = [not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True)]
    assert any(changed)
    if VARIANTS[name].get("prioritized"):
        # The priorities written are the per-example losses (cross-entropy) ** alpha.
        assert float(new.replay.store.max_priority) > 1.0


@pytest.mark.parametrize("name", ["c51", "qr", "iqn", "rainbow"])
def test_population_of_seeds_is_one_vmap(name):
    agent = _agent(**VARIANTS[name])
    hp = jax.tree.map(lambda x: jnp.stack([x] * 3), _hp())
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    states = jax.jit(jax.vmap(agent.init))(keys, hp)
    obs = jnp.zeros((3, E, *SPEC.obs_shape))
    actions, _ = jax.jit(jax.vmap(lambda s, o, k: agent.actor.act(agent.view(s), (), o, k)))(
        states, obs, keys)
    assert actions.shape == (3, E)
    # Seeds give different initialisations (biases start at zero, kernels do not).
    assert any(not np.allclose(leaf[0], leaf[1]) for leaf in jax.tree.leaves(states.params))


def test_c51_update_loss_is_the_categorical_double_loss():
    """The agent's loss on a batch equals `categorical_double_dqn_loss` computed
    from the network's outputs (so the agent trains on the tested operator)."""
    agent = _agent(**VARIANTS["c51_double_dueling"])
    state, _ = _filled(agent, _hp())
    new, metrics = jax.jit(agent.update)(state, jax.random.PRNGKey(7))
    # The loss reported is a cross-entropy: positive and at least the entropy
    # of nothing (>= 0); with 11 atoms and random init it is near log(11).
    assert 0.0 < float(metrics["loss"]) < 2 * np.log(11)
    # The support follows the traced v_min/v_max: a sweep can change it.
    atoms = jnp.linspace(-2.0, 2.0, 11)
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 11))
    q = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    a, r, d = jnp.array([0, 1, 2, 0, 1]), jnp.ones(5), jnp.full(5, 0.9)
    loss, per = losses.categorical_double_dqn_loss(logits, a, r, d, logits, q, atoms)
    ref = jax.vmap(rlax.categorical_double_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0, 0))(
        atoms, logits, a, r, d, atoms, logits, q)
    np.testing.assert_allclose(per, ref, rtol=1e-5)


def test_noisy_acting_explores_by_noise_and_evaluates_with_mean_weights():
    agent = _agent(noisy=True)
    state, obs = _filled(agent, _hp(epsilon_start=1.0, epsilon_end=1.0, eval_epsilon=0.0))
    obs = jnp.asarray(np.random.default_rng(0).uniform(size=(64, *SPEC.obs_shape)),
                      jnp.float32)
    agent64 = make_dqn(DQNConfig(**{**SMALL, "noisy": True}), SPEC, 64)
    act = jax.jit(lambda s, o, k: agent64.actor.act(agent64.view(s), (), o, k))
    act_eval = jax.jit(lambda s, o, k: agent64.eval_actor.act(agent64.view(s), (), o, k)[0])
    # Greedy in the noisy values, whatever epsilon says (epsilon is 1 here):
    # different noise keys give different actions on some observations ...
    runs = np.stack([np.asarray(act(state, obs, jax.random.PRNGKey(i))[0]) for i in range(8)])
    assert np.any(runs != runs[0])
    # ... while evaluation uses the mean weights: the same actions for every key,
    # the argmax of the network applied with deterministic=True.
    evals = np.stack([np.asarray(act_eval(state, obs, jax.random.PRNGKey(i)))
                      for i in range(4)])
    assert np.all(evals == evals[0])
    from jaxrl57.networks import make_q_network
    net = make_q_network(SPEC.num_actions, SPEC.obs_shape, hidden_sizes=(32,), noisy=True)
    q_mean = net.apply(state.params, obs, deterministic=True)
    np.testing.assert_array_equal(evals[0], np.argmax(q_mean, -1))
    del agent


@pytest.mark.parametrize("bad,needle", [
    (dict(distribution="c52"), "distribution"),
    (dict(distribution="qr", dueling=True), "dueling"),
    (dict(distribution="c51", num_atoms=1), "num_atoms"),
])
def test_impossible_distributional_settings(bad, needle):
    with pytest.raises(ValueError, match=needle):
        DQNConfig(**bad).validate()


@pytest.mark.parametrize("preset", ["c51", "qr_dqn", "iqn", "rainbow"])
def test_presets_resolve_with_paper_settings(preset):
    s = configs.resolve(preset, "Breakout-v5", {})
    static, _ = DQN_PRESETS[preset]
    for k, v in static.items():
        assert getattr(s.agent_config, k) == v
    assert s.agent_config.optimizer == "adam"
    if preset == "rainbow":
        c = s.agent_config
        assert (c.distribution, c.num_atoms, c.n_step) == ("c51", 51, 3)
        assert c.double and c.dueling and c.noisy and c.prioritized
        assert s.hparams["learning_rate"] == 6.25e-5 and s.hparams["optimizer_eps"] == 1.5e-4
        assert s.hparams["priority_alpha"] == 0.5
