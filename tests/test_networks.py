"""Networks: shapes, dtypes, the dueling aggregation (Wang et al. 2016, eq. 9)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.networks import DuelingHead, make_q_network


def test_nature_cnn_takes_envpool_frame_stacks():
    net = make_q_network(6, (4, 84, 84), torso="nature_cnn")
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((4, 84, 84), jnp.uint8))
    q = jax.jit(net.apply)(params, jnp.zeros((3, 4, 84, 84), jnp.uint8))
    assert q.shape == (3, 6) and q.dtype == jnp.float32
    # Nature DQN: 32x8x8x4 + 64x4x4x32 + 64x3x3x64 conv kernels, 3136 -> 512 dense.
    torso = params["params"]["torso"]
    shapes = sorted(np.shape(v["kernel"]) for v in torso.values())
    assert (8, 8, 4, 32) in shapes and (4, 4, 32, 64) in shapes and (3, 3, 64, 64) in shapes
    assert (3136, 512) in shapes


def test_dueling_head_is_value_plus_centred_advantage():
    head = DuelingHead(num_actions=4)
    features = jax.random.normal(jax.random.PRNGKey(1), (5, 16))
    params = head.init(jax.random.PRNGKey(2), features)
    q = head.apply(params, features)
    p = params["params"]
    value = features @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    adv = features @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    expected = value + adv - adv.mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-5)


def test_mlp_q_network_single_and_batched_agree():
    net = make_q_network(2, (4,), torso="mlp", hidden_sizes=(32, 32), dueling=True)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros(4))
    obs = jax.random.normal(jax.random.PRNGKey(3), (7, 4))
    batched = net.apply(params, obs)
    single = jax.vmap(lambda o: net.apply(params, o))(obs)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda p: net.apply(p, obs).sum())(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
