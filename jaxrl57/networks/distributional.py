"""Distributional heads: C51 (categorical), QR-DQN (fixed quantiles), IQN (sampled quantiles).

Output layouts, chosen so each feeds its rlax loss per example with no transpose:

- `CategoricalHead`: logits [..., A, N] (actions, atoms) — the `q_logits`
  [A, N] of `rlax.categorical_q_learning` / `categorical_double_q_learning`.
- `QuantileHead`: quantile values [..., N, A] (quantiles, actions) — the
  `dist_q` [N, A] of `rlax.quantile_q_learning`, whose greedy action is
  `argmax(mean(dist, axis=0))`.
- `IQNHead`: quantile values [..., T, A] for T sampled taus — the same
  [N, A] layout, with `tau_q_tm1` the taus themselves.

Every head takes `noisy: bool` (its linear layers become `NoisyDense`, see
`jaxrl57.networks.noisy` for the rngs={"noise": key} / `deterministic`
convention) and `deterministic` as attribute and call argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl57.networks.noisy import linear, resolve_deterministic


def categorical_atoms(v_min: float = -10.0, v_max: float = 10.0, num_atoms: int = 51) -> jax.Array:
    """The fixed support of C51, z_i = v_min + i (v_max - v_min) / (N - 1).

    Bellemare et al. 2017, sec. 4 (paper: [-10, 10], N = 51). Returns [N].
    """
    return jnp.linspace(v_min, v_max, num_atoms, dtype=jnp.float32)


def expected_q(logits: jax.Array, atoms: jax.Array) -> jax.Array:
    """Q(s, a) = sum_i z_i softmax(logits[a])_i (Bellemare et al. 2017, Algorithm 1).

    Args: logits [..., A, N]; atoms [N]. Returns [..., A].
    """
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * atoms, axis=-1)


def quantile_mean(dist: jax.Array) -> jax.Array:
    """Q(s, a) = (1/N) sum_i theta_i(s, a) (Dabney et al. 2018a, sec. 4).

    Args: dist [..., N, A] (the layout of `QuantileHead` and `IQNHead`). Returns [..., A].
    """
    return jnp.mean(dist, axis=-2)


def sample_taus(key: jax.Array, num_taus: int, batch_shape: Sequence[int] = ()) -> jax.Array:
    """tau ~ U[0, 1), the quantile fractions IQN samples (Dabney et al. 2018b, sec. 3).

    Returns [*batch_shape, num_taus] float32.
    """
    return jax.random.uniform(key, (*batch_shape, num_taus), jnp.float32)


def cosine_features(taus: jax.Array, embedding_dim: int = 64) -> jax.Array:
    """cos(pi i tau) for i = 0..n-1 (Dabney et al. 2018b, eq. 4, n = 64).

    Args: taus [..., T]. Returns [..., T, n]. Note i starts at 0 as in the
    paper (the i = 0 feature is the constant 1); dopamine uses i = 1..n.
    """
    i = jnp.arange(embedding_dim, dtype=jnp.float32)
    return jnp.cos(jnp.pi * i * jnp.asarray(taus, jnp.float32)[..., None])


class CategoricalHead(nn.Module):
    """C51 head (Bellemare et al. 2017): features [..., D] -> logits [..., A, N].

    The probabilities of the return distribution of action a are
    softmax(logits[..., a, :]) over the atoms; `expected_q` gives Q.
    With `dueling` (Rainbow, Hessel et al. 2018, sec. 3 "Dueling"), a value
    stream v [..., N] and an advantage stream a [..., A, N] are combined per atom:

        logits[a, i] = v[i] + a[a, i] - (1/A) sum_a' a[a', i]

    before the softmax over atoms.

    Attributes:
      num_actions, num_atoms: A and N.
      dueling: use the Rainbow dueling form.
      hidden_sizes: ReLU layers before the output layer, per stream when dueling.
      noisy, sigma0: make every layer a `NoisyDense` (Rainbow) with this sigma0.
      deterministic: noisy layers use their mean weights (evaluation).
    """

    num_actions: int
    num_atoms: int = 51
    dueling: bool = False
    hidden_sizes: Sequence[int] = ()
    noisy: bool = False
    sigma0: float = 0.5
    deterministic: bool = False

    @nn.compact
    def __call__(self, features: jax.Array, deterministic: bool | None = None) -> jax.Array:
        det = resolve_deterministic(self.deterministic, deterministic)

        def dense(size):
            return linear(size, noisy=self.noisy, sigma0=self.sigma0, deterministic=det)

        def stream(x, out):
            for size in self.hidden_sizes:
                x = nn.relu(dense(size)(x))
            return dense(out)(x)

        batch_shape = features.shape[:-1]
        a, n = self.num_actions, self.num_atoms
        if not self.dueling:
            return stream(features, a * n).reshape(batch_shape + (a, n))
        value = stream(features, n).reshape(batch_shape + (1, n))
        advantage = stream(features, a * n).reshape(batch_shape + (a, n))
        return value + advantage - jnp.mean(advantage, axis=-2, keepdims=True)


class QuantileHead(nn.Module):
    """QR-DQN head (Dabney et al. 2018a): features [..., D] -> quantile values [..., N, A].

    Quantiles first, actions last: one example's [N, A] is `dist_q_tm1` of
    `rlax.quantile_q_learning` as it is, with `tau_q_tm1 = losses.quantile_midpoints(N)`;
    `quantile_mean` gives Q [..., A].

    Attributes: num_actions (A), num_quantiles (N, paper: 200), hidden_sizes,
    noisy, sigma0, deterministic as in `CategoricalHead`.
    """

    num_actions: int
    num_quantiles: int = 200
    hidden_sizes: Sequence[int] = ()
    noisy: bool = False
    sigma0: float = 0.5
    deterministic: bool = False

    @nn.compact
    def __call__(self, features: jax.Array, deterministic: bool | None = None) -> jax.Array:
        det = resolve_deterministic(self.deterministic, deterministic)
        x = features
        for size in self.hidden_sizes:
            x = nn.relu(linear(size, noisy=self.noisy, sigma0=self.sigma0, deterministic=det)(x))
        x = linear(
            self.num_quantiles * self.num_actions,
            noisy=self.noisy,
            sigma0=self.sigma0,
            deterministic=det,
        )(x)
        return x.reshape(features.shape[:-1] + (self.num_quantiles, self.num_actions))


class IQNEmbedding(nn.Module):
    """IQN quantile embedding (Dabney et al. 2018b, eq. 4):

        phi_j(tau) = ReLU(sum_{i=0}^{n-1} cos(pi i tau) w_ij + b_j),  j = 1..features

    taus [..., T] -> [..., T, features]. The linear layer is a `nn.Dense`
    named "Dense_0" (kernel [n, features]).
    """

    features: int
    embedding_dim: int = 64

    @nn.compact
    def __call__(self, taus: jax.Array) -> jax.Array:
        return nn.relu(nn.Dense(self.features)(cosine_features(taus, self.embedding_dim)))


class IQNHead(nn.Module):
    """Implicit quantile network head (Dabney et al. 2018b, sec. 3.1).

    Z_tau(s, a) = f(psi(s) ⊙ phi(tau))_a: the torso features psi(s) [..., D]
    are multiplied elementwise by the embedding phi(tau) [..., T, D] (the
    paper's Hadamard merge), then `hidden_sizes` ReLU layers (paper: one of
    512) and a linear layer to actions.

    Call: head(features [..., D], taus [..., T]) -> quantile values [..., T, A].
    The leading axes of features and taus broadcast against each other, so
    taus [T] may be shared by a batch of features [B, D]. One example's
    [T, A] is `dist_q_tm1` of `rlax.quantile_q_learning` with `tau_q_tm1` = taus.

    Attributes: num_actions, embedding_dim (n, paper: 64), hidden_sizes,
    noisy, sigma0, deterministic (noise applies to the layers after the merge;
    the embedding stays a plain `nn.Dense`).
    """

    num_actions: int
    embedding_dim: int = 64
    hidden_sizes: Sequence[int] = (512,)
    noisy: bool = False
    sigma0: float = 0.5
    deterministic: bool = False

    @nn.compact
    def __call__(
        self, features: jax.Array, taus: jax.Array, deterministic: bool | None = None
    ) -> jax.Array:
        det = resolve_deterministic(self.deterministic, deterministic)
        features = jnp.asarray(features, jnp.float32)
        phi = IQNEmbedding(features.shape[-1], self.embedding_dim)(taus)
        x = features[..., None, :] * phi
        for size in self.hidden_sizes:
            x = nn.relu(linear(size, noisy=self.noisy, sigma0=self.sigma0, deterministic=det)(x))
        return linear(self.num_actions, noisy=self.noisy, sigma0=self.sigma0, deterministic=det)(x)
