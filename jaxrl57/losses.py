"""Value-learning losses and related operators, as pure functions on arrays.

Per-example functions follow rlax naming by time index (``q_tm1``, ``a_tm1``, ``r_t``,
``discount_t``, ``q_t``); the public batched losses are one ``jax.vmap`` of an rlax
per-example operator followed by a reduction. Everything works under ``jit``, ``vmap``
and ``grad``; hyperparameters such as ``huber_delta``, ``eta``, ``beta`` may be traced.
"""

from __future__ import annotations

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
    "agent57_q",
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
