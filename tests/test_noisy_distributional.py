"""Noisy layers (Fortunato et al. 2018) and distributional heads (C51, QR-DQN, IQN)."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxrl57.losses import quantile_midpoints
from jaxrl57.networks import MLPTorso, QNetwork
from jaxrl57.networks.distributional import (
    CategoricalHead,
    IQNEmbedding,
    IQNHead,
    QuantileHead,
    categorical_atoms,
    cosine_features,
    expected_q,
    quantile_mean,
    sample_taus,
)
from jaxrl57.networks.noisy import (
    NoisyDense,
    NoisyDuelingHead,
    NoisyQHead,
    factorised_gaussian_noise,
    scale_noise,
)

KEY = jax.random.PRNGKey(0)


def _effective_weights(layer, params, key, p):
    """Reads back the sampled (W [p, q], b [q]) of a NoisyDense through its output.

    Row i of (e_i W + b) minus the output at x = 0 is row i of W.
    """
    x = jnp.concatenate([jnp.eye(p), jnp.zeros((1, p))])
    y = layer.apply(params, x, rngs={"noise": key})
    return y[:p] - y[p], y[p]


# --- NoisyDense ----------------------------------------------------------------


def test_noisy_init_ranges_follow_the_paper():
    p, q = 100, 50
    params = NoisyDense(q).init(KEY, jnp.zeros(p))
    w = params["params"]
    bound = 1.0 / np.sqrt(p)
    for name, shape in (("mu_w", (p, q)), ("mu_b", (q,))):
        mu = np.asarray(w[name])
        assert mu.shape == shape
        assert np.all(np.abs(mu) <= bound)
        if mu.size > 1000:  # U[-b, b]: it fills the interval, mean 0, variance b^2 / 3.
            assert mu.max() > 0.99 * bound and mu.min() < -0.99 * bound
            assert abs(mu.mean()) < 0.05 * bound
            np.testing.assert_allclose(mu.var(), bound**2 / 3, rtol=0.1)
    np.testing.assert_allclose(w["sigma_w"], np.full((p, q), 0.5 / np.sqrt(p)), rtol=1e-6)
    np.testing.assert_allclose(w["sigma_b"], np.full((q,), 0.5 / np.sqrt(p)), rtol=1e-6)
    w2 = NoisyDense(q, sigma0=0.1).init(KEY, jnp.zeros(p))["params"]
    np.testing.assert_allclose(w2["sigma_w"], 0.1 / np.sqrt(p), rtol=1e-6)
    # No noise (nor any other collection) is stored with the params.
    assert set(params) == {"params"} and set(w) == {"mu_w", "sigma_w", "mu_b", "sigma_b"}


def test_factorised_noise_is_the_outer_product_of_scaled_gaussians():
    eps_w, eps_b = factorised_gaussian_noise(KEY, 5, 3)
    key_in, key_out = jax.random.split(KEY)
    e_in, e_out = (
        np.asarray(jax.random.normal(key_in, (5,))),
        np.asarray(jax.random.normal(key_out, (3,))),
    )
    f = lambda e: np.sign(e) * np.sqrt(np.abs(e))
    np.testing.assert_allclose(eps_w, np.outer(f(e_in), f(e_out)), rtol=1e-6)
    np.testing.assert_allclose(eps_b, f(e_out), rtol=1e-6)
    np.testing.assert_allclose(scale_noise(jnp.array([-4.0, 0.0, 9.0])), [-2.0, 0.0, 3.0])


def test_sampled_noise_inside_the_layer_is_rank_one_and_shares_the_output_factor():
    p, q = 6, 4
    layer = NoisyDense(q)
    params = layer.init(KEY, jnp.zeros(p))
    w = params["params"]
    weights, bias = _effective_weights(layer, params, jax.random.PRNGKey(7), p)
    eps_w = (weights - w["mu_w"]) / w["sigma_w"]
    eps_b = (bias - w["mu_b"]) / w["sigma_b"]
    # eps_w = outer(f(eps_in), f(eps_out)) and eps_b = f(eps_out): every row of
    # eps_w is a multiple of eps_b. Fit the row factor g and compare.
    g = eps_w @ eps_b / (eps_b @ eps_b)
    np.testing.assert_allclose(eps_w, np.outer(g, eps_b), atol=1e-4)
    assert np.linalg.matrix_rank(np.asarray(eps_w), tol=1e-3) == 1
    assert np.all(np.abs(g) > 0)


def test_noise_statistics_over_many_keys():
    # w = mu + sigma * f(e_i) f(e_j) with e ~ N(0, 1) independent. f is odd, so
    # E[w] = mu. f(x)^2 = |x| and E|N(0, 1)| = sqrt(2 / pi), so
    #   Var[w_ij] = sigma^2 E|e_i| E|e_j| = sigma^2 * 2 / pi,
    #   Var[b_j]  = sigma_b^2 E|e_j|      = sigma_b^2 * sqrt(2 / pi).
    p, q, k = 3, 4, 2000
    layer = NoisyDense(q, sigma0=0.5)
    params = layer.init(KEY, jnp.zeros(p))
    w = jax.tree.map(np.asarray, params["params"])
    keys = jax.random.split(jax.random.PRNGKey(1), k)
    weights, bias = jax.jit(jax.vmap(lambda key: _effective_weights(layer, params, key, p)))(keys)
    weights, bias = np.asarray(weights, np.float64), np.asarray(bias, np.float64)
    assert weights.shape == (k, p, q) and bias.shape == (k, q)
    # Standard error of a mean of k draws with std sigma sqrt(2/pi): allow 5 of them.
    atol = 5 * w["sigma_w"].max() * np.sqrt(2 / np.pi) / np.sqrt(k)
    np.testing.assert_allclose(weights.mean(0), w["mu_w"], atol=atol)
    np.testing.assert_allclose(bias.mean(0), w["mu_b"], atol=atol)
    # The sample variance of (f(e_i) f(e_j))^2 = |e_i||e_j| has relative std
    # sqrt(1 - 4/pi^2) / (2/pi) / sqrt(k) ~ 2.7%; allow 15%.
    np.testing.assert_allclose(weights.var(0), w["sigma_w"] ** 2 * 2 / np.pi, rtol=0.15)
    np.testing.assert_allclose(bias.var(0), w["sigma_b"] ** 2 * np.sqrt(2 / np.pi), rtol=0.15)
    # The same input factor f(e_i) scales a whole row: entries of a row are
    # uncorrelated (E f(e_j) = 0) but their magnitudes are correlated.
    noise = (weights - w["mu_w"]) / w["sigma_w"]
    mags = np.abs(noise[:, 0, :])
    assert np.corrcoef(mags[:, 0], mags[:, 1])[0, 1] > 0.2
    assert abs(np.corrcoef(noise[:, 0, 0], noise[:, 0, 1])[0, 1]) < 0.1


def test_different_keys_give_different_outputs_and_greedy_actions():
    head = NoisyQHead(num_actions=4)
    features = jax.random.normal(jax.random.PRNGKey(2), (64, 8))
    params = head.init(KEY, features)
    q1 = head.apply(params, features, rngs={"noise": jax.random.PRNGKey(10)})
    q2 = head.apply(params, features, rngs={"noise": jax.random.PRNGKey(11)})
    q1_again = head.apply(params, features, rngs={"noise": jax.random.PRNGKey(10)})
    np.testing.assert_array_equal(q1, q1_again)  # pure: the key alone sets the noise
    assert not np.allclose(q1, q2)
    assert np.any(np.argmax(q1, -1) != np.argmax(q2, -1))


def test_deterministic_uses_mean_weights_and_ignores_the_key():
    p, q = 5, 3
    x = jax.random.normal(jax.random.PRNGKey(3), (7, p))
    layer = NoisyDense(q)
    params = layer.init(KEY, x)
    w = params["params"]
    expected = x @ w["mu_w"] + w["mu_b"]
    y_no_rng = layer.apply(params, x, deterministic=True)
    np.testing.assert_allclose(y_no_rng, expected, rtol=1e-6, atol=1e-6)
    for seed in (0, 1):
        y = layer.apply(params, x, deterministic=True, rngs={"noise": jax.random.PRNGKey(seed)})
        np.testing.assert_array_equal(y, y_no_rng)
    # The attribute does the same, and the call argument overrides it.
    np.testing.assert_array_equal(NoisyDense(q, deterministic=True).apply(params, x), y_no_rng)
    y_noisy = NoisyDense(q, deterministic=True).apply(
        params, x, deterministic=False, rngs={"noise": jax.random.PRNGKey(4)}
    )
    assert not np.allclose(y_noisy, expected)
    # Noisy mode with no "noise" rng is an error, not silent mean weights.
    with pytest.raises(flax.errors.InvalidRngError):
        layer.apply(params, x)


def test_noisy_dueling_head_is_value_plus_centred_advantage():
    head = NoisyDuelingHead(num_actions=4)
    features = jax.random.normal(jax.random.PRNGKey(1), (5, 16))
    params = head.init(KEY, features)
    q = head.apply(params, features, deterministic=True)
    p = params["params"]
    value = features @ p["NoisyDense_0"]["mu_w"] + p["NoisyDense_0"]["mu_b"]
    adv = features @ p["NoisyDense_1"]["mu_w"] + p["NoisyDense_1"]["mu_b"]
    np.testing.assert_allclose(q, value + adv - adv.mean(-1, keepdims=True), rtol=1e-5, atol=1e-5)
    qn = head.apply(params, features, rngs={"noise": jax.random.PRNGKey(5)})
    assert not np.allclose(qn, q)


def test_noisy_head_plugs_into_q_network():
    net = QNetwork(MLPTorso(hidden_sizes=(16,)), NoisyQHead(3))
    obs = jnp.ones((2, 4))
    params = net.init(KEY, obs)
    q = net.apply(params, obs, rngs={"noise": jax.random.PRNGKey(1)})
    assert q.shape == (2, 3)
    evaluate = QNetwork(MLPTorso(hidden_sizes=(16,)), NoisyQHead(3, deterministic=True))
    q_eval = evaluate.apply(params, obs)  # same params tree, no rng
    assert q_eval.shape == (2, 3) and not np.allclose(q, q_eval)


# --- Distributional helpers -----------------------------------------------------


def test_expected_q_quantile_mean_and_midpoints_match_numpy():
    logits = np.asarray(jax.random.normal(KEY, (2, 3, 5)))
    atoms = np.linspace(-1.0, 1.0, 5)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(expected_q(logits, atoms), (probs * atoms).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(
        categorical_atoms(-10.0, 10.0, 51), np.linspace(-10, 10, 51), atol=1e-5
    )
    dist = np.asarray(jax.random.normal(KEY, (2, 7, 3)))  # [B, N, A]
    np.testing.assert_allclose(quantile_mean(dist), dist.mean(1), rtol=1e-5, atol=1e-6)


def test_sample_taus():
    taus = sample_taus(KEY, 8, (4,))
    assert taus.shape == (4, 8) and taus.dtype == jnp.float32
    assert np.all((taus >= 0) & (taus < 1))
    assert not np.allclose(taus, sample_taus(jax.random.PRNGKey(1), 8, (4,)))


# --- Heads: shapes -------------------------------------------------------------

D, A, B, T = 16, 3, 5, 8

HEADS = {
    "noisy_q": (NoisyQHead(A), (A,)),
    "noisy_dueling": (NoisyDuelingHead(A, hidden_sizes=(8,)), (A,)),
    "categorical": (CategoricalHead(A, num_atoms=11), (A, 11)),
    "categorical_dueling": (CategoricalHead(A, num_atoms=11, dueling=True), (A, 11)),
    "categorical_rainbow": (
        CategoricalHead(A, num_atoms=11, dueling=True, noisy=True, hidden_sizes=(8,)),
        (A, 11),
    ),
    "quantile": (QuantileHead(A, num_quantiles=7), (7, A)),
    "quantile_noisy": (QuantileHead(A, num_quantiles=7, noisy=True, hidden_sizes=(8,)), (7, A)),
}


def _noisy(module):
    return isinstance(module, NoisyQHead | NoisyDuelingHead) or getattr(module, "noisy", False)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_shapes_single_and_batch(name):
    head, out_shape = HEADS[name]
    rngs = {"noise": jax.random.PRNGKey(9)}
    single = jax.random.normal(KEY, (D,))
    params = head.init(KEY, single)
    y1 = head.apply(params, single, rngs=rngs)
    assert y1.shape == out_shape and y1.dtype == jnp.float32
    batch = jax.random.normal(KEY, (B, D))
    yb = head.apply(params, batch, rngs=rngs)
    assert yb.shape == (B, *out_shape) and yb.dtype == jnp.float32
    # Deterministic mode: the batch is the per-example map.
    det = head.apply(params, batch, deterministic=True)
    per_example = jax.vmap(lambda f: head.apply(params, f, deterministic=True))(batch)
    np.testing.assert_allclose(det, per_example, rtol=1e-5, atol=1e-5)
    if not _noisy(head):
        np.testing.assert_array_equal(det, yb)


def test_categorical_probabilities_sum_to_one():
    head = CategoricalHead(A, num_atoms=51)
    features = jax.random.normal(KEY, (B, D))
    logits = head.apply(head.init(KEY, features), features)
    assert logits.shape == (B, A, 51)
    np.testing.assert_allclose(jax.nn.softmax(logits, -1).sum(-1), np.ones((B, A)), rtol=1e-5)
    q = expected_q(logits, categorical_atoms())
    assert q.shape == (B, A) and np.all(np.abs(q) <= 10.0)


def test_categorical_dueling_removes_the_mean_advantage():
    # logits[a, i] = v[i] + adv[a, i] - mean_a' adv[a', i], so
    # mean_a logits[a, i] = v[i], and logits - mean_a logits = adv - mean_a adv.
    n = 11
    head = CategoricalHead(A, num_atoms=n, dueling=True)
    features = jax.random.normal(jax.random.PRNGKey(4), (B, D))
    params = head.init(KEY, features)
    logits = head.apply(params, features)
    p = params["params"]
    value = features @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]  # [B, N]
    adv = (features @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]).reshape(B, A, n)
    np.testing.assert_allclose(logits.mean(-2), value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        logits - logits.mean(-2, keepdims=True), adv - adv.mean(-2, keepdims=True), atol=1e-5
    )
    # Softmax is over atoms, per action.
    np.testing.assert_allclose(jax.nn.softmax(logits, -1).sum(-1), np.ones((B, A)), rtol=1e-5)


def test_quantile_head_layout_is_quantiles_by_actions_for_rlax():
    n = 7
    head = QuantileHead(A, num_quantiles=n)
    features = jax.random.normal(KEY, (B, D))
    params = head.init(KEY, features)
    dist = head.apply(params, features)
    p = params["params"]["Dense_0"]
    flat = features @ p["kernel"] + p["bias"]  # [B, N * A], index n * A + a
    np.testing.assert_allclose(dist, flat.reshape(B, n, A), rtol=1e-5, atol=1e-5)
    # One example feeds rlax.quantile_q_learning as [N, A] with no transpose.
    loss = jax.vmap(rlax.quantile_q_learning, in_axes=(0, None, 0, 0, 0, 0, 0))(
        dist,
        quantile_midpoints(n),
        jnp.zeros(B, jnp.int32),
        jnp.ones(B),
        jnp.full(B, 0.9),
        dist,
        dist,
    )
    assert loss.shape == (B,) and np.all(np.isfinite(loss))


# --- IQN ----------------------------------------------------------------------


def test_cosine_embedding_matches_numpy():
    taus = np.asarray(sample_taus(KEY, T, (B,)))
    emb = IQNEmbedding(features=D, embedding_dim=64)
    params = emb.init(KEY, taus)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params["params"]["Dense_0"])
    cos = np.cos(np.pi * np.arange(64)[None, None, :] * taus[..., None].astype(np.float64))
    expected = np.maximum(cos @ p["kernel"] + p["bias"], 0.0)
    out = emb.apply(params, taus)
    assert out.shape == (B, T, D)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cosine_features(taus, 64), cos, rtol=1e-4, atol=1e-5)
    assert p["kernel"].shape == (64, D)


def test_iqn_head_is_the_hadamard_merge_then_mlp():
    head = IQNHead(A, embedding_dim=64, hidden_sizes=(32,))
    features = jax.random.normal(KEY, (B, D))
    taus = sample_taus(jax.random.PRNGKey(1), T, (B,))
    params = head.init(KEY, features, taus)
    z = head.apply(params, features, taus)
    assert z.shape == (B, T, A) and z.dtype == jnp.float32
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), params["params"])
    cos = np.cos(np.pi * np.arange(64) * np.asarray(taus, np.float64)[..., None])
    phi = np.maximum(
        cos @ p["IQNEmbedding_0"]["Dense_0"]["kernel"] + p["IQNEmbedding_0"]["Dense_0"]["bias"], 0
    )
    h = np.asarray(features, np.float64)[:, None, :] * phi  # [B, T, D]
    h = np.maximum(h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)
    expected = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
    # Different taus, different quantile values; one tau row shared by the batch.
    other = head.apply(params, features, sample_taus(jax.random.PRNGKey(2), T, (B,)))
    assert not np.allclose(z, other)
    shared = head.apply(params, features, taus[0])
    np.testing.assert_allclose(shared[0], z[0], rtol=1e-5, atol=1e-5)
    assert shared.shape == (B, T, A)
    # Single example: [D], [T] -> [T, A]; quantile order follows tau order.
    single = head.apply(params, features[0], taus[0])
    np.testing.assert_allclose(single, z[0], rtol=1e-5, atol=1e-5)


# --- jit, vmap over params, grad ------------------------------------------------

FEATURES = jax.random.normal(jax.random.PRNGKey(3), (B, D))
TAUS = sample_taus(jax.random.PRNGKey(4), T, (B,))

MODULES = {
    "noisy_dense": (NoisyDense(4), (FEATURES,)),
    **{name: (head, (FEATURES,)) for name, (head, _) in HEADS.items()},
    "iqn_embedding": (IQNEmbedding(D), (TAUS,)),
    "iqn": (IQNHead(A, hidden_sizes=(8,)), (FEATURES, TAUS)),
    "iqn_noisy": (IQNHead(A, hidden_sizes=(8,), noisy=True), (FEATURES, TAUS)),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_jit_vmap_over_params_and_grad(name):
    module, inputs = MODULES[name]
    rngs = {"noise": jax.random.PRNGKey(5)}

    def apply(params):
        return module.apply(params, *inputs, rngs=rngs)

    params = module.init(KEY, *inputs)
    eager = apply(params)
    jitted = jax.jit(apply)
    np.testing.assert_allclose(jitted(params), eager, rtol=1e-5, atol=1e-5)

    seeds = jax.random.split(jax.random.PRNGKey(6), 3)
    stacked = jax.vmap(lambda k: module.init(k, *inputs))(seeds)
    out = jax.jit(jax.vmap(apply))(stacked)
    assert out.shape == (3, *eager.shape)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(
        out[1], jitted(jax.tree.map(lambda v: v[1], stacked)), rtol=1e-5, atol=1e-5
    )

    grads = jax.jit(jax.grad(lambda p: jnp.sum(apply(p) ** 2)))(params)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    for path, g in leaves:
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path  # every parameter, sigma included, gets a gradient


def test_sigma_gets_no_gradient_in_deterministic_mode():
    layer = NoisyDense(4)
    params = layer.init(KEY, FEATURES)
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, FEATURES, deterministic=True) ** 2))(params)
    assert np.all(grads["params"]["sigma_w"] == 0) and np.all(grads["params"]["sigma_b"] == 0)
    assert np.any(grads["params"]["mu_w"] != 0)
