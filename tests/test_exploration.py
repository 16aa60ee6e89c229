"""Tests of jaxrl57.exploration against NumPy references of the papers' formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import exploration as ex


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_linear_epsilon_endpoints_and_midpoint():
    f = jax.jit(ex.linear_epsilon)
    assert f(0).dtype == jnp.float32
    np.testing.assert_allclose(f(0), 1.0)
    # Halfway: 0.1 + 0.9 * 0.5 = 0.55.
    np.testing.assert_allclose(f(500_000), 0.55, rtol=1e-6)
    np.testing.assert_allclose(f(1_000_000), 0.1, rtol=1e-6)
    np.testing.assert_allclose(f(5_000_000), 0.1, rtol=1e-6)


def test_linear_epsilon_traced_settings_and_vmap():
    f = jax.jit(jax.vmap(ex.linear_epsilon, in_axes=(0, None, 0, 0)))
    steps = jnp.array([0, 50, 100, 200])
    ends = jnp.array([0.01, 0.1, 0.05, 0.0])
    decays = jnp.array([100.0, 100.0, 100.0, 400.0])
    # end + (start - end) * max(0, 1 - step / decay)
    ref = ends + (1.0 - ends) * np.clip(1.0 - np.asarray(steps) / decays, 0.0, 1.0)
    np.testing.assert_allclose(f(steps, 1.0, ends, decays), ref, rtol=1e-6)


def test_epsilon_greedy_extremes():
    key = jax.random.PRNGKey(0)
    q = jnp.array([0.0, 3.0, 1.0])
    assert int(jax.jit(ex.epsilon_greedy)(key, q, 0.0)) == 1
    qb = jnp.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    np.testing.assert_array_equal(ex.epsilon_greedy(key, qb, 0.0), [1, 0])
    # epsilon = 1: uniform over actions.
    keys = jax.random.split(key, 4000)
    acts = jax.jit(jax.vmap(ex.epsilon_greedy, in_axes=(0, None, None)))(keys, q, 1.0)
    freq = np.bincount(np.asarray(acts), minlength=3) / 4000
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.04)


def test_epsilon_greedy_per_row_epsilon():
    key = jax.random.PRNGKey(1)
    q = jnp.tile(jnp.array([[0.0, 0.0, 0.0, 9.0]]), (2000, 1))
    eps = jnp.where(jnp.arange(2000) < 1000, 0.0, 0.5)
    acts = np.asarray(jax.jit(ex.epsilon_greedy)(key, q, eps))
    assert acts.shape == (2000,) and acts.dtype == np.int32
    assert (acts[:1000] == 3).all()
    # Greedy w.p. 1 - eps + eps / A = 0.5 + 0.125 = 0.625.
    np.testing.assert_allclose((acts[1000:] == 3).mean(), 0.625, atol=0.05)


def test_apex_epsilons():
    eps = jax.jit(ex.apex_epsilons, static_argnums=0)(8)
    # epsilon_i = 0.4 ** (1 + 7 i / 7) = 0.4 ** (1 + i)
    np.testing.assert_allclose(eps, 0.4 ** (1.0 + np.arange(8)), rtol=1e-5)
    np.testing.assert_allclose(eps[0], 0.4, rtol=1e-6)
    np.testing.assert_allclose(eps[-1], 0.4**8, rtol=1e-5)
    np.testing.assert_allclose(ex.apex_epsilons(1), [0.4])
    np.testing.assert_allclose(ex.apex_epsilons(3, 0.5, 2.0), [0.5, 0.25, 0.125], rtol=1e-6)
    # Traced epsilon under vmap.
    out = jax.vmap(lambda e: ex.apex_epsilons(4, e))(jnp.array([0.4, 0.5]))
    assert out.shape == (2, 4)
    with pytest.raises(ValueError):
        ex.apex_epsilons(0)


def _np_ngu_betas(n, beta):
    # NGU App. A: 0 at i = 0, beta at i = N-1, beta * sigmoid(10 (2i - (N-2)) / (N-2)) between.
    out = []
    for i in range(n):
        if i == 0:
            out.append(0.0)
        elif i == n - 1:
            out.append(beta)
        else:
            out.append(beta * _sigmoid(10 * (2 * i - (n - 2)) / (n - 2)))
    return np.array(out)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 32])
def test_ngu_betas(n):
    betas = ex.ngu_betas(n, 0.3)
    assert betas.shape == (n,) and betas.dtype == jnp.float32
    np.testing.assert_allclose(betas, _np_ngu_betas(n, 0.3), rtol=1e-5, atol=1e-7)
    assert betas[0] == 0.0
    if n > 1:
        np.testing.assert_allclose(betas[-1], 0.3, rtol=1e-6)
    assert np.all(np.diff(np.asarray(betas)) >= 0)


def test_ngu_betas_traced():
    out = jax.jit(jax.vmap(lambda b: ex.ngu_betas(32, b)))(jnp.array([0.1, 0.3]))
    np.testing.assert_allclose(out[1], _np_ngu_betas(32, 0.3), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1, 2, 8, 32])
def test_ngu_discounts(n):
    g = np.asarray(ex.ngu_discounts(n))
    j = np.arange(n)
    # gamma_j = 1 - exp(((N-1-j) log(1-gmax) + j log(1-gmin)) / (N-1)); N = 1 gives [gmax].
    if n == 1:
        ref = np.array([0.997])
    else:
        ref = 1 - np.exp(((n - 1 - j) * np.log(1 - 0.997) + j * np.log(1 - 0.99)) / (n - 1))
    np.testing.assert_allclose(g, ref, rtol=1e-6)
    np.testing.assert_allclose(g[0], 0.997, rtol=1e-6)
    if n > 1:
        np.testing.assert_allclose(g[-1], 0.99, rtol=1e-6)
        assert np.all(np.diff(g) < 0)
        assert g.argmax() == 0


def test_agent57_discounts():
    n = 32
    g = np.asarray(jax.jit(ex.agent57_discounts, static_argnums=0)(n), np.float64)
    assert g.shape == (n,)
    g0, g1, g2 = 0.9999, 0.997, 0.99
    # Reference written from the appendix, with the decreasing direction of the intended
    # family (see the docstring): sigmoid(-10(2j-6)/6) on 1..6, log-spaced horizons on 8..N-1.
    ref = np.empty(n)
    for j in range(n):
        if j == 0:
            ref[j] = g0
        elif j <= 6:
            ref[j] = g1 + (g0 - g1) * _sigmoid(-10 * (2 * j - 6) / 6)
        elif j == 7:
            ref[j] = g1
        else:
            ref[j] = 1 - np.exp(((n - 1 - j) * np.log(1 - g1) + (j - 8) * np.log(1 - g2)) / (n - 9))
    np.testing.assert_allclose(g, ref, rtol=1e-6)
    np.testing.assert_allclose([g[0], g[7], g[8], g[-1]], [g0, g1, g1, g2], rtol=1e-6)
    # Non-increasing, index 0 largest.
    assert np.all(np.diff(g) <= 1e-7)
    assert g.argmax() == 0
    with pytest.raises(ValueError):
        ex.agent57_discounts(9)


def test_discount_families_traced():
    f = jax.jit(jax.vmap(lambda lo, hi: ex.ngu_discounts(8, lo, hi)))
    out = f(jnp.array([0.9, 0.99]), jnp.array([0.99, 0.999]))
    np.testing.assert_allclose(out[:, 0], [0.99, 0.999], rtol=1e-6)
    np.testing.assert_allclose(out[:, -1], [0.9, 0.99], rtol=1e-6)
    out57 = jax.vmap(lambda a: ex.agent57_discounts(16, a))(jnp.array([0.999, 0.9999]))
    np.testing.assert_allclose(out57[:, 0], [0.999, 0.9999], rtol=1e-6)
