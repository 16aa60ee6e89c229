"""Recurrent networks for continuous actions: RDPG's actor mu(h_t) and critic Q(h_t, a_t).

Heess et al. 2015, "Memory-based control with recurrent neural networks", sec. 3:
in a partially observed problem the policy and the value are functions of the
history h_t = (o_1, a_1, ..., a_{t-1}, o_t), which an LSTM summarises. Both
networks here read the history the same way,

    x_t = [torso(o_t), reset_t ? 0 : a_{t-1}]
    (c_t, z_t) = LSTM(x_t, reset_t ? 0 : (c_{t-1}, z_{t-1}))

and then the actor maps z_t to an unbounded action (the agent bounds it,
`agents.ddpg.bound_action`) and the critic maps [z_t, a_t] to a value: the
action being judged enters after the core, so one unroll of the critic's core
over a sequence gives Q(h_t, a) for any a at every step (the stored action, the
actor's, the target actor's). The actor and the critic each have their own
core (Heess et al. train two recurrent networks).

Inputs are time-major, `[T, B, ...]`; the torso and the LSTM's input weights see
all T*B steps as one batch and only the recurrent product runs in a `lax.scan`
over time (`ResetLSTM`). Acting is the same call with T = 1. At an episode's
first step (`reset_t`) the previous action is zeroed by the network itself, so
a replayed sequence that crosses an episode boundary never leaks the last
episode into the next. The last layers start uniform in [-3e-3, 3e-3]
(Lillicrap et al. 2016, sec. 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl57.networks.continuous import FINAL_INIT_SCALE, _centered, _final_init
from jaxrl57.networks.initializers import orthogonal
from jaxrl57.networks.torsos import MLPTorso

Carry = Any  # the LSTM's (c, z), leaves [B, core_size]


def zero_carry(core_size: int, batch_shape: tuple[int, ...]) -> Carry:
    """The LSTM state at an episode's start: zeros, leaves [*batch_shape, core_size]."""
    zeros = jnp.zeros(tuple(batch_shape) + (core_size,), jnp.float32)
    return zeros, zeros


def _gate_orthogonal(key, shape, dtype=jnp.float32):
    """[H, 4H]: an orthogonal H x H block per gate (the recurrent init of flax's
    `nn.OptimizedLSTMCell`), drawn in one batched call: one loop to compile, not four."""
    H = shape[0]
    blocks = jax.vmap(lambda k: orthogonal()(k, (H, H), dtype))(jax.random.split(key, 4))
    return jnp.concatenate(list(blocks), axis=-1)


class ResetLSTM(nn.Module):
    """An LSTM unrolled over time whose state is zeroed before every step marked `reset`:
    `(x [T, B, F], reset [T, B], carry (c, z) [B, H]) -> (z [T, B, H], carry)`.

    The gates of `nn.OptimizedLSTMCell` (Hochreiter & Schmidhuber 1997: input, forget,
    cell and output gates; lecun-normal input kernel, orthogonal recurrent blocks, zero
    bias). The input projection of all T steps is one matrix product before the scan,
    so each step of the loop only multiplies the state: on a CPU the loop is most of
    an RDPG update's time.
    """

    features: int

    @nn.compact
    def __call__(self, x, reset, carry: Carry):
        H = self.features
        projected = nn.Dense(4 * H, name="input")(x)
        recurrent = self.param("recurrent", _gate_orthogonal, (H, 4 * H))

        def step(carry, inputs):
            xw, reset_t = inputs
            # A select, not a product with (1 - reset): a non-finite state must not survive.
            c, z = (jnp.where(reset_t[..., None], 0.0, v) for v in carry)
            i, f, g, o = jnp.split(xw + z @ recurrent, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            z = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (c, z), z

        carry, z = jax.lax.scan(step, carry, (projected, reset))
        return z, carry


class HistoryEncoder(nn.Module):
    """(obs [T, B, ...], prev_action [T, B, D], reset [T, B] bool, carry) ->
    (z [T, B, core_size], carry): the LSTM summary of the history at each step."""

    core_size: int = 64
    hidden_sizes: Sequence[int] = ()
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs, prev_action, reset, carry: Carry | None = None):
        feats = MLPTorso(tuple(self.hidden_sizes), self.obs_ndim)(obs)
        # A select, not a product: a non-finite action of the last episode must not survive.
        prev = jnp.where(reset[..., None], 0.0, prev_action.astype(jnp.float32))
        x = jnp.concatenate([feats, prev], axis=-1)
        if carry is None:
            carry = zero_carry(self.core_size, x.shape[1:-1])
        return ResetLSTM(self.core_size)(x, reset, carry)


def _mlp_out(x, hidden_sizes: Sequence[int], features: int):
    for size in hidden_sizes:
        x = nn.relu(nn.Dense(size)(x))
    init = _centered(_final_init(FINAL_INIT_SCALE), FINAL_INIT_SCALE)
    return nn.Dense(features, kernel_init=init, bias_init=init)(x)


class RecurrentPolicy(nn.Module):
    """mu(h_t): `(obs, prev_action, reset, carry) -> (u [T, B, D] unbounded, carry)`."""

    action_dim: int
    core_size: int = 64
    hidden_sizes: Sequence[int] = ()
    head_hidden: Sequence[int] = (64,)
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs, prev_action, reset, carry: Carry | None = None):
        z, carry = HistoryEncoder(self.core_size, self.hidden_sizes, self.obs_ndim)(
            obs, prev_action, reset, carry)
        return _mlp_out(z, self.head_hidden, self.action_dim), carry


class _ValueHead(nn.Module):
    hidden_sizes: Sequence[int]

    @nn.compact
    def __call__(self, z, action):
        x = jnp.concatenate([z, action.astype(jnp.float32)], axis=-1)
        return _mlp_out(x, self.hidden_sizes, 1)[..., 0]


class RecurrentCritic(nn.Module):
    """Q(h_t, a_t): `(obs, prev_action, action [T, B, D], reset, carry) -> (q [T, B], carry)`.

    `apply(..., method="encode")` runs only the core, `(obs, prev_action, reset,
    carry) -> (z, carry)`, and `apply(params, z, action, method="value")` the
    head, so one unroll serves any number of actions."""

    core_size: int = 64
    hidden_sizes: Sequence[int] = ()
    head_hidden: Sequence[int] = (64,)
    obs_ndim: int = 1

    def setup(self):
        self.encoder = HistoryEncoder(self.core_size, self.hidden_sizes, self.obs_ndim)
        self.head = _ValueHead(self.head_hidden)

    def encode(self, obs, prev_action, reset, carry: Carry | None = None):
        return self.encoder(obs, prev_action, reset, carry)

    def value(self, z, action):
        return self.head(z, action)

    def __call__(self, obs, prev_action, action, reset, carry: Carry | None = None):
        z, carry = self.encode(obs, prev_action, reset, carry)
        return self.value(z, action), carry
