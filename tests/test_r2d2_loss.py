"""`jaxrl57.losses.r2d2_loss` against rlax and a NumPy reference (Kapturowski et al. 2019)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import rlax

from jaxrl57 import losses

B, T, A = 3, 6, 4


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.normal(size=shape).astype(np.float32) * 3.0  # noqa: E731
    discount = np.where(rng.uniform(size=(B, T)) < 0.2, 0.0, 0.97).astype(np.float32)
    return dict(q_tm1=f(B, T, A), a_tm1=rng.integers(0, A, (B, T)).astype(np.int32),
                r_t=f(B, T), discount_t=discount, q_t_target=f(B, T, A), q_t_online=f(B, T, A))


def _h(x, eps=1e-3):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1.0) - 1.0) + eps * x


def _h_inv(x, eps=1e-3):
    return np.sign(x) * (((np.sqrt(1.0 + 4.0 * eps * (np.abs(x) + 1.0 + eps)) - 1.0)
                          / (2.0 * eps)) ** 2 - 1.0)


def _numpy_td(x, n):
    """Transformed n-step TD errors of one sequence, written from the paper: the
    n-step return is cut at the sequence end, where it bootstraps from the last
    value, and discount 0 stops it at an episode end."""
    q_tm1, a_tm1, r, d, q_target, q_online = (np.asarray(x[k], np.float64) for k in (
        "q_tm1", "a_tm1", "r_t", "discount_t", "q_t_target", "q_t_online"))
    a_star = np.argmax(q_online, -1)
    v = _h_inv(q_target[np.arange(T), a_star])  # values at steps 1..T, untransformed
    td = np.zeros(T)
    for t in range(T):
        g, scale = 0.0, 1.0
        last = min(t + n, T) - 1
        for k in range(t, last + 1):
            g += scale * r[k]
            scale *= d[k]
        g += scale * v[last]
        td[t] = _h(g) - q_tm1[t, int(a_tm1[t])]
    return td


def test_matches_rlax_and_numpy():
    x = _inputs()
    loss, td, priority = jax.jit(lambda x: losses.r2d2_loss(**x, n_step=3))(x)
    ref = jax.vmap(lambda q, a, qt, at, r, d: rlax.transformed_n_step_q_learning(
        q, a, qt, at, r, d, 3, tx_pair=rlax.SIGNED_HYPERBOLIC_PAIR))(
        x["q_tm1"], x["a_tm1"], x["q_t_target"], jnp.argmax(x["q_t_online"], -1),
        x["r_t"], x["discount_t"])
    np.testing.assert_allclose(td, ref, rtol=1e-5, atol=1e-5)
    for b in range(B):
        np.testing.assert_allclose(td[b], _numpy_td({k: v[b] for k, v in x.items()}, 3),
                                   rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss, np.mean(0.5 * np.sum(np.square(ref), -1)), rtol=1e-5)
    np.testing.assert_allclose(priority, losses.r2d2_priority(jnp.abs(ref), 0.9, axis=-1),
                               rtol=1e-5)


def test_weights_mask_and_priorities():
    x = _inputs(1)
    w = np.array([0.5, 1.0, 2.0], np.float32)
    mask = np.ones((B, T), np.float32)
    mask[:, -2:] = 0.0  # e.g. the steps after a truncation
    _, td_all, _ = losses.r2d2_loss(**x, n_step=2)
    loss, td, priority = losses.r2d2_loss(**x, n_step=2, mask_t=mask, weights=w, eta=0.5)
    np.testing.assert_array_equal(td[:, -2:], 0.0)
    np.testing.assert_allclose(td[:, :-2], td_all[:, :-2], rtol=1e-6)
    abs_td = np.abs(np.asarray(td_all)[:, :-2])
    np.testing.assert_allclose(priority, 0.5 * abs_td.max(-1) + 0.5 * abs_td.mean(-1), rtol=1e-5)
    np.testing.assert_allclose(
        loss, np.mean(w * 0.5 * np.sum(np.square(np.asarray(td_all)[:, :-2]), -1)), rtol=1e-5)


def test_gradient_reaches_only_the_taken_online_values():
    x = _inputs(2)

    def f(q_tm1, q_t_target, q_t_online):
        return losses.r2d2_loss(q_tm1, x["a_tm1"], x["r_t"], x["discount_t"], q_t_target,
                                q_t_online, n_step=5)[0]

    g_online, g_target, g_select = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(
        x["q_tm1"], x["q_t_target"], x["q_t_online"])
    np.testing.assert_array_equal(g_target, 0.0)
    np.testing.assert_array_equal(g_select, 0.0)
    taken = np.eye(A, dtype=bool)[x["a_tm1"]]
    np.testing.assert_array_equal(np.asarray(g_online)[~taken], 0.0)
    assert np.all(np.asarray(g_online)[taken] != 0.0)


def test_vmap_over_a_population():
    xs = [_inputs(s) for s in range(3)]
    stacked = jax.tree.map(lambda *v: np.stack(v), *xs)
    loss, td, priority = jax.jit(jax.vmap(lambda x: losses.r2d2_loss(**x)))(stacked)
    assert loss.shape == (3,) and td.shape == (3, B, T) and priority.shape == (3, B)
    for i, x in enumerate(xs):
        np.testing.assert_allclose(loss[i], losses.r2d2_loss(**x)[0], rtol=1e-5)
