"""Recurrent Q-networks: R2D2's LSTM network and a ConvLSTM variant.

`RecurrentQNetwork` is the network of R2D2 (Kapturowski et al. 2019, sec. 3
and appendix: the Ape-X dueling network with an LSTM after the torso, whose
input also carries the previous action, one-hot, and the previous reward):

    x_t = [torso(o_t), reset_t ? 0 : one_hot(a_{t-1}), reset_t ? 0 : r_{t-1}]
    (c_t, h_t) = LSTM(x_t, reset_t ? 0 : (c_{t-1}, h_{t-1}))
    Q(., o_t) = head(h_t)

NGU and Agent57 (Badia et al. 2020a and 2020b, their network appendices) feed the
same core more: the previous extrinsic AND intrinsic reward (`prev_reward`
with a trailing axis of reward channels, [T, B, R]) and the one-hot index of
the policy the actor follows (`context` [T, B, C], the UVFA input, known
from an episode's first step and so never zeroed).

At an episode's first step (`reset_t`) the episode has no previous action or
reward, and the network zeroes both inputs itself: a caller that passes the
previous episode's last action and reward (a replayed sequence crossing an
episode boundary) cannot leak them into the new episode. acme's R2D2 feeds
action 0 and reward 0 there (`ObservationActionRewardWrapper.reset`); a zero
vector instead of `one_hot(0)` keeps "no action yet" apart from action 0.

With `conv_lstm_features > 0` the core is a convolutional LSTM (Shi et al.
2015) over the torso's last feature map, the previous action and reward
broadcast as extra channels; it is the network the Space-Invaders question
(`shared/seeds/000_*`) was after: a convolutional torso applied to every
frame of the sequence (Keras's "TimeDistributed"), then a ConvLSTM2D.

Inputs are time-major, `[T, B, ...]`: the torso sees all T*B frames as one
batch (one large convolution, not T small ones) and only the core runs in a
`flax.linen.scan` over time. Acting is the same call with T = 1. `reset_t`
(the step begins a new episode) zeroes the state before the step, so a
sequence that crosses an episode end never carries memory across it.
`carry=None` starts from zeros; `initial_carry` gives the zero state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl57.networks.heads import DuelingHead, QHead
from jaxrl57.networks.initializers import orthogonal

Carry = Any


class _ResetCell(nn.Module):
    """One step of an LSTM (or ConvLSTM) whose state is zeroed where `reset`."""

    features: int
    conv_kernel: int = 0  # 0: LSTM on vectors; k > 0: ConvLSTM with k x k kernels

    @nn.compact
    def __call__(self, carry, inputs):
        x, reset = inputs
        # A select, not a product with (1 - reset): a non-finite state must not survive.
        carry = jax.tree.map(
            lambda c: jnp.where(reset.reshape(reset.shape + (1,) * (c.ndim - reset.ndim)),
                                jnp.zeros_like(c), c), carry)
        if self.conv_kernel:
            cell = nn.ConvLSTMCell(self.features, (self.conv_kernel, self.conv_kernel))
        else:
            # Flax's default recurrent init calls LAPACK QR, which hangs when
            # vmapped on small CPUs (see `networks.initializers`).
            cell = nn.OptimizedLSTMCell(self.features, recurrent_kernel_init=orthogonal())
        return cell(carry, x)


class RecurrentQNetwork(nn.Module):
    """torso -> [features, previous action, previous reward] -> LSTM -> head.

    Call: `net(obs [T, B, ...], prev_action [T, B] int, prev_reward [T, B] (or
    [T, B, R]), reset [T, B] bool, carry=None, context=None [T, B, C]) ->
    (q [T, B, A], carry)`.

    Attributes:
      num_actions: A.
      torso: applied to every frame; must end at a feature vector, or at a
        feature map [..., H, W, C] when `conv_lstm_features > 0`.
      core_size: LSTM units (R2D2: 512).
      dueling: dueling head (R2D2) or a plain Q head.
      head_hidden: hidden layer sizes of each dueling stream (R2D2: 512).
      conv_lstm_features: > 0 replaces the LSTM by a ConvLSTM with this many
        channels, followed by a dense layer of `core_size` units.
      conv_lstm_kernel: the ConvLSTM kernel size.
    """

    num_actions: int
    torso: nn.Module
    core_size: int = 512
    dueling: bool = True
    head_hidden: Sequence[int] = (512,)
    conv_lstm_features: int = 0
    conv_lstm_kernel: int = 3

    def _inputs(self, obs, prev_action, prev_reward, reset, context):
        T, B = obs.shape[:2]
        feats = self.torso(obs.reshape((T * B,) + obs.shape[2:]))
        feats = feats.reshape((T, B) + feats.shape[1:])
        rewards = prev_reward.astype(jnp.float32)
        if rewards.ndim == 2:
            rewards = rewards[..., None]
        extra = jnp.concatenate([jax.nn.one_hot(prev_action, self.num_actions), rewards],
                                axis=-1)
        # A select, not a product: a non-finite reward of the last episode must not survive.
        extra = jnp.where(reset[..., None], 0.0, extra)
        if context is not None:
            extra = jnp.concatenate([extra, context.astype(jnp.float32)], axis=-1)
        if self.conv_lstm_features:  # broadcast as channels of the feature map
            extra = jnp.broadcast_to(extra[:, :, None, None, :],
                                     feats.shape[:-1] + extra.shape[-1:])
        return jnp.concatenate([feats, extra], axis=-1)

    def _zero_carry(self, x) -> Carry:
        width = self.conv_lstm_features or self.core_size
        zeros = jnp.zeros(x.shape[1:-1] + (width,), jnp.float32)
        return zeros, zeros

    @nn.compact
    def __call__(self, obs, prev_action, prev_reward, reset, carry: Carry | None = None,
                 context=None):
        x = self._inputs(obs, prev_action, prev_reward, reset, context)
        if carry is None:
            carry = self._zero_carry(x)
        scan = nn.scan(_ResetCell, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=0, out_axes=0)
        carry, h = scan(self.conv_lstm_features or self.core_size,
                        self.conv_lstm_kernel if self.conv_lstm_features else 0)(
            carry, (x, reset))
        if self.conv_lstm_features:
            h = nn.relu(nn.Dense(self.core_size)(h.reshape(h.shape[:2] + (-1,))))
        head = (DuelingHead(self.num_actions, hidden_sizes=tuple(self.head_hidden))
                if self.dueling else QHead(self.num_actions))
        return head(h), carry


def initial_carry(network: RecurrentQNetwork, params, obs_example, batch_size: int,
                  **inputs) -> Carry:
    """The zero state for `batch_size` sequences (shapes from one traced call).
    `inputs`: the network's other inputs for one step, [1, batch_size, ...], where
    a caller uses them (`prev_reward` with reward channels, `context`)."""
    def run(p):
        T1 = (1, batch_size)
        obs = jnp.broadcast_to(obs_example, T1 + obs_example.shape)
        call = dict(prev_reward=jnp.zeros(T1)) | inputs
        return network.apply(p, obs, jnp.zeros(T1, jnp.int32), call.pop("prev_reward"),
                             jnp.ones(T1, bool), **call)[1]
    shapes = jax.eval_shape(run, params)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
