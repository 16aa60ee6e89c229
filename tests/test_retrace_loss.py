"""`losses.retrace_loss` (transformed Retrace of NGU and Agent57) against rlax and
against a NumPy transcription of the recursion (Munos et al. 2016)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import rlax

from jaxrl57 import exploration, losses

EPS = 1e-3


def _h(x):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + EPS * x


def _h_inv(x):
    return np.sign(x) * (((np.sqrt(1 + 4 * EPS * (np.abs(x) + 1 + EPS)) - 1) / (2 * EPS)) ** 2
                         - 1)


def _retrace_numpy(q_tm1, a_tm1, r, d, q_t, a_t, pi, mu, lam):
    """td [T] of one sequence, the recursion written out backwards (`lam` a scalar
    or [T])."""
    T = len(r)
    q = _h_inv(q_t.astype(np.float64))
    c = lam * np.minimum(1.0, pi[np.arange(T), a_t] / (mu + 1e-8))
    expected = np.sum(pi * q, axis=-1)
    g = np.zeros(T)
    g[T - 1] = r[T - 1] + d[T - 1] * expected[T - 1]
    for t in range(T - 2, -1, -1):
        g[t] = r[t] + d[t] * (expected[t] - c[t] * q[t, a_t[t]] + c[t] * g[t + 1])
    return _h(g) - q_tm1[np.arange(T), a_tm1]


def _inputs(seed, B=3, T=7, A=4):
    rng = np.random.default_rng(seed)
    q_tm1 = rng.normal(0, 2, (B, T, A)).astype(np.float32)
    q_t = rng.normal(0, 2, (B, T, A)).astype(np.float32)
    a_tm1 = rng.integers(0, A, (B, T)).astype(np.int32)
    a_t = np.concatenate([a_tm1[:, 1:], rng.integers(0, A, (B, 1))], axis=1).astype(np.int32)
    r = rng.normal(0, 1, (B, T)).astype(np.float32)
    d = (0.997 * (rng.random((B, T)) > 0.1)).astype(np.float32)  # some episode ends
    pi = np.asarray(exploration.epsilon_greedy_probs(q_t, 0.0))
    mu = np.asarray(exploration.epsilon_greedy_probs(rng.normal(size=(B, T, A)), 0.3))
    mu = mu[np.arange(B)[:, None], np.arange(T), a_t]
    return q_tm1, a_tm1, r, d, q_t, a_t, pi, mu


def test_retrace_is_the_recursion_written_out():
    args = _inputs(0)
    loss, td, priority = jax.jit(losses.retrace_loss)(*args)
    want = np.stack([_retrace_numpy(*(x[b] for x in args), 0.95) for b in range(3)])
    np.testing.assert_allclose(td, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss, np.mean(0.5 * np.sum(want ** 2, axis=1)), rtol=1e-4)
    np.testing.assert_allclose(
        priority, 0.9 * np.abs(want).max(1) + 0.1 * np.abs(want).mean(1), rtol=1e-4)


def test_a_per_step_lambda_of_0_cuts_the_trace():
    args = _inputs(4)
    lam = np.full((3, 7), 0.95, np.float32)
    lam[:, 3] = 0.0  # e.g. an episode's final observation at step 3 of the next-values
    _, td, _ = losses.retrace_loss(*args, lambda_=lam)
    want = np.stack([_retrace_numpy(*(x[b] for x in args), lam[b]) for b in range(3)])
    np.testing.assert_allclose(td, want, rtol=1e-4, atol=1e-4)
    # Before the cut the targets no longer depend on what comes after it.
    q_t = args[4].copy()
    q_t[:, 5:] += 10.0
    _, td_changed, _ = losses.retrace_loss(*args[:4], q_t, *args[5:], lambda_=lam)
    np.testing.assert_allclose(np.asarray(td_changed)[:, :3], np.asarray(td)[:, :3], rtol=1e-5)
    assert not np.allclose(np.asarray(td_changed)[:, 4:], np.asarray(td)[:, 4:])


def test_retrace_matches_rlax_with_mask_weights_and_lambda():
    q_tm1, a_tm1, r, d, q_t, a_t, pi, mu = _inputs(1, B=5, T=9, A=3)
    mask = (np.random.default_rng(2).random((5, 9)) > 0.2).astype(np.float32)
    weights = np.linspace(0.5, 1.0, 5).astype(np.float32)
    for lam in (0.0, 0.5, 1.0):
        loss, td, _ = losses.retrace_loss(q_tm1, a_tm1, r, d, q_t, a_t, pi, mu, lambda_=lam,
                                          mask_t=mask, weights=weights)
        op = functools.partial(rlax.transformed_retrace, lambda_=lam,
                               tx_pair=rlax.SIGNED_HYPERBOLIC_PAIR)
        want = jax.vmap(op)(q_tm1, q_t, a_tm1, a_t, r, d, pi, mu) * mask
        np.testing.assert_allclose(td, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            loss, np.mean(weights * 0.5 * np.sum(np.asarray(want) ** 2, axis=1)), rtol=1e-5)


def test_lambda_0_is_expected_sarsa_and_gradients_reach_the_online_values_only():
    q_tm1, a_tm1, r, d, q_t, a_t, pi, mu = _inputs(3)
    _, td, _ = losses.retrace_loss(q_tm1, a_tm1, r, d, q_t, a_t, pi, mu, lambda_=0.0)
    one_step = _h(r + d * np.sum(pi * _h_inv(q_t.astype(np.float64)), -1))
    chosen = np.take_along_axis(q_tm1, a_tm1[..., None], -1)[..., 0]
    np.testing.assert_allclose(td, one_step - chosen, rtol=1e-4, atol=1e-4)
    grads = jax.grad(lambda q, qt: losses.retrace_loss(q, a_tm1, r, d, qt, a_t, pi, mu)[0],
                     argnums=(0, 1))(jnp.asarray(q_tm1), jnp.asarray(q_t))
    assert np.abs(np.asarray(grads[0])).sum() > 0
    np.testing.assert_array_equal(grads[1], 0.0)


def test_epsilon_greedy_probs_are_the_policy_of_epsilon_greedy():
    q = jnp.array([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]])
    np.testing.assert_allclose(exploration.epsilon_greedy_probs(q, 0.0),
                               [[0, 1, 0], [0, 0, 1]])
    probs = exploration.epsilon_greedy_probs(q, jnp.array([0.3, 0.6]))
    np.testing.assert_allclose(probs, [[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], rtol=1e-6)
    # The frequencies of `epsilon_greedy` itself.
    keys = jax.random.split(jax.random.PRNGKey(0), 20_000)
    actions = jax.vmap(lambda k: exploration.epsilon_greedy(k, q[0], 0.3))(keys)
    np.testing.assert_allclose(np.bincount(np.asarray(actions), minlength=3) / 20_000,
                               [0.1, 0.8, 0.1], atol=0.015)
