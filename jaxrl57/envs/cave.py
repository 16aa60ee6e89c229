"""CAVE in JAX: the side-scrolling cave game of the Keras DQN article.

The screen is a `size x size` grid (row 0 at the top). Each screen column `c` has a free
passage between rows `ceil[c]` and `floor[c]` inclusive; everything above and below is
wall. The player sits in the fixed column `px = size // 4`.

Each step:
  1. the player moves up one row (action 1) or falls one row (action 0);
  2. the cave scrolls left by one column; the new right-most column is a random walk from
     the previous right-most one: the ceiling and the floor each move by -1, 0 or +1
     (uniformly), then are clipped so that the passage keeps `min_gap = size // 3` to
     `max_gap = size // 2` free rows and rows 0 and `size - 1` always stay wall;
  3. if the player's cell is wall, the episode terminates.

Reward: +1 for every step survived, 0 on the crashing step, so the undiscounted return is
the number of steps survived. The env truncates after `max_episode_steps = 1000` steps.
Consecutive columns' passages overlap by at least `min_gap - 2` rows and the player moves
one row per step, so a perfect player survives forever.

Observation: uint8 `[size, size, frames]`, the last `frames` frames, oldest first, newest at
`[..., -1]`; in a frame, walls are 255, the player 128, free cells 0 (scale by 1/255 like
Atari pixels). The env keeps the stack in its state; at reset every slot holds the first
frame. There are no obstacles inside the passage (the article's later version had some).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv, int_arg

MAX_EPISODE_STEPS = 1000
WALL = 255
PLAYER = 128


class CaveState(NamedTuple):
    """ceil, floor: int32 [size] first and last free row of each screen column;
    player_row: int32 scalar; frames: uint8 [size, size, frames]; t: int32 steps taken."""

    ceil: jax.Array
    floor: jax.Array
    player_row: jax.Array
    frames: jax.Array
    t: jax.Array


def make_cave(size: int = 48, frames: int = 4) -> JaxEnv:
    """CAVE on a `size x size` screen with `frames` stacked frames, as a `JaxEnv` named
    `jax:Cave` (2 actions: 0 fall, 1 up; obs uint8 [size, size, frames])."""
    size = int_arg("size", size, 12)
    frames = int_arg("frames", frames, 1)
    min_gap, max_gap = size // 3, size // 2
    px = size // 4
    rows = jnp.arange(size, dtype=jnp.int32)[:, None]

    def next_column(key, ceil, floor):
        d_ceil, d_floor = jax.random.randint(key, (2,), -1, 2, jnp.int32)
        new_ceil = jnp.clip(ceil + d_ceil, 1, size - 1 - min_gap)
        lo = new_ceil + min_gap - 1
        hi = jnp.minimum(new_ceil + max_gap - 1, size - 2)
        return new_ceil, jnp.clip(floor + d_floor, lo, hi)

    def render(ceil, floor, player_row):
        wall = (rows < ceil[None, :]) | (rows > floor[None, :])
        frame = jnp.where(wall, WALL, 0).astype(jnp.uint8)
        return frame.at[jnp.clip(player_row, 0, size - 1), px].set(PLAYER)

    def reset(key: jax.Array) -> tuple[CaveState, jax.Array]:
        ceil0 = jnp.asarray((size - max_gap) // 2, jnp.int32)
        floor0 = ceil0 + max_gap - 1

        def gen(carry, k):
            c, f = next_column(k, *carry)
            return (c, f), (c, f)

        _, (ceil, floor) = jax.lax.scan(gen, (ceil0, floor0), jax.random.split(key, size))
        player_row = (ceil[px] + floor[px]) // 2
        frame = render(ceil, floor, player_row)
        stack = jnp.repeat(frame[..., None], frames, axis=-1)
        state = CaveState(ceil, floor, player_row, stack, jnp.zeros((), jnp.int32))
        return state, stack

    def step(key: jax.Array, state: CaveState, action: jax.Array):
        player_row = state.player_row + jnp.where(action == 1, -1, 1).astype(jnp.int32)
        new_ceil, new_floor = next_column(key, state.ceil[-1], state.floor[-1])
        ceil = jnp.concatenate([state.ceil[1:], new_ceil[None]])
        floor = jnp.concatenate([state.floor[1:], new_floor[None]])
        terminated = (player_row < ceil[px]) | (player_row > floor[px])
        frame = render(ceil, floor, player_row)
        stack = jnp.concatenate([state.frames[..., 1:], frame[..., None]], axis=-1)
        t = state.t + 1
        truncated = (t >= MAX_EPISODE_STEPS) & ~terminated
        reward = jnp.where(terminated, 0.0, 1.0).astype(jnp.float32)
        return CaveState(ceil, floor, player_row, stack, t), stack, reward, terminated, truncated

    spec = EnvSpec(
        name="jax:Cave",
        obs_shape=(size, size, frames),
        obs_dtype=np.uint8,
        num_actions=2,
        max_episode_steps=MAX_EPISODE_STEPS,
    )
    return JaxEnv(spec, reset, step, render_cave)


def render_cave(state: CaveState, scale: int = 4) -> jax.Array:
    """uint8 [size * scale, size * scale, 3]: the newest frame of the state's stack,
    walls, passage and player in colour, `scale` pixels a cell."""
    frame = state.frames[..., -1]
    image = jnp.where((frame == WALL)[..., None], jnp.asarray(render.FOREGROUND, jnp.uint8),
                      jnp.asarray(render.BACKGROUND, jnp.uint8))
    image = jnp.where((frame == PLAYER)[..., None], jnp.asarray(render.BALL, jnp.uint8), image)
    return jnp.repeat(jnp.repeat(image, scale, axis=0), scale, axis=1)
