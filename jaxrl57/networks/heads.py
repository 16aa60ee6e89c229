"""Heads: features -> action values.

A head is any module `features -> [..., num_actions]`; distributional and
noisy heads plug in here without changing the agent loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import optax


class QHead(nn.Module):
    """A linear layer to one value per action (Mnih et al. 2015)."""

    num_actions: int

    @nn.compact
    def __call__(self, features):
        return nn.Dense(self.num_actions)(features)


class DuelingHead(nn.Module):
    """Dueling value/advantage streams (Wang et al. 2016, eq. 9).

    Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a').

    `input_grad_scale` multiplies the gradient flowing back into `features`
    (the forward pass is unchanged): Wang et al. 2016, sec. 4.2, rescale the
    combined gradient entering the last convolutional layer by 1/sqrt(2),
    since both streams backpropagate into it (`make_q_network` sets that for
    convolutional torsos).
    """

    num_actions: int
    hidden_sizes: Sequence[int] = ()
    input_grad_scale: float = 1.0

    @nn.compact
    def __call__(self, features):
        features = optax.scale_gradient(features, self.input_grad_scale)
        value, advantage = features, features
        for size in self.hidden_sizes:
            value = nn.relu(nn.Dense(size)(value))
            advantage = nn.relu(nn.Dense(size)(advantage))
        value = nn.Dense(1)(value)
        advantage = nn.Dense(self.num_actions)(advantage)
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)
