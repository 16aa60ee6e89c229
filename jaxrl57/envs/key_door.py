"""KeyDoor in JAX: a sparse-reward gridworld whose episodes revisit states, for
the episodic memory of NGU (Badia et al. 2020a) to matter.

A `size x size` grid split by a wall at column `size // 2`, with one door in
it, in the top row. The agent starts in the top-left cell; the key lies in
the bottom-left cell; the goal is the bottom-right cell. The door opens only
to an agent holding the key (walking onto the key picks it up). Reaching the
goal pays +1 and terminates; every other step pays 0; an episode is truncated
after `2 * size**2` steps. The shortest episode goes down to the key, back up
past the start to the door, and down to the goal (`4 * (size - 1)` steps:
28 at size 8).

Why this layout: the way back from the key to the door crosses the cells the
agent has just walked through, so within one episode the agent must return to
places it has seen (the revisits NGU's episodic novelty scores against), and
with the key the same cells are new states. It is the structure of MiniGrid's
DoorKey in a fixed layout, written in JAX so that the whole training loop runs
in one program (`runners.on_device`) and on small networks. MiniGrid allows
`10 * size**2` steps; `2 * size**2` keeps a uniformly random policy's chance
of the goal at about 1 in 680 episodes at size 8 and 1 in 930 at size 10
(`tests/test_key_door.py` checks it), so dithering exploration rarely sees a
reward, while an agent that covers each room once per episode has time to.

Observation: float32 `[size, size, 2]`: channel 0 is 1 at the agent's cell,
channel 1 is 1 at the key's cell while the key lies on the floor. The walls,
door and goal never move, so they are not observed. Actions: 0 up, 1 down,
2 left, 3 right; a move into the outer border, the wall or a closed door
leaves the agent where it is.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv, int_arg

# Row and column offsets of actions 0-3: up, down, left, right.
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)
WALL = (110, 110, 120)
DOOR = (160, 100, 40)
KEY = (240, 200, 40)
GOAL = (80, 200, 90)
AGENT = (70, 160, 240)


class KeyDoorState(NamedTuple):
    """int32 scalars (the agent's row and column, the steps taken) and a bool
    (the key is held)."""

    row: jax.Array
    column: jax.Array
    has_key: jax.Array
    t: jax.Array


class Layout(NamedTuple):
    """The fixed cells of a `size` grid, as (row, column) ints."""

    size: int
    wall_column: int
    door: tuple[int, int]
    key: tuple[int, int]
    goal: tuple[int, int]


def layout(size: int) -> Layout:
    wall = size // 2
    return Layout(size, wall, (0, wall), (size - 1, 0), (size - 1, size - 1))


def shortest_path(size: int) -> int:
    """Steps of the shortest rewarding episode: to the key, to the door, to the goal."""
    lay = layout(size)
    return ((lay.key[0] - 0) + (lay.key[0] - lay.door[0]) + lay.door[1]
            + (lay.goal[0] - lay.door[0]) + (lay.goal[1] - lay.door[1]))


def _observe(state: KeyDoorState, lay: Layout) -> jax.Array:
    obs = jnp.zeros((lay.size, lay.size, 2), jnp.float32)
    obs = obs.at[state.row, state.column, 0].set(1.0)
    return obs.at[lay.key[0], lay.key[1], 1].set(jnp.where(state.has_key, 0.0, 1.0))


def make_key_door(size: int = 10) -> JaxEnv:
    """KeyDoor of side `size` (>= 5) as a `JaxEnv` named `jax:KeyDoor` (4 actions)."""
    size = int_arg("size", size, 5)
    lay = layout(size)
    max_steps = 2 * size * size
    moves = jnp.asarray(MOVES)

    def reset(key: jax.Array) -> tuple[KeyDoorState, jax.Array]:
        del key  # every episode starts in the same cell
        zero = jnp.zeros((), jnp.int32)
        state = KeyDoorState(zero, zero, jnp.zeros((), bool), zero)
        return state, _observe(state, lay)

    def step(key: jax.Array, state: KeyDoorState, action: jax.Array):
        del key  # deterministic dynamics
        move = moves[action.astype(jnp.int32)]
        row = jnp.clip(state.row + move[0], 0, size - 1)
        column = jnp.clip(state.column + move[1], 0, size - 1)
        at_door = (row == lay.door[0]) & (column == lay.door[1])
        blocked = (column == lay.wall_column) & ~(at_door & state.has_key)
        row = jnp.where(blocked, state.row, row)
        column = jnp.where(blocked, state.column, column)
        has_key = state.has_key | ((row == lay.key[0]) & (column == lay.key[1]))
        new_state = KeyDoorState(row, column, has_key, state.t + 1)
        terminated = (row == lay.goal[0]) & (column == lay.goal[1])
        truncated = (new_state.t >= max_steps) & ~terminated
        reward = jnp.where(terminated, 1.0, 0.0).astype(jnp.float32)
        return new_state, _observe(new_state, lay), reward, terminated, truncated

    spec = EnvSpec(name="jax:KeyDoor", obs_shape=(size, size, 2), obs_dtype=np.float32,
                   num_actions=4, max_episode_steps=max_steps)
    return JaxEnv(spec, reset, step, functools.partial(render_key_door, lay=lay))


def render_key_door(state: KeyDoorState, lay: Layout, scale: int = 12) -> jax.Array:
    """uint8 [size * scale, size * scale, 3]: the wall, the door (while closed to the
    agent), the key (while on the floor), the goal and the agent."""
    on_floor = ~state.has_key
    cells = [(jnp.int32(r), jnp.int32(lay.wall_column), WALL) for r in range(lay.size)]
    cells += [(jnp.int32(lay.door[0]), jnp.int32(lay.door[1]), DOOR),
              (jnp.where(on_floor, lay.key[0], -1), jnp.int32(lay.key[1]), KEY),
              (jnp.int32(lay.goal[0]), jnp.int32(lay.goal[1]), GOAL),
              (state.row, state.column, AGENT)]
    return render.grid_cells(lay.size, lay.size, cells, scale)
