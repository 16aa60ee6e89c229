"""DeepSea in JAX: bsuite's hard-exploration chain (Osband et al. 2020, "Behaviour
Suite for Reinforcement Learning", its `deep_sea` experiment; introduced in
Osband et al. 2019, "Deep Exploration via Randomized Value Functions").

An `size x size` grid. The agent starts in the top-left cell and falls one row
per step, moving one column left or right as it falls (clipped at the
borders); the episode terminates after `size` steps, when it leaves the
bottom row. Every move to the right costs `0.01 / size`; moving right from
the bottom-right cell pays +1. So the one rewarding episode is `size` moves
right in a row (return 0.99), and every episode that moves left at least
once returns at most 0: a dithering policy (epsilon-greedy) finds the
treasure with probability 2^-size per episode.

Which of the two actions means "right" is drawn per cell, once, from
`mapping_seed` (bsuite's `randomize_actions=True`, the only setting bsuite
calls DeepSea): an agent cannot generalise "action 1 is right" across cells.
The deterministic version (bsuite's default); no stochastic moves or noisy
end rewards.

Observation: float32 `[size, size]`, 1.0 at the agent's cell; after the last
step all zeros (bsuite's terminal observation).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv, int_arg

MOVE_COST = 0.01  # bsuite's `unscaled_move_cost`, divided by size per move
TREASURE = (240, 200, 40)
DIVER = (70, 160, 240)


class DeepSeaState(NamedTuple):
    """int32 scalars: the agent's row (= steps taken) and column."""

    row: jax.Array
    column: jax.Array


def action_mapping(size: int, mapping_seed: int) -> np.ndarray:
    """int32 [size, size]: the action that moves right in each cell (0 or 1)."""
    key = jax.random.PRNGKey(mapping_seed)
    return np.asarray(jax.random.bernoulli(key, 0.5, (size, size)), np.int32)


def _observe(state: DeepSeaState, size: int) -> jax.Array:
    inside = state.row < size
    obs = jnp.zeros((size, size), jnp.float32)
    return obs.at[jnp.minimum(state.row, size - 1), state.column].set(
        jnp.where(inside, 1.0, 0.0))


def make_deep_sea(size: int = 10, mapping_seed: int = 0) -> JaxEnv:
    """DeepSea of side `size` as a `JaxEnv` named `jax:DeepSea` (2 actions), its
    actions' meaning per cell drawn from `mapping_seed`.

    Episodes last exactly `size` steps; `max_episode_steps = size + 1`, so the
    env never truncates. The optimal return is 0.99; bsuite counts an agent as
    having solved DeepSea when it keeps finding the treasure.
    """
    size = int_arg("size", size, 2)
    mapping_seed = int_arg("mapping_seed", mapping_seed, 0)
    right_action = jnp.asarray(action_mapping(size, mapping_seed))
    cost = MOVE_COST / size

    def reset(key: jax.Array) -> tuple[DeepSeaState, jax.Array]:
        del key  # every episode starts in the top-left cell
        state = DeepSeaState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return state, _observe(state, size)

    def step(key: jax.Array, state: DeepSeaState, action: jax.Array):
        del key  # deterministic dynamics
        right = action.astype(jnp.int32) == right_action[state.row, state.column]
        treasure = right & (state.column == size - 1)
        reward = (jnp.where(treasure, 1.0, 0.0) - jnp.where(right, cost, 0.0)).astype(
            jnp.float32)
        column = jnp.clip(state.column + jnp.where(right, 1, -1), 0, size - 1)
        new_state = DeepSeaState(state.row + 1, column.astype(jnp.int32))
        terminated = new_state.row >= size
        return new_state, _observe(new_state, size), reward, terminated, jnp.zeros((), bool)

    spec = EnvSpec(name="jax:DeepSea", obs_shape=(size, size), obs_dtype=np.float32,
                   num_actions=2, max_episode_steps=size + 1)
    return JaxEnv(spec, reset, step, functools.partial(render_deep_sea, size=size))


def render_deep_sea(state: DeepSeaState, size: int, scale: int = 12) -> jax.Array:
    """uint8 [size * scale, size * scale, 3]: the grid with the treasure's cell
    (bottom right) and the diver in front of it."""
    return render.grid_cells(size, size, [
        (jnp.int32(size - 1), jnp.int32(size - 1), TREASURE),
        (jnp.minimum(state.row, size - 1), state.column, DIVER)], scale)
