"""Torsos: observation -> feature vector.

Each torso maps ONE observation (no batch axis is assumed: leading axes are
kept) to features; heads turn features into values. Pixels arrive as uint8
and are scaled to [0, 1] here, so replay can keep them as bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxrl57.networks.conv import Conv


def _to_float(x):
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) / 255.0
    return x.astype(jnp.float32)


class MLPTorso(nn.Module):
    """Flattens the trailing `obs_ndim` axes and applies ReLU layers."""

    hidden_sizes: Sequence[int] = (256, 256)
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = _to_float(obs)
        x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        return x


class ConvTorso(nn.Module):
    """Convolutions + one dense layer (Mnih et al. 2015, "Methods: model architecture").

    The defaults are the Nature DQN torso: 32 8x8/4, 64 4x4/2, 64 3x3/1, dense
    512, all ReLU. `channels_first` accepts EnvPool's [C, H, W] frame stacks
    and moves channels last for flax's NHWC convolutions. `dense=0` ends at
    the flattened convolutions (the R2D2 torso, whose LSTM follows them) and
    `spatial=True` at the last feature map [..., H', W', C] (for a ConvLSTM).

    `conv` is the convolution layer class, called as `conv(features, (k, k),
    strides=(s, s), padding=..., name="Conv_i")`; layers with `nn.Conv`'s
    parameters (`kernel` [k, k, C, F], `bias` [F]) keep the parameter tree
    unchanged. The default, `networks.conv.Conv`, is `nn.Conv` with a kernel
    gradient that XLA:CPU runs fast inside loops too. `benchmarks/nature_update.py`
    uses the field to time other lowerings (im2col, space-to-depth, bfloat16).
    """

    features: Sequence[int] = (32, 64, 64)
    kernels: Sequence[int] = (8, 4, 3)
    strides: Sequence[int] = (4, 2, 1)
    dense: int = 512
    channels_first: bool = False
    padding: str = "VALID"
    spatial: bool = False
    conv: Callable[..., nn.Module] = Conv

    @nn.compact
    def __call__(self, obs):
        x = _to_float(obs)
        if self.channels_first:
            x = jnp.moveaxis(x, -3, -1)
        batch_shape = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        layers = zip(self.features, self.kernels, self.strides, strict=True)
        for i, (f, k, s) in enumerate(layers):
            # Named as flax names nn.Conv layers, whatever `conv` is.
            layer = self.conv(f, (k, k), strides=(s, s), padding=self.padding, name=f"Conv_{i}")
            x = nn.relu(layer(x))
        if self.spatial:
            return x.reshape(batch_shape + x.shape[-3:])
        x = x.reshape(batch_shape + (-1,))
        return nn.relu(nn.Dense(self.dense)(x)) if self.dense else x


def nature_cnn(channels_first: bool = True) -> ConvTorso:
    """The torso of Nature DQN (84x84x4 input)."""
    return ConvTorso(channels_first=channels_first)


def small_cnn(channels_first: bool = False) -> ConvTorso:
    """A torso for the small pixel games (Catch 16x16, CAVE 48x48)."""
    return ConvTorso(
        features=(16, 32), kernels=(3, 3), strides=(1, 2), dense=256,
        channels_first=channels_first, padding="SAME",
    )
