"""Value-learning losses and related operators, as pure functions on arrays.

Per-example functions follow rlax naming by time index (``q_tm1``, ``a_tm1``, ``r_t``,
``discount_t``, ``q_t``); the public batched losses are one ``jax.vmap`` of an rlax
per-example operator followed by a reduction. Everything works under ``jit``, ``vmap``
and ``grad``; hyperparameters such as ``huber_delta``, ``eta``, ``beta`` may be traced.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import rlax

Array = chex.Array
Numeric = chex.Numeric

__all__ = [
    "dqn_loss",
    "double_dqn_loss",
    "invert_gradients",
    "r2d2_priority",
    "r2d2_loss",
    "retrace_loss",
    "agent57_q",
    "categorical_projection",
    "categorical_dqn_loss",
    "categorical_double_dqn_loss",
    "categorical_kl_priority",
    "quantile_midpoints",
    "quantile_dqn_loss",
    "iqn_loss",
]


def _weighted_huber_mean(td_error: Array, huber_delta: Numeric, weights: Array | None) -> Array:
    """mean_b weights_b * huber(td_b, delta); weights None means ones."""
    per_example = rlax.huber_loss(td_error, huber_delta)
    if weights is not None:
        chex.assert_equal_shape([weights, td_error])
        per_example = weights * per_example
    return jnp.mean(per_example)


def dqn_loss(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t_target: Array,
    *,
    huber_delta: Numeric = 1.0,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched Q-learning loss of DQN (Mnih et al. 2015, Nature, loss of Methods).

    Per example (``rlax.q_learning``, Watkins 1989):
        td = r_t + discount_t * max_a q_t_target[a] - q_tm1[a_tm1]
    with no gradient through the bootstrap target ``r_t + discount_t * max_a q_t_target``.
    The loss is ``mean_b weights_b * huber(td_b, huber_delta)`` (the Nature paper's
    error clipping to [-1, 1] is the gradient of the Huber loss with delta 1).

    Args:
      q_tm1: [B, A] online Q-values at s_{t-1}.
      a_tm1: [B] int actions taken at s_{t-1}.
      r_t: [B] rewards.
      discount_t: [B] discounts (gamma times not-terminal).
      q_t_target: [B, A] target-network Q-values at s_t.
      huber_delta: Huber threshold (may be traced).
      weights: optional [B] importance weights (prioritised replay); None means ones.

    Returns:
      (loss scalar, td_error [B]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target], [2, 1, 1, 1, 2])
    td_error = jax.vmap(rlax.q_learning)(q_tm1, a_tm1, r_t, discount_t, q_t_target)
    chex.assert_shape(td_error, a_tm1.shape)
    return _weighted_huber_mean(td_error, huber_delta, weights), td_error


def double_dqn_loss(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t_target: Array,
    q_t_online: Array,
    *,
    huber_delta: Numeric = 1.0,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched Double DQN loss (van Hasselt, Guez & Silver 2016, Sec. 4).

    Per example (``rlax.double_q_learning``):
        td = r_t + discount_t * q_t_target[argmax_a q_t_online[a]] - q_tm1[a_tm1]
    the next action is selected by the online network and evaluated by the target
    network; no gradient flows through the target. Loss as in :func:`dqn_loss`.

    Args:
      q_tm1: [B, A]; a_tm1: [B] int; r_t, discount_t: [B];
      q_t_target: [B, A] values used to evaluate; q_t_online: [B, A] values used to select;
      huber_delta: Huber threshold; weights: optional [B].

    Returns:
      (loss scalar, td_error [B]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online], [2, 1, 1, 1, 2, 2])
    td_error = jax.vmap(rlax.double_q_learning)(
        q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online
    )
    chex.assert_shape(td_error, a_tm1.shape)
    return _weighted_huber_mean(td_error, huber_delta, weights), td_error


def invert_gradients(dqda: Array, action: Array, low: Numeric, high: Numeric) -> Array:
    """Inverting gradients for bounded continuous actions (Hausknecht & Stone 2016, Sec. 4.3.3).

        dqda' = dqda * (high - action) / (high - low)   if dqda > 0
        dqda' = dqda * (action - low) / (high - low)    otherwise

    The gradient is scaled down as the action approaches the bound it points to, and
    reversed once the action is past it. Apply it to the critic's action gradient
    before the deterministic policy gradient step (DDPG). ``low`` and ``high``
    broadcast against ``action`` (per-dimension bounds of shape [D] are fine).

    Args:
      dqda: [..., D] gradient of Q with respect to the action.
      action: [..., D] the action at which it was taken.
      low, high: action bounds, broadcastable to ``action``.

    Returns:
      the rescaled gradient, shape of ``dqda``.
    """
    chex.assert_equal_shape([dqda, action])
    width = high - low
    up = (high - action) / width
    down = (action - low) / width
    return jnp.where(dqda > 0, dqda * up, dqda * down)


def r2d2_priority(abs_td: Array, eta: Numeric = 0.9, axis: int = 0) -> Array:
    """Sequence priority of R2D2 (Kapturowski et al. 2019, Sec. 2.3).

        p = eta * max_t |delta_t| + (1 - eta) * mean_t |delta_t|

    taken along ``axis`` (the time axis; 0 for [T] or [T, B] inputs).

    Args:
      abs_td: absolute TD errors, e.g. [T] or [T, B].
      eta: mixing coefficient (0.9 in the paper; may be traced).
      axis: the time axis.

    Returns:
      priorities with ``axis`` reduced.
    """
    return eta * jnp.max(abs_td, axis=axis) + (1.0 - eta) * jnp.mean(abs_td, axis=axis)


def r2d2_loss(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t_target: Array,
    q_t_online: Array,
    *,
    n_step: int = 5,
    eta: Numeric = 0.9,
    mask_t: Array | None = None,
    weights: Array | None = None,
    rescale_eps: float = 1e-3,
) -> tuple[Array, Array, Array]:
    """Batched R2D2 sequence loss (Kapturowski et al. 2019, sec. 2.3 and 3).

    Per sequence of T steps after burn-in (``rlax.transformed_n_step_q_learning``):
        a*_t = argmax_a q_t_online[t]                          (double Q)
        y_t = h( sum_{k<n} gamma^k r_{t+k} + gamma^n h^-1(q_t_target[t+n-1, a*]) )
        td_t = y_t - q_tm1[t, a_tm1[t]]
    with ``h(x) = sign(x)(sqrt(|x|+1) - 1) + eps x`` the value rescaling of
    Pohlen et al. 2018 (``rlax.SIGNED_HYPERBOLIC_PAIR``), no gradient through
    ``y_t``, and the n-step sum truncated at the end of the sequence (rlax
    bootstraps from the last available value) and by ``discount_t = 0`` at
    episode ends. The loss is ``mean_b weights_b * 0.5 * sum_t mask_t td_t^2``
    and each sequence's replay priority ``eta * max_t |td_t| + (1 - eta) *
    mean_t |td_t|`` over the masked steps (`r2d2_priority`).

    Args:
      q_tm1: [B, T, A] online Q-values at steps 0..T-1.
      a_tm1: [B, T] int actions taken at those steps.
      r_t, discount_t: [B, T] reward and discount following each action.
      q_t_target: [B, T, A] target-network Q-values at steps 1..T.
      q_t_online: [B, T, A] online Q-values at steps 1..T (select the bootstrap action).
      n_step: n of the n-step return (static; paper: 5).
      eta: priority mixing coefficient (paper: 0.9; may be traced).
      mask_t: optional [B, T], 1 where a step's TD error counts.
      weights: optional [B] importance weights.
      rescale_eps: the eps of ``h`` (paper: 1e-3).

    Returns:
      (loss, td [B, T] (zero where masked), priority [B]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online],
                     [3, 2, 2, 2, 3, 3])
    tx = rlax.TxPair(functools.partial(rlax.signed_hyperbolic, eps=rescale_eps),
                     functools.partial(rlax.signed_parabolic, eps=rescale_eps))
    a_t = jnp.argmax(q_t_online, axis=-1).astype(a_tm1.dtype)
    td = jax.vmap(functools.partial(rlax.transformed_n_step_q_learning, n=n_step, tx_pair=tx))(
        q_tm1, a_tm1, q_t_target, a_t, r_t, discount_t)
    return _sequence_loss(td, mask_t, weights, eta)


def _sequence_loss(td: Array, mask_t: Array | None, weights: Array | None, eta: Numeric
                   ) -> tuple[Array, Array, Array]:
    """(mean_b weights_b * 0.5 * sum_t mask_t td_t^2, masked td [B, T], the
    R2D2 priority of each sequence over its masked steps)."""
    mask = jnp.ones_like(td) if mask_t is None else mask_t.astype(td.dtype)
    chex.assert_equal_shape([mask, td])
    td = td * mask
    per_sequence = 0.5 * jnp.sum(jnp.square(td), axis=-1)
    abs_td = jnp.abs(td)
    mean_abs = jnp.sum(abs_td, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    priority = eta * jnp.max(abs_td, axis=-1) + (1.0 - eta) * mean_abs
    return _weighted_mean(per_sequence, weights), td, jax.lax.stop_gradient(priority)


def retrace_loss(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t_target: Array,
    a_t: Array,
    pi_t: Array,
    mu_t: Array,
    *,
    lambda_: Numeric = 0.95,
    eta: Numeric = 0.9,
    mask_t: Array | None = None,
    weights: Array | None = None,
    rescale_eps: float = 1e-3,
    mu_eps: float = 1e-8,
) -> tuple[Array, Array, Array]:
    """Batched transformed Retrace loss of NGU and Agent57 (Badia et al. 2020a and
    2020b, whose hyperparameter tables give lambda 0.95), one value head at a time.

    Retrace (Munos et al. 2016) in the h-rescaled space (Kapturowski et al.
    2019; ``rlax.transformed_retrace``), per sequence of T steps, with
    Q = h^-1(q_t_target) and c_t = lambda * min(1, pi_t(a_t) / mu_t):
        G_{T-1} = r_{T-1} + gamma_{T-1} sum_a pi_{T-1}(a) Q_{T-1}(a)
        G_t     = r_t + gamma_t (sum_a pi_t(a) Q_t(a) - c_t Q_t(a_t) + c_t G_{t+1})
        td_t    = h(G_t) - q_tm1[t, a_tm1[t]]
    no gradient through the target. Loss and priorities are reduced as
    `r2d2_loss`'s: ``mean_b weights_b * 0.5 * sum_t mask_t td_t^2``, priority
    ``eta * max_t |td_t| + (1 - eta) * mean_t |td_t|``.

    Agent57 trains its extrinsic and intrinsic heads each with this loss on its
    own reward, with the same ``pi_t`` (greedy in the mixed Q of `agent57_q`:
    ``exploration.epsilon_greedy_probs(q, 0)``) and ``mu_t`` (the probability
    of ``a_t`` under the actor's epsilon-greedy policy).

    Args:
      q_tm1: [B, T, A] online values (h-space) at steps 0..T-1.
      a_tm1: [B, T] actions taken at those steps.
      r_t, discount_t: [B, T] reward and discount following each action.
      q_t_target: [B, T, A] target-network values (h-space) at steps 1..T.
      a_t: [B, T] actions taken at steps 1..T.
      pi_t: [B, T, A] target-policy probabilities at steps 1..T.
      mu_t: [B, T] behaviour probability of ``a_t``.
      lambda_: trace coefficient, a scalar or [B, T] (may be traced); like
        ``a_t``, ``pi_t`` and ``mu_t``, ``lambda_[:, i]`` belongs to x_{i+1}, the
        state after the action of ``q_tm1[:, i]``. 0 there cuts the trace (c = 0):
        the return of step i bootstraps on E_pi Q(x_{i+1}) alone, which an
        episode's final observation needs.
      eta: priority mixing coefficient (may be traced).
      mask_t: optional [B, T], 1 where a step's TD error counts.
      weights: optional [B] importance weights.
      rescale_eps: the eps of ``h``.
      mu_eps: added to ``mu_t`` before dividing (rlax's ``eps``).

    Returns:
      (loss, td [B, T] (zero where masked), priority [B]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target, a_t, pi_t, mu_t],
                     [3, 2, 2, 2, 3, 2, 3, 2])
    tx = rlax.TxPair(functools.partial(rlax.signed_hyperbolic, eps=rescale_eps),
                     functools.partial(rlax.signed_parabolic, eps=rescale_eps))

    def per_sequence(q_tm1, q_t, a_tm1, a_t, r_t, discount_t, pi_t, mu_t, lambda_t):
        return rlax.transformed_retrace(q_tm1, q_t, a_tm1, a_t, r_t, discount_t, pi_t, mu_t,
                                        lambda_t, eps=mu_eps, tx_pair=tx)

    lambda_t = jnp.broadcast_to(jnp.asarray(lambda_, jnp.float32), r_t.shape)
    td = jax.vmap(per_sequence)(q_tm1, q_t_target, a_tm1, a_t, r_t, discount_t, pi_t, mu_t,
                                lambda_t)
    return _sequence_loss(td, mask_t, weights, eta)


def agent57_q(q_extrinsic: Array, q_intrinsic: Array, beta: Numeric, eps: float = 1e-3) -> Array:
    """Combined state-action value of Agent57 (Badia et al. 2020b, Sec. 4).

        Q(x, a; beta) = h(h^-1(Q_e(x, a)) + beta * h^-1(Q_i(x, a)))
        h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x

    with ``h`` the invertible value rescaling of Pohlen et al. 2018
    (``rlax.signed_hyperbolic``) and ``h^-1`` its inverse (``rlax.signed_parabolic``).
    The two heads are learned in the ``h``-transformed space; combining them in the
    untransformed space keeps the sum consistent. ``beta`` broadcasts against the
    Q-values with NumPy rules: per example it is a scalar; for a batch [B, A] pass
    ``beta[:, None]`` or ``vmap`` over the batch.

    Args:
      q_extrinsic: [..., A] extrinsic-head values (in h-space).
      q_intrinsic: [..., A] intrinsic-head values (in h-space), same shape.
      beta: intrinsic-reward weight (may be traced).
      eps: the ``eps`` of ``h`` (1e-3 in R2D2 / Agent57).

    Returns:
      combined values, shape of ``q_extrinsic``.
    """
    chex.assert_equal_shape([q_extrinsic, q_intrinsic])
    raw = rlax.signed_parabolic(q_extrinsic, eps) + beta * rlax.signed_parabolic(q_intrinsic, eps)
    return rlax.signed_hyperbolic(raw, eps)


# --- Distributional Q-learning ----------------------------------------------------------
#
# Layouts follow the per-example rlax operators: categorical logits are [B, A, N] (action
# first, ``rlax.categorical_q_learning`` takes [A, N]); quantile values are [B, N, A]
# (quantile first, ``rlax.quantile_q_learning`` takes [N, A]).


def _weighted_mean(per_example: Array, weights: Array | None) -> Array:
    """mean_b weights_b * per_example_b; weights None means ones."""
    if weights is not None:
        chex.assert_equal_shape([weights, per_example])
        per_example = weights * per_example
    return jnp.mean(per_example)


def categorical_projection(atoms: Array, probs: Array, r_t: Array, discount_t: Array) -> Array:
    """Projected distributional Bellman target of C51 (Bellemare et al. 2017, Algorithm 1).

    The target atoms ``Tz_j = r_t + discount_t * atoms_j`` carry ``probs_j``; each is
    clipped to ``[atoms[0], atoms[-1]]`` and its mass split between its two neighbouring
    atoms in proportion to closeness (all of it to an atom it lands on exactly):
        m_i = sum_j clip(1 - |clip(Tz_j) - z_i| / dz_i, 0, 1) probs_j
    which is Algorithm 1's ``m_l += p_j (u - b_j)``, ``m_u += p_j (b_j - l)`` on a uniform
    support, and the Cramér (L2-of-CDF) projection on any sorted support
    (``rlax.categorical_l2_project``, Rowland et al. 2018). Mass is conserved.

    Args:
      atoms: [N] the fixed support z, sorted ascending (uniform for Algorithm 1).
      probs: [..., N] probabilities on ``atoms`` at s_t (of the greedy action).
      r_t: [...] rewards.
      discount_t: [...] discounts (gamma times not-terminal).

    Returns:
      [..., N] the projected probabilities on ``atoms``.
    """
    chex.assert_rank(atoms, 1)
    chex.assert_axis_dimension(probs, -1, atoms.shape[0])

    def project(p, r, d):
        return rlax.categorical_l2_project(r + d * atoms, p, atoms)

    return jnp.vectorize(project, signature="(n),(),()->(n)")(probs, r_t, discount_t)


def categorical_dqn_loss(
    logits_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    logits_t_target: Array,
    atoms: Array,
    *,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched C51 loss (Bellemare, Dabney & Munos 2017, Algorithm 1).

    Per example (``rlax.categorical_q_learning``), with p = softmax over atoms:
        a* = argmax_a sum_i z_i p_t_target[a, i]             (greedy w.r.t. the target mean)
        m  = categorical_projection(z, p_t_target[a*], r_t, discount_t)
        loss_b = -sum_i m_i log p_tm1[a_tm1, i]              (cross-entropy)
    with no gradient through ``m``. The loss is ``mean_b weights_b * loss_b``; the
    per-example cross-entropy is the usual replay priority (Rainbow uses it too).

    Args:
      logits_tm1: [B, A, N] online logits at s_{t-1}.
      a_tm1: [B] int actions taken.
      r_t, discount_t: [B].
      logits_t_target: [B, A, N] target-network logits at s_t.
      atoms: [N] the fixed support (z_tm1 = z_t = atoms), e.g. linspace(-10, 10, 51).
      weights: optional [B] importance weights; None means ones.

    Returns:
      (loss scalar, per-example cross-entropy [B]).
    """
    chex.assert_rank(
        [logits_tm1, a_tm1, r_t, discount_t, logits_t_target, atoms], [3, 1, 1, 1, 3, 1]
    )
    chex.assert_equal_shape([logits_tm1, logits_t_target])
    chex.assert_axis_dimension(logits_tm1, 2, atoms.shape[0])
    per_example = jax.vmap(rlax.categorical_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0))(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t_target
    )
    chex.assert_shape(per_example, a_tm1.shape)
    return _weighted_mean(per_example, weights), per_example


def categorical_double_dqn_loss(
    logits_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    logits_t_target: Array,
    q_t_online: Array,
    atoms: Array,
    *,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched C51 loss with double-Q action selection, as in Rainbow.

    C51 (Bellemare et al. 2017, Algorithm 1) with the next action chosen by the online
    network and evaluated by the target network (Hessel et al. 2018, Sec. 3,
    "Double Q-learning"; ``rlax.categorical_double_q_learning``):
        a* = argmax_a q_t_online[a]
        m  = categorical_projection(z, softmax(logits_t_target[a*]), r_t, discount_t)
        loss_b = -sum_i m_i log softmax(logits_tm1[a_tm1])_i
    No gradient flows into ``m`` (nor, through the argmax, into ``q_t_online``).

    Args:
      logits_tm1: [B, A, N] online logits at s_{t-1}.
      a_tm1: [B] int actions taken.
      r_t, discount_t: [B].
      logits_t_target: [B, A, N] target-network logits at s_t.
      q_t_online: [B, A] online Q-values at s_t (e.g. the mean of the online distribution).
      atoms: [N] the fixed support.
      weights: optional [B] importance weights; None means ones.

    Returns:
      (loss scalar, per-example cross-entropy [B]).
    """
    chex.assert_rank(
        [logits_tm1, a_tm1, r_t, discount_t, logits_t_target, q_t_online, atoms],
        [3, 1, 1, 1, 3, 2, 1],
    )
    chex.assert_equal_shape([logits_tm1, logits_t_target])
    chex.assert_equal_shape_prefix([logits_t_target, q_t_online], 2)
    chex.assert_axis_dimension(logits_tm1, 2, atoms.shape[0])
    per_example = jax.vmap(
        rlax.categorical_double_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0, 0)
    )(atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t_target, q_t_online)
    chex.assert_shape(per_example, a_tm1.shape)
    return _weighted_mean(per_example, weights), per_example


def categorical_kl_priority(
    cross_entropy: Array,
    r_t: Array,
    discount_t: Array,
    logits_t_target: Array,
    atoms: Array,
    q_t_selector: Array | None = None,
) -> Array:
    """Replay priority of Rainbow: the KL loss of C51 (Hessel et al. 2018, sec. 3, eq. 3).

    Rainbow prioritises transitions by the KL divergence that the distributional
    loss minimises, ``KL(m || p_tm1[a_tm1])``, with ``m`` the projected target of
    :func:`categorical_dqn_loss` / :func:`categorical_double_dqn_loss`. The loss
    itself is the cross-entropy, which differs from the KL by the target's entropy:
        priority_b = cross_entropy_b - H(m_b),    H(m) = -sum_i m_i log m_i
    ``H(m)`` carries no gradient to the online network, so the losses' gradients are
    those of the KL. With the cross-entropy alone, a transition whose target is
    spread over many atoms would keep a high priority however well it is learned.
    ``m`` is rebuilt as rlax builds it (greedy next action of ``q_t_selector``, or of
    the target mean when None). Clipped at 0 against rounding; no gradient.

    Args:
      cross_entropy: [B] the per-example loss of the categorical loss.
      r_t, discount_t: [B].
      logits_t_target: [B, A, N] target-network logits at s_t.
      atoms: [N] the fixed support.
      q_t_selector: optional [B, A] online values selecting the next action (double Q).

    Returns:
      [B] the KL priorities.
    """
    chex.assert_rank([cross_entropy, r_t, discount_t, logits_t_target, atoms], [1, 1, 1, 3, 1])
    probs_t = jax.nn.softmax(logits_t_target, axis=-1)
    selector = jnp.sum(probs_t * atoms, axis=-1) if q_t_selector is None else q_t_selector
    chex.assert_equal_shape([selector, probs_t[..., 0]])
    a_t = jnp.argmax(selector, axis=-1)
    p_target = jnp.take_along_axis(probs_t, a_t[:, None, None], axis=1)[:, 0]
    target = categorical_projection(atoms, p_target, r_t, discount_t)
    entropy = -jnp.sum(jax.scipy.special.xlogy(target, target), axis=-1)
    return jax.lax.stop_gradient(jnp.maximum(cross_entropy - entropy, 0.0))


def quantile_midpoints(num_quantiles: int, dtype=jnp.float32) -> Array:
    """Quantile midpoints of QR-DQN (Dabney et al. 2018a, Lemma 2): tau_i = (2i + 1) / (2N).

    Returns:
      [N] the midpoints of the N equal-probability bins of [0, 1].
    """
    return (2.0 * jnp.arange(num_quantiles, dtype=dtype) + 1.0) / (2.0 * num_quantiles)


def _quantile_selector(dist_t_target: Array, q_t_online: Array | None) -> Array:
    """[B, K, A] selector for rlax.quantile_q_learning (it takes argmax_a mean_k sel[k, a])."""
    if q_t_online is None:
        return dist_t_target
    chex.assert_rank(q_t_online, 2)
    chex.assert_equal_shape([q_t_online, dist_t_target[:, 0, :]])
    return q_t_online[:, None, :]  # a one-sample "distribution" whose mean is q_t_online


def _quantile_per_example(
    dist_tm1, tau_tm1, tau_in_axis, a_tm1, r_t, discount_t, dist_t_target, q_t_online, delta
):
    selector = _quantile_selector(dist_t_target, q_t_online)
    op = functools.partial(rlax.quantile_q_learning, huber_param=delta)
    return jax.vmap(op, in_axes=(0, tau_in_axis, 0, 0, 0, 0, 0))(
        dist_tm1, jax.lax.stop_gradient(tau_tm1), a_tm1, r_t, discount_t, selector, dist_t_target
    )


def quantile_dqn_loss(
    dist_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    dist_t_target: Array,
    q_t_online: Array | None = None,
    *,
    taus: Array | None = None,
    huber_delta: float = 1.0,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched QR-DQN loss (Dabney, Rowland, Bellemare & Munos 2018a, eq. 10 and Algorithm 1).

    Per example (``rlax.quantile_q_learning``), with theta the quantile values:
        a* = argmax_a q_t_online[a]   (or argmax_a mean_j dist_t_target[j, a] if None)
        T_j = r_t + discount_t * dist_t_target[j, a*]          (no gradient)
        delta_ij = T_j - dist_tm1[i, a_tm1]
        loss_b = sum_i mean_j |tau_i - 1{delta_ij < 0}| L_kappa(delta_ij)
    with ``L_kappa`` the Huber loss of threshold ``kappa = huber_delta`` and ``kappa = 0``
    the plain quantile loss ``rho_tau(u) = u (tau - 1{u < 0})`` (eq. 8). Note that rlax,
    like ``dqn_loss`` here, does NOT divide ``L_kappa`` by ``kappa`` as eq. 10 does: the
    two agree for the default ``kappa = 1``; otherwise this is ``kappa`` times eq. 10.

    Args:
      dist_tm1: [B, N, A] online quantile values at s_{t-1} (quantile axis first, as rlax).
      a_tm1: [B] int actions taken.
      r_t, discount_t: [B].
      dist_t_target: [B, N', A] target-network quantile values at s_t (N' may differ).
      q_t_online: optional [B, A] online Q-values at s_t selecting the next action
        (double Q); None selects greedily w.r.t. the mean of ``dist_t_target``.
      taus: optional [N] quantile fractions of ``dist_tm1``; None means the midpoints
        ``(2i + 1) / (2N)`` (:func:`quantile_midpoints`).
      huber_delta: kappa; a static Python float (rlax branches on ``kappa > 0`` in Python,
        so it cannot be traced).
      weights: optional [B] importance weights; None means ones.

    Returns:
      (loss scalar, per-example quantile loss [B]).
    """
    chex.assert_rank([dist_tm1, a_tm1, r_t, discount_t, dist_t_target], [3, 1, 1, 1, 3])
    chex.assert_equal_shape([dist_tm1[:, 0, :], dist_t_target[:, 0, :]])
    if taus is None:
        taus = quantile_midpoints(dist_tm1.shape[1], dist_tm1.dtype)
    chex.assert_shape(taus, (dist_tm1.shape[1],))
    per_example = _quantile_per_example(
        dist_tm1, taus, None, a_tm1, r_t, discount_t, dist_t_target, q_t_online, huber_delta
    )
    chex.assert_shape(per_example, a_tm1.shape)
    return _weighted_mean(per_example, weights), per_example


def iqn_loss(
    dist_tm1: Array,
    tau_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    dist_t_target: Array,
    q_t_online: Array | None = None,
    *,
    huber_delta: float = 1.0,
    weights: Array | None = None,
) -> tuple[Array, Array]:
    """Batched IQN loss (Dabney, Ostrovski, Silver & Munos 2018b, eq. 3-4).

    The quantile regression operator of :func:`quantile_dqn_loss`, with the online
    quantile fractions sampled per example, ``tau_i ~ U[0, 1]``, and the target values
    ``dist_t_target`` evaluated by the target network at N' independent samples tau'_j:
        delta_ij = r_t + discount_t * Z_{tau'_j}(s_t, a*) - Z_{tau_i}(s_{t-1}, a_tm1)
        loss_b = sum_i mean_j rho^kappa_{tau_i}(delta_ij)          (eq. 4, N' = target count)
    The target fractions tau'_j do not enter the loss, only the values at them. ``a*`` is
    ``argmax_a q_t_online`` if given, else the argmax of the mean over the N' target
    samples (eq. 3's ``(1/K) sum_k Z_{tau~_k}`` with K = N'). The same kappa caveat as
    :func:`quantile_dqn_loss` applies (no division by kappa). No gradient flows into
    ``tau_tm1``, the targets or ``q_t_online``.

    Args:
      dist_tm1: [B, N, A] online quantile values at the sampled fractions, at s_{t-1}.
      tau_tm1: [B, N] the fractions ``dist_tm1`` was evaluated at, or [N] shared by the batch.
      a_tm1: [B] int actions taken.
      r_t, discount_t: [B].
      dist_t_target: [B, N', A] target-network values at N' sampled fractions, at s_t.
      q_t_online: optional [B, A] online Q-values at s_t selecting the next action.
      huber_delta: kappa (1.0 in the paper); a static Python float.
      weights: optional [B] importance weights; None means ones.

    Returns:
      (loss scalar, per-example quantile loss [B]).
    """
    chex.assert_rank([dist_tm1, a_tm1, r_t, discount_t, dist_t_target], [3, 1, 1, 1, 3])
    chex.assert_equal_shape([dist_tm1[:, 0, :], dist_t_target[:, 0, :]])
    chex.assert_rank(tau_tm1, {1, 2})
    tau_axis = 0 if tau_tm1.ndim == 2 else None  # [B, N] per example, or [N] shared
    chex.assert_shape(tau_tm1, dist_tm1.shape[:2] if tau_axis == 0 else dist_tm1.shape[1:2])
    per_example = _quantile_per_example(
        dist_tm1, tau_tm1, tau_axis, a_tm1, r_t, discount_t, dist_t_target, q_t_online, huber_delta
    )
    chex.assert_shape(per_example, a_tm1.shape)
    return _weighted_mean(per_example, weights), per_example
