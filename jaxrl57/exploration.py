"""Exploration schedules and families of the DQN → Agent57 line, as pure functions.

Counts that set shapes (``num_actors``, ``num_policies``) are static Python ints; the
numeric settings (epsilons, betas, discounts, schedule endpoints) may be traced arrays,
so a sweep over them is a ``jax.vmap``. All return float32 arrays.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
Numeric = chex.Numeric

__all__ = [
    "linear_epsilon",
    "epsilon_greedy",
    "epsilon_greedy_probs",
    "apex_epsilons",
    "ngu_betas",
    "ngu_discounts",
    "agent57_discounts",
]


def linear_epsilon(
    step: Numeric,
    start: Numeric = 1.0,
    end: Numeric = 0.1,
    decay_steps: Numeric = 1_000_000,
    decay_start: Numeric = 0,
) -> Array:
    """Linearly annealed epsilon of Nature DQN (Mnih et al. 2015, Methods).

        epsilon(step) = end + (start - end) * clip(1 - (step - decay_start) / decay_steps, 0, 1)

    i.e. ``start`` until ``decay_start``, then linearly to ``end`` over ``decay_steps``
    steps (1.0 → 0.1 over a million agent steps in the paper). The released Nature code
    starts the decay when learning starts (``NeuralQLearner.lua``: ``ep_start`` to
    ``ep_end`` over ``ep_endt`` steps counted from ``learn_start``), as does dqn_zoo
    (its ``LinearSchedule`` begins at the replay warm-up); ``decay_start = 0`` anneals
    from the first step. Every argument may be a traced array.
    """
    step = jnp.asarray(step, jnp.float32)
    start = jnp.asarray(start, jnp.float32)
    end = jnp.asarray(end, jnp.float32)
    decay_steps = jnp.asarray(decay_steps, jnp.float32)
    elapsed = step - jnp.asarray(decay_start, jnp.float32)
    frac = jnp.clip(1.0 - elapsed / jnp.maximum(decay_steps, 1.0), 0.0, 1.0)
    return end + (start - end) * frac


def epsilon_greedy(key: chex.PRNGKey, q_values: Array, epsilon: Numeric) -> Array:
    """Epsilon-greedy action selection (Sutton & Barto 2018, Sec. 2.2; Mnih et al. 2015).

    With probability ``epsilon`` a uniformly random action, else ``argmax_a q_values``
    (ties go to the lowest index). Per example ``q_values`` is [A] and ``epsilon`` a
    scalar; a batch [B, A] is also accepted, with ``epsilon`` a scalar or [B], and each
    row draws independently from ``key``.

    Args:
      key: a PRNG key.
      q_values: [A] or [B, A] action values.
      epsilon: exploration probability, scalar or [B] (may be traced).

    Returns:
      int32 actions, shape ``q_values.shape[:-1]``.
    """
    chex.assert_rank(q_values, {1, 2})
    batch_shape = q_values.shape[:-1]
    num_actions = q_values.shape[-1]
    epsilon = jnp.asarray(epsilon, jnp.float32)
    chex.assert_rank(epsilon, {0, len(batch_shape)})
    explore_key, action_key = jax.random.split(key)
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    random_actions = jax.random.randint(action_key, batch_shape, 0, num_actions, jnp.int32)
    explore = jax.random.uniform(explore_key, batch_shape) < epsilon
    return jnp.where(explore, random_actions, greedy)


def epsilon_greedy_probs(q_values: Array, epsilon: Numeric) -> Array:
    """[..., A] probabilities of `epsilon_greedy`'s actions: epsilon / A on every
    action, plus 1 - epsilon on argmax_a q_values (the lowest index among ties,
    as `epsilon_greedy` breaks them). epsilon 0 gives the greedy policy; both
    enter Retrace's trace coefficients (`losses.retrace_loss`)."""
    num_actions = q_values.shape[-1]
    epsilon = jnp.asarray(epsilon, jnp.float32)[..., None]
    greedy = jax.nn.one_hot(jnp.argmax(q_values, axis=-1), num_actions, dtype=jnp.float32)
    return (1.0 - epsilon) * greedy + epsilon / num_actions


def apex_epsilons(num_actors: int, epsilon: Numeric = 0.4, alpha: Numeric = 7.0) -> Array:
    """Per-actor epsilons of Ape-X (Horgan et al. 2018, Sec. 4.1), also used by R2D2.

        epsilon_i = epsilon ** (1 + alpha * i / (N - 1)),   i = 0 .. N-1

    so actor 0 uses ``epsilon`` and actor N-1 uses ``epsilon ** (1 + alpha)``;
    ``num_actors == 1`` gives ``[epsilon]``.

    Returns:
      float32 [num_actors].
    """
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1, got {num_actors}")
    epsilon = jnp.asarray(epsilon, jnp.float32)
    i = jnp.arange(num_actors, dtype=jnp.float32)
    exponent = 1.0 + alpha * i / max(num_actors - 1, 1)
    return (epsilon**exponent).astype(jnp.float32)


def ngu_betas(num_policies: int, max_beta: Numeric = 0.3) -> Array:
    """Intrinsic-reward weights of NGU (Badia et al. 2020a, Appendix A).

        beta_i = 0                                            if i = 0
        beta_i = max_beta                                     if i = N - 1
        beta_i = max_beta * sigmoid(10 * (2i - (N - 2)) / (N - 2))   otherwise

    Index 0 is the purely exploitative policy; the betas rise to ``max_beta``
    (0.3 with N = 32 in the paper). Agent57 (Badia et al. 2020b, Appendix) uses the
    same family.

    Returns:
      float32 [num_policies].
    """
    if num_policies < 1:
        raise ValueError(f"num_policies must be >= 1, got {num_policies}")
    max_beta = jnp.asarray(max_beta, jnp.float32)
    n = num_policies
    i = jnp.arange(n, dtype=jnp.float32)
    middle = max_beta * jax.nn.sigmoid(10.0 * (2.0 * i - (n - 2)) / max(n - 2, 1))
    betas = jnp.where(i == n - 1, max_beta, middle)
    return jnp.where(i == 0, 0.0, betas).astype(jnp.float32)


def _log_interpolated_discounts(
    j: Array, first: Numeric, last: Numeric, gamma_start: Array, gamma_end: Array
) -> Array:
    """1 - exp(((last - j) log(1 - g_start) + (j - first) log(1 - g_end)) / (last - first)).

    Interpolates the horizons 1 / (1 - gamma) geometrically from ``gamma_start`` at
    ``j = first`` to ``gamma_end`` at ``j = last`` (requires ``last > first``).
    """
    span = last - first
    log_one_minus = (
        (last - j) * jnp.log1p(-gamma_start) + (j - first) * jnp.log1p(-gamma_end)
    ) / span
    return 1.0 - jnp.exp(log_one_minus)


def ngu_discounts(
    num_policies: int, gamma_min: Numeric = 0.99, gamma_max: Numeric = 0.997
) -> Array:
    """Discount factors of NGU (Badia et al. 2020a, Appendix A).

        gamma_j = 1 - exp(((N - 1 - j) log(1 - gamma_max) + j log(1 - gamma_min)) / (N - 1))

    i.e. the horizons 1 / (1 - gamma_j) are spaced geometrically from ``gamma_max``
    (j = 0, the exploitative policy) down to ``gamma_min`` (j = N - 1).
    ``num_policies == 1`` gives ``[gamma_max]``.

    Returns:
      float32 [num_policies], non-increasing.
    """
    if num_policies < 1:
        raise ValueError(f"num_policies must be >= 1, got {num_policies}")
    gamma_min = jnp.asarray(gamma_min, jnp.float32)
    gamma_max = jnp.asarray(gamma_max, jnp.float32)
    if num_policies == 1:
        return gamma_max[None]
    j = jnp.arange(num_policies, dtype=jnp.float32)
    gammas = _log_interpolated_discounts(j, 0, num_policies - 1, gamma_max, gamma_min)
    return gammas.astype(jnp.float32)


def agent57_discounts(
    num_policies: int,
    gamma0: Numeric = 0.9999,
    gamma1: Numeric = 0.997,
    gamma2: Numeric = 0.99,
) -> Array:
    """Discount factors of Agent57 (Badia et al. 2020b, Appendix, N = 32 in the paper).

        gamma_j = gamma0                                                 if j = 0
        gamma_j = gamma1 + (gamma0 - gamma1) * sigmoid(-10 (2j - 6) / 6)  if j in 1..6
        gamma_j = gamma1                                                 if j = 7
        gamma_j = 1 - exp(((N - 1 - j) log(1 - gamma1) + (j - 8) log(1 - gamma2)) / (N - 9))
                                                                         if j in 8..N-1

    Note on the paper's text: as printed, the j in 1..6 line reads ``sigmoid(+10 (2j-6)/6)``
    and the last line's first term ``(N - 9) log(1 - gamma1)``. Taken literally, the
    discounts would climb back towards ``gamma0`` over j = 1..6 and the tail would rise
    to ``1 - (1 - gamma1)(1 - gamma2)`` instead of ending at ``gamma2``, contradicting the
    stated intent (index 0 most exploitative with the longest horizon, then a smooth
    decrease from gamma0 to gamma1 and a geometric spacing of horizons from gamma1 to
    gamma2, as in NGU). We implement that intent: the sequence is non-increasing, starts
    at ``gamma0``, reaches ``gamma1`` at j = 7 (and again at j = 8) and ends at
    ``gamma2`` at j = N - 1.

    Args:
      num_policies: N, at least 10 (the family needs j = 0..8 plus a tail).
      gamma0, gamma1, gamma2: the three anchor discounts (may be traced).

    Returns:
      float32 [num_policies], non-increasing.
    """
    if num_policies < 10:
        raise ValueError(
            f"agent57_discounts is defined for num_policies >= 10 (the paper uses 32), got "
            f"{num_policies}; use ngu_discounts for smaller families"
        )
    n = num_policies
    gamma0 = jnp.asarray(gamma0, jnp.float32)
    gamma1 = jnp.asarray(gamma1, jnp.float32)
    gamma2 = jnp.asarray(gamma2, jnp.float32)
    j = jnp.arange(n, dtype=jnp.float32)
    head = gamma1 + (gamma0 - gamma1) * jax.nn.sigmoid(-10.0 * (2.0 * j - 6.0) / 6.0)
    tail = _log_interpolated_discounts(j, 8, n - 1, gamma1, gamma2)
    gammas = jnp.where(j >= 8, tail, head)
    gammas = jnp.where(j == 7, gamma1, gammas)
    gammas = jnp.where(j == 0, gamma0, gammas)
    return gammas.astype(jnp.float32)
