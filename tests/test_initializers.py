"""The LAPACK-free orthogonal initializer (`jaxrl57.networks.initializers`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.networks.initializers import orthogonal
from jaxrl57.networks.recurrent import RecurrentQNetwork
from jaxrl57.networks.torsos import MLPTorso


@pytest.mark.parametrize("shape", [(64, 64), (96, 32), (16, 48), (3, 5, 20)])
def test_orthonormal_columns_or_rows(shape):
    w = np.asarray(orthogonal(scale=2.0)(jax.random.PRNGKey(0), shape), np.float64)
    assert w.shape == shape and w.dtype == np.float64
    m = w.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-4)


def test_same_q_as_lapack_qr_with_positive_diagonal():
    """Same draw as flax/jax's orthogonal init: Q of the QR of the same
    Gaussian matrix, signs fixed by diag(R) (Saxe et al. 2014)."""
    key = jax.random.PRNGKey(3)
    a = np.asarray(jax.random.normal(key, (40, 24)), np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    np.testing.assert_allclose(np.asarray(orthogonal()(key, (40, 24))), q, atol=1e-4)


def test_no_lapack_call_when_vmapped():
    """A vmapped R2D2 init must not contain LAPACK QR: batched QR calls
    deadlock jaxlib's CPU thread pool on 2-core machines (module docstring)."""
    net = RecurrentQNetwork(num_actions=3, torso=MLPTorso(hidden_sizes=(8,), obs_ndim=1),
                            core_size=16, head_hidden=(8,))
    T1 = (1, 1)

    def init(key):
        return net.init(key, jnp.zeros(T1 + (4,)), jnp.zeros(T1, jnp.int32), jnp.zeros(T1),
                        jnp.ones(T1, bool))

    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    hlo = jax.jit(jax.vmap(init)).lower(keys).as_text()
    assert "lapack" not in hlo and "qr" not in hlo.lower().replace("sqrt", "")
    params = jax.jit(jax.vmap(init))(keys)
    kernels = [np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(params)
               if any("h" in str(getattr(p, "key", "")) for p in path) and x.ndim == 3]
    assert kernels, "recurrent kernels not found"
    for k in kernels:  # [members, H, H] orthogonal per member
        for m in k:
            np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-4)
