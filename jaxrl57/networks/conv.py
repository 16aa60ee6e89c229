"""A 2-D convolution whose kernel gradient XLA:CPU computes fast, in loops too.

`Conv` is `flax.linen.Conv` for channels-last 2-D inputs (same parameters,
`kernel` [kh, kw, C, F] and `bias` [F], same initialisation, same forward
pass), with one change: the gradient with respect to the kernel is written
out as a convolution of its own instead of being left to JAX's transpose
rule.

Why. The transpose rule expresses the kernel gradient as a convolution with
batch and feature dimensions swapped (`f01b_i01o->01bf`). XLA:CPU (jaxlib
0.10.2) runs it through its YNNPACK fusions in straight-line code, but inside
a while loop it leaves it as a plain `convolution` that runs an order of
magnitude slower (jax-ml/jax#12868). Every `lax.scan` over updates (the
on-device runner's rows, `scan_updates`) hit it, a Nature-CNN gradient step
about ten times slower inside a scan than as one call. Written as a
channels-last convolution over transposed operands, the kernel gradient runs
as fast in a scan as outside one (figures in docs/results.md).

The kernel gradient (for stride s and padding (p_lo, p_hi)):

    dW[i, j, c, o] = sum_{b, p, q} x[b, s p + i - p_lo, s q + j - p_lo, c] dy[b, p, q, o]

is a convolution with C as the batch, B as the input features and dy, dilated
by the stride, as the kernel: `conv(x^T [C, H, W, B], dy^T [H', W', B, O],
rhs_dilation=s) -> [C, kh, kw, O]` (cropped to the kernel's size when the
padding leaves a remainder), then transposed to [kh, kw, C, O]. The input
gradient is JAX's own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, strides, padding):
    return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DIMS)


def _explicit_padding(padding, kernel: Sequence[int], size: Sequence[int],
                      strides: Sequence[int]) -> list[tuple[int, int]]:
    if not isinstance(padding, str):
        return [tuple(p) for p in padding]
    return jax.lax.padtype_to_pads(size, kernel, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding) -> jax.Array:
    """`lax.conv_general_dilated` of NHWC `x` [B, H, W, C] with HWIO `w`
    [kh, kw, C, O]; `padding` "VALID", "SAME" or ((lo, hi), (lo, hi))."""
    return _conv(x, w, strides, padding)


def _conv2d_fwd(x, w, strides, padding):
    return _conv(x, w, strides, padding), (x, w)


def _conv2d_bwd(strides, padding, residuals, dy):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda x: _conv(x, w, strides, padding), x)
    (dx,) = input_vjp(dy)
    kh, kw = w.shape[:2]
    pads = _explicit_padding(padding, (kh, kw), x.shape[1:3], strides)
    dw = jax.lax.conv_general_dilated(
        jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)), (1, 1), pads,
        rhs_dilation=strides, dimension_numbers=_DIMS)
    dw = jnp.transpose(dw[:, :kh, :kw, :], (1, 2, 0, 3))
    return dx, dw.astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv(nn.Module):
    """`nn.Conv` for [..., H, W, C] inputs with `conv2d`'s kernel gradient.

    Takes `nn.Conv`'s call as `ConvTorso` makes it: `Conv(features, (k, k),
    strides=(s, s), padding="VALID" | "SAME")`; leading batch axes are flattened
    and restored.
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init,
                            (*self.kernel_size, x.shape[-1], self.features))
        padding = (self.padding if isinstance(self.padding, str)
                   else tuple(tuple(p) for p in self.padding))  # hashable: a static argument
        batch_shape = x.shape[:-3]
        y = conv2d(x.reshape((-1,) + x.shape[-3:]), kernel.astype(x.dtype),
                   tuple(self.strides), padding)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).astype(y.dtype)
        return y.reshape(batch_shape + y.shape[1:])
