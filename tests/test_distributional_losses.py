"""Tests of the distributional losses of jaxrl57.losses (C51, QR-DQN, IQN).

Each loss is checked against a direct per-example call of its rlax operator and against a
NumPy reference written from the paper; the C51 projection against Bellemare et al. 2017,
Algorithm 1, written as a loop over atoms.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxrl57 import losses

B, A, N = 5, 3, 11  # batch, actions, atoms / online quantiles
N_TARGET = 7  # target quantile samples N' (differs from N on purpose)
ATOMS = np.linspace(-5.0, 5.0, N).astype(np.float32)  # dz = 1
# gamma = 0 is a terminal transition; 1.0 and 0.5 keep Tz on a scaled support.
DISCOUNTS = np.array([0.99, 0.0, 0.5, 0.99, 1.0], np.float32)
WEIGHTS = np.array([0.1, 1.0, 2.0, 0.0, 0.5], np.float32)


# --- NumPy references ---------------------------------------------------------------------


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_project(z, p, r, gamma):
    """Bellemare et al. 2017, Algorithm 1 (uniform support), in float64, one example."""
    z = np.asarray(z, np.float64)
    v_min, v_max = z[0], z[-1]
    dz = (v_max - v_min) / (len(z) - 1)
    m = np.zeros(len(z))
    for j in range(len(z)):
        tz = np.clip(r + gamma * z[j], v_min, v_max)
        b = (tz - v_min) / dz  # b_j in [0, N - 1]
        lo, up = int(np.floor(b)), int(np.ceil(b))
        if lo == up:  # b_j is an atom: Algorithm 1's two updates would both add 0.
            m[lo] += p[j]
        else:
            m[lo] += p[j] * (up - b)
            m[up] += p[j] * (b - lo)
    return m


def _np_c51(b, double):
    """Per-example cross-entropy of C51: -sum_i m_i log p_tm1[a_tm1, i]."""
    out = np.zeros(B)
    for k in range(B):
        p_t = _np_softmax(b["logits_t_target"][k].astype(np.float64))  # [A, N]
        # Greedy action: by the online Q-values (double) or by the target mean sum_i z_i p_i.
        a_star = np.argmax(b["q_t_online"][k]) if double else np.argmax(p_t @ ATOMS)
        m = _np_project(ATOMS, p_t[a_star], b["r_t"][k], b["discount_t"][k])
        logits = b["logits_tm1"][k, b["a_tm1"][k]].astype(np.float64)
        log_p = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        out[k] = -(m * log_p).sum()
    return out


def _np_huber(x, kappa):
    ax = np.abs(x)
    return np.where(ax <= kappa, 0.5 * x**2, 0.5 * kappa**2 + kappa * (ax - kappa))


def _np_quantile(dist_tm1, taus, a_tm1, r_t, discount_t, dist_t, q_sel, kappa):
    """Per-example quantile (Huber) loss of QR-DQN eq. 10 / IQN eq. 4, WITHOUT the 1/kappa.

    loss = sum_i mean_j |tau_i - 1{delta_ij < 0}| L_kappa(delta_ij),
    delta_ij = r + gamma * dist_t[j, a*] - dist_tm1[i, a_tm1]; kappa = 0 means |delta|.
    """
    out = np.zeros(len(a_tm1))
    for k in range(len(a_tm1)):
        a_star = np.argmax(q_sel[k])
        target = r_t[k] + discount_t[k] * dist_t[k, :, a_star].astype(np.float64)
        theta = dist_tm1[k, :, a_tm1[k]].astype(np.float64)
        delta = target[None, :] - theta[:, None]
        w = np.abs(taus[k][:, None] - (delta < 0))
        rho = w * (_np_huber(delta, kappa) if kappa > 0 else np.abs(delta))
        out[k] = rho.mean(1).sum()
    return out


# --- Data ---------------------------------------------------------------------------------


def _cat_batch(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        logits_tm1=rng.normal(size=(B, A, N)).astype(np.float32) * 2.0,
        a_tm1=rng.integers(0, A, size=B).astype(np.int32),
        # Example 2 has a reward beyond the support: r + 0.5 * z > v_max for every atom.
        r_t=np.array([0.3, -1.7, 20.0, 1.25, -0.6], np.float32),
        discount_t=DISCOUNTS,
        logits_t_target=rng.normal(size=(B, A, N)).astype(np.float32) * 2.0,
        q_t_online=rng.normal(size=(B, A)).astype(np.float32),
    )


def _cat_args(b, double):
    head = (b["logits_tm1"], b["a_tm1"], b["r_t"], b["discount_t"], b["logits_t_target"])
    return (*head, b["q_t_online"], ATOMS) if double else (*head, ATOMS)


def _cat_loss(double):
    return losses.categorical_double_dqn_loss if double else losses.categorical_dqn_loss


def _rlax_cat(b, double):
    """A direct per-example call of the rlax operator, in a Python loop."""
    vals = []
    for k in range(B):
        args = (ATOMS, b["logits_tm1"][k], b["a_tm1"][k], b["r_t"][k], b["discount_t"][k])
        args = (*args, ATOMS, b["logits_t_target"][k])
        if double:
            vals.append(rlax.categorical_double_q_learning(*args, b["q_t_online"][k]))
        else:
            vals.append(rlax.categorical_q_learning(*args))
    return np.array(vals)


def _quant_batch(seed=0, n=N, n_target=N_TARGET):
    rng = np.random.default_rng(seed)
    return dict(
        dist_tm1=np.sort(rng.normal(size=(B, n, A)), axis=1).astype(np.float32) * 2.0,
        tau_tm1=rng.uniform(size=(B, n)).astype(np.float32),
        a_tm1=rng.integers(0, A, size=B).astype(np.int32),
        r_t=rng.normal(size=B).astype(np.float32),
        discount_t=DISCOUNTS,
        dist_t_target=np.sort(rng.normal(size=(B, n_target, A)), axis=1).astype(np.float32) * 2,
        q_t_online=rng.normal(size=(B, A)).astype(np.float32),
    )


def _quant_args(b):
    return b["dist_tm1"], b["a_tm1"], b["r_t"], b["discount_t"], b["dist_t_target"]


def _iqn_args(b):
    return b["dist_tm1"], b["tau_tm1"], *_quant_args(b)[1:]


def _rlax_quant(b, taus, double, kappa):
    """Direct per-example rlax.quantile_q_learning; the selector is [1, A] = q_t_online or
    the target distribution itself (rlax selects argmax_a of the mean over its first axis)."""
    vals = []
    for k in range(B):
        sel = b["q_t_online"][k][None] if double else b["dist_t_target"][k]
        vals.append(
            rlax.quantile_q_learning(
                b["dist_tm1"][k], taus[k], b["a_tm1"][k], b["r_t"][k], b["discount_t"][k],
                sel, b["dist_t_target"][k], huber_param=kappa,
            )
        )  # fmt: skip
    return np.array(vals)


def _midpoints(n):
    # QR-DQN quantile midpoints tau_i = (2i + 1) / (2N) (Dabney et al. 2018a, Lemma 2).
    return (2.0 * np.arange(n) + 1.0) / (2.0 * n)


def _target_mean_q(b):
    return b["dist_t_target"].mean(1)  # [B, A]: the mean of N' equally weighted samples


# --- C51 projection -----------------------------------------------------------------------


def test_projection_matches_algorithm1():
    rng = np.random.default_rng(0)
    # Rewards on an atom (b_j integer for gamma = 1), between atoms, and beyond the support.
    cases = [(0.0, 1.0), (1.0, 1.0), (0.37, 0.9), (-2.2, 0.99), (3.0, 0.5), (7.5, 0.8)]
    for r, gamma in cases:
        p = _np_softmax(rng.normal(size=N))
        out = losses.categorical_projection(ATOMS, p.astype(np.float32), r, gamma)
        np.testing.assert_allclose(out, _np_project(ATOMS, p, r, gamma), atol=1e-6)


def test_projection_batched_equals_per_example_and_jits():
    rng = np.random.default_rng(1)
    probs = _np_softmax(rng.normal(size=(4, 2, N))).astype(np.float32)
    r = rng.normal(size=(4, 2)).astype(np.float32) * 3.0
    gamma = rng.uniform(size=(4, 2)).astype(np.float32)
    out = jax.jit(losses.categorical_projection)(ATOMS, probs, r, gamma)
    chex.assert_shape(out, (4, 2, N))
    for i in range(4):
        for j in range(2):
            ref = _np_project(ATOMS, probs[i, j].astype(np.float64), r[i, j], gamma[i, j])
            np.testing.assert_allclose(out[i, j], ref, atol=1e-6)
    # Probability mass is conserved: the projection only moves mass between atoms.
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("r, boundary", [(100.0, -1), (-100.0, 0)])
def test_projection_reward_beyond_support(r, boundary):
    # r + gamma * z_j is outside [v_min, v_max] for every j (|r| > v_max + gamma * |v_min|),
    # so every Tz_j is clipped to the boundary atom, which gets all the mass.
    p = _np_softmax(np.random.default_rng(2).normal(size=N)).astype(np.float32)
    out = losses.categorical_projection(ATOMS, p, r, 0.9)
    expected = np.zeros(N)
    expected[boundary] = 1.0
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_projection_terminal_transition():
    p = _np_softmax(np.random.default_rng(3).normal(size=N)).astype(np.float32)
    # gamma = 0: Tz_j = r for every j, so all mass goes to r's neighbours. With z = -5..5
    # (dz = 1), r = 1.25 lies between z_6 = 1 and z_7 = 2 at b = 6.25: 0.75 to z_6, 0.25 to z_7.
    out = losses.categorical_projection(ATOMS, p, 1.25, 0.0)
    expected = np.zeros(N)
    expected[6], expected[7] = 0.75, 0.25
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # r on an atom (b = l = u): all the mass on that atom, none lost.
    out = losses.categorical_projection(ATOMS, p, -3.0, 0.0)
    np.testing.assert_allclose(out, np.eye(N)[2], atol=1e-6)


# --- C51 losses ---------------------------------------------------------------------------


@pytest.mark.parametrize("double", [False, True])
def test_c51_matches_rlax_numpy_and_weights(double):
    b = _cat_batch(0)
    loss_fn = _cat_loss(double)
    loss, per_example = jax.jit(loss_fn)(*_cat_args(b, double))
    chex.assert_shape(per_example, (B,))
    chex.assert_shape(loss, ())
    rlax_vals = _rlax_cat(b, double)
    np.testing.assert_allclose(per_example, rlax_vals, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, rlax_vals.mean(), rtol=1e-5)
    np.testing.assert_allclose(per_example, _np_c51(b, double), rtol=1e-4, atol=1e-5)
    loss_w, per_w = jax.jit(loss_fn)(*_cat_args(b, double), weights=WEIGHTS)
    # Weights scale the loss, not the per-example values (the priorities).
    np.testing.assert_allclose(per_w, per_example, rtol=1e-6)
    np.testing.assert_allclose(loss_w, (WEIGHTS * rlax_vals).mean(), rtol=1e-5)


def test_c51_double_selects_by_online_q():
    b = _cat_batch(1)
    # With the online Q-values equal to the target distribution's means, double C51 picks
    # the same action as C51, so the two losses agree.
    p_t = _np_softmax(b["logits_t_target"].astype(np.float64))
    b["q_t_online"] = (p_t @ ATOMS).astype(np.float32)
    _, plain = losses.categorical_dqn_loss(*_cat_args(b, False))
    _, double = losses.categorical_double_dqn_loss(*_cat_args(b, True))
    np.testing.assert_allclose(plain, double, rtol=1e-6)
    # Selecting the target-mean argmin instead changes the loss wherever the next state's
    # distribution matters: not for gamma = 0, nor when every Tz_j = r + gamma z_j is past
    # v_max (then all mass lands on the top atom whatever the action).
    b["q_t_online"] = -b["q_t_online"]
    _, flipped = losses.categorical_double_dqn_loss(*_cat_args(b, True))
    matters = (DISCOUNTS > 0) & (b["r_t"] + DISCOUNTS * ATOMS[0] < ATOMS[-1])
    assert matters.sum() == 3  # examples 0, 3, 4
    assert np.all(np.abs(flipped - plain)[matters] > 1e-4)
    np.testing.assert_allclose(flipped[~matters], plain[~matters], rtol=1e-6)


@pytest.mark.parametrize("double", [False, True])
def test_c51_gradients(double):
    b = _cat_batch(2)
    args = _cat_args(b, double)

    def loss_fn(logits_tm1, logits_t_target, q_t_online):
        rest = (q_t_online, ATOMS) if double else (ATOMS,)
        return _cat_loss(double)(logits_tm1, *args[1:4], logits_t_target, *rest)[0]

    g_online, g_target, g_q = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2)))(
        b["logits_tm1"], b["logits_t_target"], b["q_t_online"]
    )
    assert np.all(np.isfinite(g_online))
    np.testing.assert_array_equal(g_target, 0.0)
    np.testing.assert_array_equal(g_q, 0.0)
    # d CE / d logits_tm1[a_tm1] = (softmax(logits) - m) / B; rows of other actions are 0.
    idx = np.arange(B)
    p_t = _np_softmax(b["logits_t_target"].astype(np.float64))
    a_star = b["q_t_online"].argmax(-1) if double else (p_t @ ATOMS).argmax(-1)
    m = np.stack([_np_project(ATOMS, p_t[k, a_star[k]], b["r_t"][k], DISCOUNTS[k]) for k in idx])
    expected = np.zeros((B, A, N))
    expected[idx, b["a_tm1"]] = (_np_softmax(b["logits_tm1"][idx, b["a_tm1"]]) - m) / B
    np.testing.assert_allclose(g_online, expected, atol=1e-6)


# --- QR-DQN -------------------------------------------------------------------------------


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("kappa", [0.0, 1.0, 2.0])
def test_quantile_matches_rlax_numpy_and_weights(double, kappa):
    b = _quant_batch(0)
    q_online = b["q_t_online"] if double else None
    f = jax.jit(lambda *a, **kw: losses.quantile_dqn_loss(*a, huber_delta=kappa, **kw))
    loss, per_example = f(*_quant_args(b), q_online)
    taus = np.broadcast_to(_midpoints(N), (B, N)).astype(np.float32)
    rlax_vals = _rlax_quant(b, taus, double, kappa)
    np.testing.assert_allclose(per_example, rlax_vals, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, rlax_vals.mean(), rtol=1e-5)
    q_sel = b["q_t_online"] if double else _target_mean_q(b)
    ref = _np_quantile(*_iqn_args({**b, "tau_tm1": taus}), q_sel, kappa)
    np.testing.assert_allclose(per_example, ref, rtol=1e-4, atol=1e-5)
    loss_w, per_w = f(*_quant_args(b), q_online, weights=WEIGHTS)
    np.testing.assert_allclose(per_w, per_example, rtol=1e-6)
    np.testing.assert_allclose(loss_w, (WEIGHTS * rlax_vals).mean(), rtol=1e-5)
    # Explicit taus are used for every example; the midpoints are the default.
    loss_mid, _ = f(*_quant_args(b), q_online, taus=losses.quantile_midpoints(N))
    np.testing.assert_allclose(loss_mid, loss, rtol=1e-6)
    other = np.linspace(0.05, 0.95, N).astype(np.float32)
    _, per_other = f(*_quant_args(b), q_online, taus=other)
    ref_other = _np_quantile(
        *_iqn_args({**b, "tau_tm1": np.broadcast_to(other, (B, N))}), q_sel, kappa
    )
    np.testing.assert_allclose(per_other, ref_other, rtol=1e-4, atol=1e-5)


def test_quantile_midpoints():
    np.testing.assert_allclose(losses.quantile_midpoints(4), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(losses.quantile_midpoints(N), _midpoints(N), rtol=1e-6)


def _hand_case():
    # One example, N = N' = 2 quantiles, A = 2 actions, a_tm1 = 1.
    # Online quantiles of action 1: theta = [0, 1.5] (action 0's column [7, 7] is unused).
    # Target: action 0 has quantiles [0, 2] (mean 1), action 1 has [-5, -5] (mean -5).
    dist_tm1 = np.array([[[7.0, 0.0], [7.0, 1.5]]], np.float32)  # [B=1, N=2, A=2]
    dist_t = np.array([[[0.0, -5.0], [2.0, -5.0]]], np.float32)
    a_tm1 = np.array([1], np.int32)
    r_t = np.array([1.0], np.float32)
    discount_t = np.array([0.5], np.float32)
    return dist_tm1, a_tm1, r_t, discount_t, dist_t


@pytest.mark.parametrize(
    "kappa, expected",
    [
        # a* = argmax of target means [1, -5] = 0, so T = 1 + 0.5 * [0, 2] = [1, 2];
        # taus = [1/4, 3/4]; rho = |tau - 1{delta < 0}| L(delta), summed over i, mean over j.
        # kappa = 1: i=0 (theta 0, tau 1/4): delta [1, 2] >= 0, L = [0.5, 1.5] -> 1/4 * 1.0;
        #            i=1 (theta 1.5, tau 3/4): delta [-0.5, 0.5], w [1/4, 3/4], L = 0.125 each
        #            -> (0.03125 + 0.09375) / 2 = 0.0625.   Total 0.25 + 0.0625 = 0.3125.
        (1.0, 0.3125),
        # kappa = 0 (eq. 8, L = |delta|): i=0: 1/4 * (1 + 2)/2 = 0.375;
        #            i=1: (1/4 * 0.5 + 3/4 * 0.5) / 2 = 0.25.   Total 0.625.
        (0.0, 0.625),
        # kappa = 2: all |delta| <= 2, L = delta^2 / 2: i=0: 1/4 * (0.5 + 2)/2 = 0.3125;
        #            i=1: as for kappa = 1, 0.0625.   Total 0.375 (eq. 10's L/kappa would halve it).
        (2.0, 0.375),
    ],
)
def test_quantile_hand_computed(kappa, expected):
    loss, per_example = losses.quantile_dqn_loss(*_hand_case(), huber_delta=kappa)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(per_example, [expected], rtol=1e-6)


def test_quantile_hand_computed_double():
    # q_t_online = [0, 1] selects action 1: T = 1 + 0.5 * (-5) = -1.5 for both j.
    # kappa = 1: i=0 (theta 0, tau 1/4): delta -1.5 < 0, w 3/4, L(1.5) = 0.5 + 0.5 -> 0.75;
    #            i=1 (theta 1.5, tau 3/4): delta -3, w 1/4, L(3) = 0.5 + 2 -> 0.625.  Total 1.375.
    loss, _ = losses.quantile_dqn_loss(*_hand_case(), np.array([[0.0, 1.0]], np.float32))
    np.testing.assert_allclose(loss, 1.375, rtol=1e-6)


@pytest.mark.parametrize("tau", [0.1, 0.3, 0.75])
def test_quantile_loss_minimiser_is_tau_quantile(tau):
    # One constant estimate theta (N = 1) against n target samples T_j (r = 0, gamma = 1):
    # loss(theta) = mean_j rho_tau(T_j - theta) with kappa = 0, so
    # d loss / d theta = mean_j -(tau - 1{T_j < theta}) = F(theta) - tau,
    # F the empirical CDF: negative below the tau-quantile, positive above it.
    n = 25
    targets = np.random.default_rng(4).normal(size=n).astype(np.float32)
    zero, one = np.zeros(1, np.float32), np.ones(1, np.float32)

    def loss_fn(theta):
        dist_tm1 = jnp.reshape(theta, (1, 1, 1))
        dist_t = jnp.reshape(targets, (1, n, 1))
        a0 = np.zeros(1, np.int32)
        return losses.quantile_dqn_loss(
            dist_tm1, a0, zero, one, dist_t, taus=jnp.array([tau]), huber_delta=0.0
        )[0]

    loss_fn = jax.jit(loss_fn)
    grad_fn = jax.jit(jax.grad(loss_fn))
    srt = np.sort(targets)
    probes = np.concatenate([(srt[:-1] + srt[1:]) / 2, [srt[0] - 1.0, srt[-1] + 1.0]])
    for theta in probes:  # between samples, where the loss is differentiable
        cdf = np.mean(targets < theta)
        np.testing.assert_allclose(grad_fn(jnp.float32(theta)), cdf - tau, atol=1e-6)
    # The loss is piecewise linear with kinks at the samples, so its minimum is at a sample;
    # that sample is a tau-quantile: P(T < theta*) <= tau <= P(T <= theta*).
    values = np.array([loss_fn(jnp.float32(t)) for t in targets])
    theta_star = targets[np.argmin(values)]
    assert np.mean(targets < theta_star) <= tau <= np.mean(targets <= theta_star)
    np.testing.assert_allclose(theta_star, np.quantile(targets, tau, method="inverted_cdf"))


@pytest.mark.parametrize("double", [False, True])
def test_quantile_gradients(double):
    b = _quant_batch(1)

    def loss_fn(dist_tm1, dist_t_target, q_t_online):
        args = (dist_tm1, *_quant_args(b)[1:4], dist_t_target)
        return losses.quantile_dqn_loss(*args, q_t_online if double else None)[0]

    g_online, g_target, g_q = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2)))(
        b["dist_tm1"], b["dist_t_target"], b["q_t_online"]
    )
    assert np.all(np.isfinite(g_online))
    assert np.any(g_online != 0.0)
    # Only the taken action's quantiles get a gradient.
    mask = np.zeros((B, N, A), bool)
    mask[np.arange(B), :, b["a_tm1"]] = True
    np.testing.assert_array_equal(np.asarray(g_online)[~mask], 0.0)
    np.testing.assert_array_equal(g_target, 0.0)
    np.testing.assert_array_equal(g_q, 0.0)


# --- IQN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("double", [False, True])
def test_iqn_matches_rlax_numpy_and_weights(double):
    b = _quant_batch(2)
    q_online = b["q_t_online"] if double else None
    loss, per_example = jax.jit(losses.iqn_loss)(*_iqn_args(b), q_online)
    rlax_vals = _rlax_quant(b, b["tau_tm1"], double, 1.0)
    np.testing.assert_allclose(per_example, rlax_vals, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, rlax_vals.mean(), rtol=1e-5)
    q_sel = b["q_t_online"] if double else _target_mean_q(b)
    ref = _np_quantile(*_iqn_args(b), q_sel, 1.0)
    np.testing.assert_allclose(per_example, ref, rtol=1e-4, atol=1e-5)
    loss_w, _ = jax.jit(losses.iqn_loss)(*_iqn_args(b), q_online, weights=WEIGHTS)
    np.testing.assert_allclose(loss_w, (WEIGHTS * rlax_vals).mean(), rtol=1e-5)


def test_iqn_sampled_taus_and_midpoints():
    b = _quant_batch(3)
    mid = np.broadcast_to(_midpoints(N), (B, N)).astype(np.float32)
    loss_mid, per_mid = losses.iqn_loss(b["dist_tm1"], mid, *_quant_args(b)[1:])
    loss_qr, per_qr = losses.quantile_dqn_loss(*_quant_args(b))
    np.testing.assert_allclose(loss_mid, loss_qr, rtol=1e-6)
    np.testing.assert_allclose(per_mid, per_qr, rtol=1e-6)
    # Sampled taus weight the same errors differently, so every example's loss changes.
    _, per_sampled = losses.iqn_loss(*_iqn_args(b))
    assert np.all(np.abs(per_sampled - per_mid) > 1e-4)
    # Taus [N] shared by the batch equal the same taus broadcast to [B, N].
    shared = b["tau_tm1"][0]
    _, per_shared = jax.jit(losses.iqn_loss)(b["dist_tm1"], shared, *_quant_args(b)[1:])
    _, per_bcast = losses.iqn_loss(
        b["dist_tm1"], np.broadcast_to(shared, (B, N)), *_quant_args(b)[1:]
    )
    np.testing.assert_allclose(per_shared, per_bcast, rtol=1e-6)
    # Different samples per example: example k only sees its own taus.
    taus2 = b["tau_tm1"].copy()
    taus2[0] = 1.0 - taus2[0]
    _, per2 = losses.iqn_loss(b["dist_tm1"], taus2, *_quant_args(b)[1:])
    np.testing.assert_allclose(per2[1:], per_sampled[1:], rtol=1e-6)
    assert abs(per2[0] - per_sampled[0]) > 1e-4


def test_iqn_gradients():
    b = _quant_batch(4)

    def loss_fn(dist_tm1, tau_tm1, dist_t_target, q_t_online):
        args = (dist_tm1, tau_tm1, *_quant_args(b)[1:4], dist_t_target, q_t_online)
        return losses.iqn_loss(*args)[0]

    g = jax.jit(jax.grad(loss_fn, argnums=(0, 1, 2, 3)))(
        b["dist_tm1"], b["tau_tm1"], b["dist_t_target"], b["q_t_online"]
    )
    assert np.all(np.isfinite(g[0])) and np.any(g[0] != 0.0)
    for g_not_learned in g[1:]:  # taus are samples, not parameters; targets are fixed
        np.testing.assert_array_equal(g_not_learned, 0.0)


# --- Sweeps and shapes --------------------------------------------------------------------


def _stack(batches, keys):
    return [np.stack([b[k] for b in batches]) for k in keys]


@pytest.mark.parametrize(
    "name, fn, keys, make",
    [
        ("c51", losses.categorical_dqn_loss, ("logits_tm1", "a_tm1", "r_t", "discount_t",
                                               "logits_t_target"), _cat_batch),
        ("c51_double", losses.categorical_double_dqn_loss,
         ("logits_tm1", "a_tm1", "r_t", "discount_t", "logits_t_target", "q_t_online"),
         _cat_batch),
        ("qr", losses.quantile_dqn_loss, ("dist_tm1", "a_tm1", "r_t", "discount_t",
                                           "dist_t_target", "q_t_online"), _quant_batch),
        ("iqn", losses.iqn_loss, ("dist_tm1", "tau_tm1", "a_tm1", "r_t", "discount_t",
                                  "dist_t_target"), _quant_batch),
    ],
)  # fmt: skip
def test_vmap_over_sweep_axis(name, fn, keys, make):
    # A leading sweep axis K over whole batches, as in jit(vmap(train)).
    batches = [make(s) for s in range(3)]
    stacked = _stack(batches, keys)
    if name.startswith("c51"):
        f = jax.jit(jax.vmap(lambda *a: fn(*a, ATOMS)))
    else:
        f = jax.jit(jax.vmap(fn))
    loss, per_example = f(*stacked)
    chex.assert_shape(loss, (3,))
    chex.assert_shape(per_example, (3, B))
    for k, b in enumerate(batches):
        args = [b[key] for key in keys] + ([ATOMS] if name.startswith("c51") else [])
        ref_loss, ref_per = fn(*args)
        np.testing.assert_allclose(loss[k], ref_loss, rtol=1e-5)
        np.testing.assert_allclose(per_example[k], ref_per, rtol=1e-5, atol=1e-6)


def test_rank_asserts():
    b = _cat_batch()
    with pytest.raises(AssertionError):  # logits in [B, N] instead of [B, A, N]
        losses.categorical_dqn_loss(
            b["logits_tm1"][:, 0], b["a_tm1"], b["r_t"], b["discount_t"],
            b["logits_t_target"][:, 0], ATOMS,
        )  # fmt: skip
    with pytest.raises(AssertionError):  # support of the wrong size
        losses.categorical_dqn_loss(*_cat_args(b, False)[:-1], ATOMS[:-1])
    q = _quant_batch()
    with pytest.raises(AssertionError):  # IQN taus are [B, N] or [N], not [B, N - 1]
        losses.iqn_loss(q["dist_tm1"], q["tau_tm1"][:, 1:], *_quant_args(q)[1:])
    with pytest.raises(AssertionError):  # q_t_online must be [B, A]
        losses.quantile_dqn_loss(*_quant_args(q), q["q_t_online"][:, :-1])
