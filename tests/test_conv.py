"""`networks.conv.Conv`: `nn.Conv` with a kernel gradient XLA:CPU runs fast in loops."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.networks import make_q_network
from jaxrl57.networks.conv import Conv, conv2d
from jaxrl57.networks.torsos import ConvTorso

CASES = [  # (input [B, H, W, C], features, kernel, stride, padding)
    ((3, 84, 84, 4), 8, 8, 4, "VALID"),
    ((2, 20, 20, 5), 6, 4, 2, "VALID"),
    ((2, 10, 10, 3), 4, 3, 2, "VALID"),  # (10 - 3) % 2 = 1: the gradient is cropped
    ((2, 16, 16, 1), 4, 3, 1, "SAME"),
    ((3, 11, 9, 2), 5, 3, 2, "SAME"),
    ((2, 9, 9, 3), 4, 3, 1, ((1, 2), (0, 1))),
]


@pytest.mark.parametrize("shape,features,k,s,padding", CASES)
def test_values_and_gradients_equal_flax_conv(shape, features, k, s, padding):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    ref = nn.Conv(features, (k, k), strides=(s, s), padding=padding)
    new = Conv(features, (k, k), strides=(s, s), padding=padding)
    params = ref.init(jax.random.PRNGKey(1), x)
    # Same parameter tree and the same initial values from the same key.
    jax.tree.map(np.testing.assert_array_equal, new.init(jax.random.PRNGKey(1), x), params)
    np.testing.assert_allclose(new.apply(params, x), ref.apply(params, x), rtol=1e-6, atol=1e-6)
    dy = jax.random.normal(jax.random.PRNGKey(2), ref.apply(params, x).shape)

    def grads(net):
        return jax.grad(lambda p, x: jnp.sum(net.apply(p, x) * dy), argnums=(0, 1))(params, x)

    for got, want in zip(jax.tree.leaves(grads(new)), jax.tree.leaves(grads(ref)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(want))))


def test_kernel_gradient_against_a_direct_sum():
    # dW[i, j, c, o] = sum_{b, p, q} x[b, s p + i, s q + j, c] dy[b, p, q, o]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 7, 3)).astype(np.float32)
    w = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
    s = 2
    y = conv2d(x, w, (s, s), "VALID")
    dy = rng.normal(size=y.shape).astype(np.float32)
    _, vjp = jax.vjp(lambda w: conv2d(x, w, (s, s), "VALID"), w)
    (dw,) = vjp(dy)
    want = np.zeros_like(w)
    for p in range(y.shape[1]):
        for q in range(y.shape[2]):
            patch = x[:, s * p:s * p + 3, s * q:s * q + 2, :]  # [B, kh, kw, C]
            want += np.einsum("bijc,bo->ijco", patch, dy[:, p, q, :])
    np.testing.assert_allclose(dw, want, rtol=1e-4, atol=1e-4)


def test_leading_axes_vmap_and_scan():
    conv = Conv(4, (3, 3), strides=(2, 2), padding="VALID")
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 9, 9, 2))  # two leading axes
    params = conv.init(jax.random.PRNGKey(1), x)
    y = conv.apply(params, x)
    assert y.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(y[1], conv.apply(params, x[1]), rtol=1e-6)

    def loss(p, x):
        return jnp.mean(conv.apply(p, x) ** 2)

    # Members: vmap over stacked parameters, as a sweep does.
    stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
    g = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)))(stacked, x[0])
    g1 = jax.grad(loss)(jax.tree.map(lambda a: 2 * a, params), x[0])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-5), g, g1)

    # Gradient steps inside lax.scan equal the same steps called one by one.
    def step(p, _):
        return jax.tree.map(lambda a, b: a - 0.1 * b, p, jax.grad(loss)(p, x[0])), None

    scanned, _ = jax.jit(lambda p: jax.lax.scan(step, p, None, length=3))(params)
    looped = params
    for _ in range(3):
        looped, _ = step(looped, None)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), scanned, looped)


def test_torsos_use_it_with_the_same_parameter_tree():
    assert ConvTorso().conv is Conv
    net = make_q_network(4, (4, 84, 84), torso="nature_cnn")
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 84, 84), jnp.uint8))["params"]
    flax_torso = ConvTorso(channels_first=True, conv=nn.Conv)
    want = flax_torso.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 84, 84), jnp.uint8))
    assert jax.tree.map(np.shape, params["torso"]) == jax.tree.map(np.shape, want["params"])
