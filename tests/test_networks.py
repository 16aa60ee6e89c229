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


def test_conv_torso_takes_another_convolution_layer_with_the_same_parameters():
    """`ConvTorso(conv=...)` keeps the parameter tree of `nn.Conv` (Conv_0, Conv_1, ...),
    so a layer computing the same convolution another way gives the same outputs and
    gradients from the same parameters."""
    import flax.linen as nn

    from jaxrl57.networks import ConvTorso

    class LaxConv(nn.Module):  # the convolution written directly, NCHW, as a stand-in
        features: int
        kernel_size: tuple[int, int]
        strides: tuple[int, int] = (1, 1)
        padding: str = "VALID"

        @nn.compact
        def __call__(self, x):
            kernel = self.param("kernel", nn.initializers.lecun_normal(),
                                (*self.kernel_size, x.shape[-1], self.features))
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            y = jax.lax.conv_general_dilated(
                jnp.moveaxis(x, -1, 1), kernel, self.strides, self.padding,
                dimension_numbers=("NCHW", "HWIO", "NCHW"))
            return jnp.moveaxis(y, 1, -1) + bias

    obs = jax.random.randint(jax.random.PRNGKey(0), (2, 4, 84, 84), 0, 256).astype(jnp.uint8)
    plain, other = ConvTorso(channels_first=True), ConvTorso(channels_first=True, conv=LaxConv)
    params = plain.init(jax.random.PRNGKey(1), obs)
    assert sorted(params["params"]) == ["Conv_0", "Conv_1", "Conv_2", "Dense_0"]
    assert (jax.tree.structure(other.init(jax.random.PRNGKey(1), obs))
            == jax.tree.structure(params))
    np.testing.assert_allclose(other.apply(params, obs), plain.apply(params, obs),
                               rtol=1e-5, atol=1e-5)
    grad = lambda net: jax.grad(lambda p: jnp.sum(net.apply(p, obs) ** 2))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 grad(other), grad(plain))


def _nature_params(**kw):
    net = make_q_network(4, (4, 84, 84), torso="nature_cnn", **kw)
    obs = jnp.zeros((2, 4, 84, 84), jnp.uint8)
    args = (jnp.full((2, 8), 0.5),) if kw.get("distribution") == "iqn" else ()
    rngs = {"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}
    params = net.init(rngs, obs, *args)["params"]
    shapes = {"/".join(str(getattr(k, "key", k)) for k in path): leaf.shape
              for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    return shapes, sum(int(np.prod(s)) for s in shapes.values())


CONV = 8 * 8 * 4 * 32 + 32 + 4 * 4 * 32 * 64 + 64 + 3 * 3 * 64 * 64 + 64  # 77,984
FC512 = 3136 * 512 + 512


def test_nature_architectures_have_the_papers_layers():
    # Nature DQN (Mnih et al. 2015): conv, one 512 layer, 4 outputs: 1,686,180.
    shapes, n = _nature_params()
    assert n == CONV + FC512 + 512 * 4 + 4 == 1_686_180
    # Dueling (Wang et al. 2016, sec. 4.2): the conv features feed two streams,
    # each with its own 512 layer; nothing dense is shared.
    shapes, n = _nature_params(dueling=True)
    assert n == CONV + 2 * FC512 + (512 + 1) + (512 * 4 + 4)
    assert not any(k.startswith("torso/Dense") for k in shapes)
    # NoisyNet-DQN (Fortunato et al. 2018): the 512 layer is noisy too
    # (mu and sigma for weights and biases: twice the parameters).
    shapes, n = _nature_params(noisy=True)
    assert n == CONV + 2 * FC512 + 2 * (512 * 4 + 4)
    assert not any(k.startswith("torso/Dense") for k in shapes)
    # Rainbow (Hessel et al. 2018): noisy dueling streams of C51 logits.
    _, n = _nature_params(dueling=True, noisy=True, distribution="c51", num_atoms=51)
    assert n == CONV + 2 * (2 * FC512) + 2 * (512 * 51 + 51) + 2 * (512 * 4 * 51 + 4 * 51)
    # IQN (Dabney et al. 2018b, sec. 3.1): the tau embedding has the conv
    # features' size (3136) and the 512 layer comes after the merge.
    shapes, n = _nature_params(distribution="iqn")
    assert shapes["head/IQNEmbedding_0/Dense_0/kernel"] == (64, 3136)
    assert n == CONV + (64 * 3136 + 3136) + FC512 + 512 * 4 + 4
    # C51 and QR-DQN keep the DQN network: only the output layer changes.
    _, n = _nature_params(distribution="qr", num_atoms=200)
    assert n == CONV + FC512 + 512 * 4 * 200 + 4 * 200
