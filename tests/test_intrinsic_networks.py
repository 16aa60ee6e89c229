"""NGU's embedding (inverse dynamics) and RND networks (`networks.intrinsic`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57 import intrinsic
from jaxrl57.networks.intrinsic import InverseDynamics, RNDNetwork
from jaxrl57.networks.torsos import MLPTorso


def _cells(size=12):
    """DeepSea-like observations: one-hot cells of a size x size grid, [size^2, size, size]."""
    return jnp.eye(size * size).reshape(size * size, size, size)


def test_inverse_dynamics_shapes_and_one_shared_embedding():
    net = InverseDynamics(3, MLPTorso((32,), obs_ndim=2), embedding_size=8)
    obs = _cells(4)
    params = net.init(jax.random.PRNGKey(0), obs, obs)
    logits = net.apply(params, obs[:5], obs[1:6])
    emb = net.apply(params, obs[:5], method="embed")
    assert logits.shape == (5, 3) and emb.shape == (5, 8)
    # Siamese: both observations go through the same weights (one embedding in params).
    assert sorted(params["params"]) == ["embedding", "hidden", "logits", "torso"]
    swapped = net.apply(params, obs[1:6], obs[:5])
    assert not np.allclose(swapped, logits)  # the order matters to the classifier


def test_inverse_dynamics_learns_the_action_and_the_embedding_separates_cells():
    # A walk on a line of 16 cells: action 0 moves left, 1 right (clipped), 2 stays.
    size, n = 16, 512
    rng = np.random.default_rng(0)
    pos = rng.integers(1, size - 1, n)
    act = rng.integers(0, 3, n)
    nxt = pos + np.array([-1, 1, 0])[act]
    eye = jnp.eye(size)
    net = InverseDynamics(3, MLPTorso((64,)), embedding_size=8, hidden_size=64)
    params = net.init(jax.random.PRNGKey(1), eye[:1], eye[:1])
    opt = optax.adam(3e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: intrinsic.inverse_dynamics_loss(
            net.apply(p, eye[pos], eye[nxt]), act))(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    first = None
    for _ in range(400):
        params, state, loss = step(params, state)
        first = loss if first is None else first
    assert float(first) > 1.0 and float(loss) < 0.05
    emb = net.apply(params, eye, method="embed")
    sq = np.sum((np.asarray(emb)[:, None] - np.asarray(emb)[None]) ** 2, -1)
    assert np.all(sq[~np.eye(size, dtype=bool)] > 0)


def test_inverse_dynamics_loss_is_the_cross_entropy():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    actions = jnp.array([0, 2])
    log_p = jax.nn.log_softmax(logits)
    want = -(log_p[0, 0] + log_p[1, 2]) / 2
    np.testing.assert_allclose(intrinsic.inverse_dynamics_loss(logits, actions), want,
                               rtol=1e-6)
    np.testing.assert_allclose(
        intrinsic.inverse_dynamics_loss(logits, actions, jnp.array([1.0, 0.0])),
        -log_p[0, 0] / 2, rtol=1e-6)


def test_rnd_predictor_error_falls_on_what_it_was_trained_on_only():
    """The lifelong signal: after training on the top half of a grid's cells the
    predictor's error there is far below its error on the unseen bottom half."""
    cells = _cells(12)
    seen, unseen = cells[:72], cells[72:]
    target = RNDNetwork(MLPTorso((64,), obs_ndim=2), output_size=16)
    predictor = RNDNetwork(MLPTorso((64,), obs_ndim=2), output_size=16)
    t_params = target.init(jax.random.PRNGKey(0), cells[:1])
    p_params = predictor.init(jax.random.PRNGKey(1), cells[:1])
    opt = optax.adam(1e-3)
    state = opt.init(p_params)

    def error(p, obs):
        return intrinsic.rnd_error(predictor.apply(p, obs), target.apply(t_params, obs))

    @jax.jit
    def step(p, state):
        grads = jax.grad(lambda p: jnp.mean(error(p, seen)))(p)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(p, updates), state

    before = float(jnp.mean(error(p_params, unseen)))
    for _ in range(300):
        p_params, state = step(p_params, state)
    seen_err = float(jnp.mean(error(p_params, seen)))
    unseen_err = float(jnp.mean(error(p_params, unseen)))
    assert seen_err < 0.1 * unseen_err, (seen_err, unseen_err)
    assert unseen_err > 0.3 * before  # the unseen cells stay novel
