"""Tests of jaxrl57.losses against NumPy references and rlax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxrl57 import losses

B, A = 5, 3


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        q_tm1=rng.normal(size=(B, A)).astype(np.float32) * 3.0,
        a_tm1=rng.integers(0, A, size=B).astype(np.int32),
        r_t=rng.normal(size=B).astype(np.float32),
        discount_t=np.array([0.99, 0.0, 0.5, 0.99, 1.0], np.float32),
        q_t_target=rng.normal(size=(B, A)).astype(np.float32) * 3.0,
        q_t_online=rng.normal(size=(B, A)).astype(np.float32) * 3.0,
    )


def _np_huber(x, delta):
    # 0.5 x^2 inside [-delta, delta], linear with slope delta outside, continuous at |x| = delta.
    ax = np.abs(x)
    return np.where(ax <= delta, 0.5 * x**2, 0.5 * delta**2 + delta * (ax - delta))


def _np_dqn(b, delta=1.0, weights=None):
    # td = r + gamma * max_a Q_target(s', a) - Q(s, a_tm1)   (Q-learning target of DQN)
    idx = np.arange(B)
    td = b["r_t"] + b["discount_t"] * b["q_t_target"].max(-1) - b["q_tm1"][idx, b["a_tm1"]]
    w = np.ones(B) if weights is None else weights
    return np.mean(w * _np_huber(td, delta)), td


def _np_double(b, delta=1.0, weights=None):
    # Double DQN: a* = argmax_a Q_online(s', a); target evaluates Q_target(s', a*).
    idx = np.arange(B)
    a_star = b["q_t_online"].argmax(-1)
    td = b["r_t"] + b["discount_t"] * b["q_t_target"][idx, a_star] - b["q_tm1"][idx, b["a_tm1"]]
    w = np.ones(B) if weights is None else weights
    return np.mean(w * _np_huber(td, delta)), td


def _dqn_args(b):
    return b["q_tm1"], b["a_tm1"], b["r_t"], b["discount_t"], b["q_t_target"]


@pytest.mark.parametrize("delta", [1.0, 0.5, 100.0])
def test_dqn_loss_matches_numpy(delta):
    b = _batch()
    loss, td = jax.jit(lambda *a: losses.dqn_loss(*a, huber_delta=delta))(*_dqn_args(b))
    ref_loss, ref_td = _np_dqn(b, delta)
    np.testing.assert_allclose(td, ref_td, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    chex.assert_shape(td, (B,))
    chex.assert_shape(loss, ())


def test_dqn_loss_matches_rlax_and_weights():
    b = _batch(1)
    w = np.array([0.1, 1.0, 2.0, 0.0, 0.5], np.float32)
    loss, td = losses.dqn_loss(*_dqn_args(b), weights=w)
    rlax_td = jax.vmap(rlax.q_learning)(*_dqn_args(b))
    np.testing.assert_allclose(td, rlax_td, rtol=1e-6)
    np.testing.assert_allclose(loss, _np_dqn(b, 1.0, w)[0], rtol=1e-5)
    # Zero weights remove an example entirely.
    loss_none, _ = losses.dqn_loss(*_dqn_args(b), weights=np.ones(B, np.float32))
    np.testing.assert_allclose(loss_none, losses.dqn_loss(*_dqn_args(b))[0], rtol=1e-6)


def test_huber_delta_traced():
    b = _batch(2)
    f = jax.jit(lambda d: losses.dqn_loss(*_dqn_args(b), huber_delta=d)[0])
    for d in (0.3, 2.0):
        np.testing.assert_allclose(f(jnp.float32(d)), _np_dqn(b, d)[0], rtol=1e-5)
    # vmap over a sweep of deltas gives the same as the loop.
    ds = jnp.array([0.3, 2.0])
    np.testing.assert_allclose(jax.vmap(f)(ds), [_np_dqn(b, d)[0] for d in (0.3, 2.0)], rtol=1e-5)


def test_dqn_no_gradient_into_target():
    b = _batch(3)
    args = _dqn_args(b)

    def loss_fn(q_tm1, q_t_target):
        return losses.dqn_loss(q_tm1, args[1], args[2], args[3], q_t_target)[0]

    g_online, g_target = jax.grad(loss_fn, argnums=(0, 1))(args[0], args[4])
    np.testing.assert_array_equal(g_target, np.zeros_like(g_target))
    # d loss / d q_tm1[b, a_tm1] = -huber'(td) / B = -clip(td, -1, 1) / B; zero elsewhere.
    _, td = _np_dqn(b)
    expected = np.zeros((B, A), np.float32)
    expected[np.arange(B), b["a_tm1"]] = -np.clip(td, -1.0, 1.0) / B
    np.testing.assert_allclose(g_online, expected, rtol=1e-5, atol=1e-6)


def test_double_dqn_matches_numpy_and_rlax():
    b = _batch(4)
    args = (*_dqn_args(b), b["q_t_online"])
    loss, td = jax.jit(losses.double_dqn_loss)(*args)
    ref_loss, ref_td = _np_double(b)
    np.testing.assert_allclose(td, ref_td, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(td, jax.vmap(rlax.double_q_learning)(*args), rtol=1e-6)
    w = np.linspace(0.0, 1.0, B).astype(np.float32)
    loss_w, _ = losses.double_dqn_loss(*args, weights=w, huber_delta=0.5)
    np.testing.assert_allclose(loss_w, _np_double(b, 0.5, w)[0], rtol=1e-5)


def test_double_dqn_picks_online_argmax():
    # Online prefers action 0, target's max is action 1: the target must use q_t_target[0].
    q_tm1 = jnp.zeros((1, 2))
    a_tm1 = jnp.zeros((1,), jnp.int32)
    r_t = jnp.zeros((1,))
    discount_t = jnp.ones((1,))
    q_t_target = jnp.array([[1.0, 10.0]])
    q_t_online = jnp.array([[5.0, 0.0]])
    _, td = losses.double_dqn_loss(q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online)
    np.testing.assert_allclose(td, [1.0])
    _, td_dqn = losses.dqn_loss(q_tm1, a_tm1, r_t, discount_t, q_t_target)
    np.testing.assert_allclose(td_dqn, [10.0])


def test_double_dqn_no_gradient_into_targets():
    b = _batch(5)

    def loss_fn(q_t_target, q_t_online):
        return losses.double_dqn_loss(*_dqn_args(b)[:4], q_t_target, q_t_online)[0]

    g_t, g_o = jax.grad(loss_fn, argnums=(0, 1))(b["q_t_target"], b["q_t_online"])
    np.testing.assert_array_equal(g_t, 0.0)
    np.testing.assert_array_equal(g_o, 0.0)


def test_losses_vmap_over_sweep_axis():
    # A leading sweep axis K over whole batches, as in jit(vmap(train)).
    bs = [_batch(s) for s in range(3)]
    stacked = [np.stack([b[k] for b in bs]) for k in ("q_tm1", "a_tm1", "r_t", "discount_t")]
    stacked.append(np.stack([b["q_t_target"] for b in bs]))
    loss, td = jax.jit(jax.vmap(losses.dqn_loss))(*stacked)
    for k, b in enumerate(bs):
        np.testing.assert_allclose(loss[k], _np_dqn(b)[0], rtol=1e-5)
        np.testing.assert_allclose(td[k], _np_dqn(b)[1], rtol=1e-5, atol=1e-5)


def test_rank_asserts():
    b = _batch()
    with pytest.raises(AssertionError):
        losses.dqn_loss(
            b["q_tm1"][0], b["a_tm1"][0], b["r_t"][0], b["discount_t"][0], b["q_t_target"][0]
        )


def test_invert_gradients_cases():
    low, high = -2.0, 2.0
    action = jnp.array([1.0, 1.0, -1.0, -1.0, 0.0, 2.0, -2.0])
    dqda = jnp.array([4.0, -4.0, 4.0, -4.0, 0.0, 1.0, -1.0])
    out = jax.jit(losses.invert_gradients)(dqda, action, low, high)
    # dqda > 0: * (high - a) / (high - low); else: * (a - low) / (high - low).
    # [4*(1/4), -4*(3/4), 4*(3/4), -4*(1/4), 0, 1*0 (at upper bound), -1*0 (at lower bound)]
    np.testing.assert_allclose(out, [1.0, -3.0, 3.0, -1.0, 0.0, 0.0, 0.0])
    # Past the bound, the gradient is reversed.
    np.testing.assert_allclose(
        losses.invert_gradients(jnp.array([2.0]), jnp.array([3.0]), low, high), [-0.5]
    )


def test_invert_gradients_per_dimension_bounds_and_vmap():
    rng = np.random.default_rng(0)
    low = np.array([-1.0, 0.0], np.float32)
    high = np.array([1.0, 10.0], np.float32)
    action = rng.uniform(low, high, size=(4, 2)).astype(np.float32)
    dqda = rng.normal(size=(4, 2)).astype(np.float32)
    ref = np.where(dqda > 0, dqda * (high - action), dqda * (action - low)) / (high - low)
    out = jax.vmap(losses.invert_gradients, in_axes=(0, 0, None, None))(dqda, action, low, high)
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_r2d2_priority():
    abs_td = np.abs(np.random.default_rng(0).normal(size=(7, 4))).astype(np.float32)
    # p = eta * max_t |delta_t| + (1 - eta) * mean_t |delta_t|
    ref = 0.9 * abs_td.max(0) + 0.1 * abs_td.mean(0)
    np.testing.assert_allclose(jax.jit(losses.r2d2_priority)(abs_td), ref, rtol=1e-6)
    ref1 = 0.5 * abs_td.max(1) + 0.5 * abs_td.mean(1)
    np.testing.assert_allclose(losses.r2d2_priority(abs_td, eta=0.5, axis=1), ref1, rtol=1e-6)
    # eta = 1 is the max, eta = 0 the mean; eta may be traced.
    f = jax.jit(lambda e: losses.r2d2_priority(abs_td, e))
    np.testing.assert_allclose(f(1.0), abs_td.max(0), rtol=1e-6)
    np.testing.assert_allclose(f(0.0), abs_td.mean(0), rtol=1e-6)


def _np_h(x, eps=1e-3):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1.0) - 1.0) + eps * x


def _np_h_inv(y, eps=1e-3):
    # Inverse of h, solving the quadratic in z = sqrt(|x| + 1) (Pohlen et al. 2018, Prop. A.2).
    return np.sign(y) * (
        ((np.sqrt(1.0 + 4.0 * eps * (np.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2 - 1.0
    )


def test_h_round_trip_numpy():
    x = np.linspace(-500.0, 500.0, 101)
    np.testing.assert_allclose(_np_h_inv(_np_h(x)), x, rtol=1e-8, atol=1e-8)


def test_agent57_q():
    rng = np.random.default_rng(0)
    q_e = rng.normal(size=(4, 6)).astype(np.float32) * 5.0
    q_i = rng.normal(size=(4, 6)).astype(np.float32) * 5.0
    # beta = 0: h(h^-1(q_e)) = q_e.
    f = jax.jit(losses.agent57_q)
    np.testing.assert_allclose(f(q_e, q_i, 0.0), q_e, rtol=1e-4, atol=1e-4)
    beta = 0.3
    ref = _np_h(_np_h_inv(q_e.astype(np.float64)) + beta * _np_h_inv(q_i.astype(np.float64)))
    out = f(q_e, q_i, beta)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    # Per-example beta through vmap equals broadcasting beta[:, None].
    betas = jnp.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(losses.agent57_q))(q_e, q_i, betas), f(q_e, q_i, betas[:, None]), rtol=1e-6
    )
    # Differentiable in beta (the Agent57 bandit does not need it, but nothing blocks it).
    g = jax.jit(jax.grad(lambda b: losses.agent57_q(q_e, q_i, b).sum()))(0.3)
    assert np.isfinite(g)
