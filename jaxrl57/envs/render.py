"""Frames of the JAX games for people to watch: pure functions of an env state to RGB pixels.

Each `render(state) -> uint8 [H, W, 3]` is a JAX function of one env's state
(`jax.jit` it, `jax.vmap` it over envs or over the states of an episode), so a
recorded episode is drawn inside the same program that plays it. Drawing is by
masks over the pixel grid (no Python loops over pixels or objects): a cell,
a rectangle, or the pixels within a half-width of a segment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BACKGROUND = (16, 16, 32)
FOREGROUND = (230, 230, 230)
BALL = (240, 200, 40)
PADDLE = (70, 160, 240)
CART = (70, 160, 240)
POLE = (220, 120, 60)
TRACK = (120, 120, 120)


def canvas(height: int, width: int) -> jax.Array:
    return jnp.broadcast_to(jnp.asarray(BACKGROUND, jnp.uint8), (height, width, 3))


def paint(image: jax.Array, mask: jax.Array, color) -> jax.Array:
    return jnp.where(mask[..., None], jnp.asarray(color, jnp.uint8), image)


def _pixel_grid(height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Pixel centres: rows [H, 1] and columns [1, W], float32."""
    rows = jnp.arange(height, dtype=jnp.float32)[:, None] + 0.5
    cols = jnp.arange(width, dtype=jnp.float32)[None, :] + 0.5
    return rows, cols


def grid_cells(height: int, width: int, cells: list[tuple[jax.Array, jax.Array, tuple]],
               scale: int) -> jax.Array:
    """A `height x width` grid drawn `scale` pixels a cell: each of `cells` is
    (row, col, color), int32 scalars; later ones paint over earlier ones."""
    rows = jnp.arange(height * scale)[:, None] // scale
    cols = jnp.arange(width * scale)[None, :] // scale
    image = canvas(height * scale, width * scale)
    for row, col, color in cells:
        image = paint(image, (rows == row) & (cols == col), color)
    return image


def segment_mask(height: int, width: int, start, end, half_width: float) -> jax.Array:
    """bool [H, W]: pixels whose centre lies within `half_width` of the segment
    from `start` to `end` ((row, col) pixel coordinates, float)."""
    rows, cols = _pixel_grid(height, width)
    r0, c0 = start
    r1, c1 = end
    dr, dc = r1 - r0, c1 - c0
    length2 = jnp.maximum(dr * dr + dc * dc, 1e-12)
    t = jnp.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0.0, 1.0)
    dist2 = (rows - (r0 + t * dr)) ** 2 + (cols - (c0 + t * dc)) ** 2
    return dist2 <= half_width**2


def rect_mask(height: int, width: int, top, left, bottom, right) -> jax.Array:
    """bool [H, W]: pixels whose centre lies in the rectangle (pixel coordinates)."""
    rows, cols = _pixel_grid(height, width)
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
