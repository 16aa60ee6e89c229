"""Catch in JAX: the ball-catching game of the Keras DQN article (and of bsuite).

A `size x size` grid. At reset a ball appears in a uniformly random column of the top row
and the paddle (one cell wide, for every size) sits in the bottom row at column
`size // 2`. Each step the paddle moves left / stays / moves right (actions 0 / 1 / 2,
clipped at the borders) and then the ball falls one row. When the ball reaches the bottom
row, after `size - 1` steps, the episode terminates with reward +1 if the paddle is under
the ball and -1 otherwise; every other step has reward 0.

Observation: float32 `[size, size, 1]`, 1.0 at the ball's and the paddle's cells, 0.0
elsewhere (row 0 is the top).

Reference returns: the ball's column is uniform and independent of the paddle's, so any
policy that does not look at the ball catches it with probability exactly `1 / size`: a
random policy's expected return is `2 / size - 1` (-0.75 for size 8). The paddle needs at
most `size // 2 <= size - 1` moves to reach any column, so an optimal policy returns +1.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv, int_arg


class CatchState(NamedTuple):
    """int32 scalars: ball row and column, paddle column, steps taken."""

    ball_row: jax.Array
    ball_col: jax.Array
    paddle_col: jax.Array
    t: jax.Array


def _render(state: CatchState, size: int) -> jax.Array:
    obs = jnp.zeros((size, size, 1), jnp.float32)
    obs = obs.at[state.ball_row, state.ball_col, 0].set(1.0)
    return obs.at[size - 1, state.paddle_col, 0].set(1.0)


def make_catch(size: int = 8) -> JaxEnv:
    """Catch on a `size x size` grid as a `JaxEnv` named `jax:Catch` (3 actions).

    Episodes last exactly `size - 1` steps; `max_episode_steps = size`, so the env never
    truncates.
    """
    size = int_arg("size", size, 2)

    def reset(key: jax.Array) -> tuple[CatchState, jax.Array]:
        ball_col = jax.random.randint(key, (), 0, size, jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        state = CatchState(zero, ball_col, jnp.full((), size // 2, jnp.int32), zero)
        return state, _render(state, size)

    def step(key: jax.Array, state: CatchState, action: jax.Array):
        del key  # deterministic dynamics
        paddle_col = jnp.clip(state.paddle_col + action.astype(jnp.int32) - 1, 0, size - 1)
        ball_row = jnp.minimum(state.ball_row + 1, size - 1)
        t = state.t + 1
        new_state = CatchState(ball_row, state.ball_col, paddle_col, t)
        terminated = ball_row == size - 1
        caught = paddle_col == state.ball_col
        reward = jnp.where(terminated, jnp.where(caught, 1.0, -1.0), 0.0).astype(jnp.float32)
        truncated = (t >= size) & ~terminated
        return new_state, _render(new_state, size), reward, terminated, truncated

    spec = EnvSpec(
        name="jax:Catch",
        obs_shape=(size, size, 1),
        obs_dtype=np.float32,
        num_actions=3,
        max_episode_steps=size,
    )
    return JaxEnv(spec, reset, step, functools.partial(render_catch, size=size))


def render_catch(state: CatchState, size: int, scale: int = 16) -> jax.Array:
    """uint8 [size * scale, size * scale, 3]: the grid, `scale` pixels a cell, with
    the paddle and the ball (the ball in front, so a catch shows it on the paddle)."""
    return render.grid_cells(size, size, [
        (jnp.int32(size - 1), state.paddle_col, render.PADDLE),
        (state.ball_row, state.ball_col, render.BALL)], scale)
