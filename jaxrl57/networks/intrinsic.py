"""The networks of NGU's intrinsic reward (Badia et al. 2020a, sec. 2 and its
network appendix): an embedding trained by inverse dynamics, for the episodic
memory, and RND's random target with its predictor, for lifelong novelty.

* `InverseDynamics`: a siamese embedding f (the torso, then a dense layer of
  `embedding_size`, 32 in NGU) applied to x_t and x_{t+1}, and a classifier
  h(f(x_t), f(x_{t+1})) (one hidden layer of 128 ReLU units) giving the logits
  of the action a_t taken between them. Trained with the cross-entropy of a_t
  (`intrinsic.inverse_dynamics_loss`), f keeps what the agent controls and drops what
  it does not (the noise an observation carries): its distances measure how
  far the agent has moved.
* `RNDNetwork`: the torso and a linear output of `output_size` (128 in NGU);
  one copy with fixed random weights is the target g, another, trained on
  `intrinsic.rnd_error(predictor(x), target(x))`, the predictor (Burda et
  al. 2019). Both see the observation normalised by running statistics
  (`intrinsic.normalize_observation`).

Inputs are batches [B, ...]; call with time and batch flattened.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class Embedding(nn.Module):
    """f(x): torso, then a linear layer of `embedding_size` (NGU: 32)."""

    torso: nn.Module
    embedding_size: int = 32

    @nn.compact
    def __call__(self, obs):
        return nn.Dense(self.embedding_size)(self.torso(obs))


class InverseDynamics(nn.Module):
    """Siamese embedding and action classifier of NGU's episodic memory.

    `net(obs_t, obs_tp1) -> logits [B, A]`; `net.apply(p, obs, method="embed")`
    gives f(obs) [B, embedding_size] for the memory."""

    num_actions: int
    torso: nn.Module
    embedding_size: int = 32
    hidden_size: int = 128

    def setup(self):
        self.embedding = Embedding(self.torso, self.embedding_size)
        self.hidden = nn.Dense(self.hidden_size)
        self.logits = nn.Dense(self.num_actions)

    def embed(self, obs):
        return self.embedding(obs)

    def __call__(self, obs_t, obs_tp1):
        both = jnp.concatenate([self.embedding(obs_t), self.embedding(obs_tp1)], axis=-1)
        return self.logits(nn.relu(self.hidden(both)))


class RNDNetwork(nn.Module):
    """g(x) or g_hat(x): torso, then a linear output of `output_size` (NGU: 128)."""

    torso: nn.Module
    output_size: int = 128

    @nn.compact
    def __call__(self, obs):
        return nn.Dense(self.output_size)(self.torso(obs))
