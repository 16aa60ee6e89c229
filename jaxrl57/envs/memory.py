"""Memory tasks in JAX: environments where acting well needs a recurrent agent (R2D2).

`jax:MaskedCartPole-v1`: CartPole-v1 (the dynamics, termination, reward and truncation of
`jaxrl57.envs.cartpole`) with the velocities hidden, the usual partially observed version of
CartPole (POPGym's `StatelessCartPole`, Morad et al. 2023). The observation is float32
`[x, theta]`; an agent must infer `x_dot` and `theta_dot` from successive positions.

`jax:MaskedPendulum-v1`: Pendulum-v1 (the dynamics, reward and truncation of
`jaxrl57.envs.pendulum`) with the angular velocity hidden, POPGym's `StatelessPendulum`
(Morad et al. 2023). The observation is float32 `[cos(theta), sin(theta)]`; the action is
the torque, float32 `[1]`, as in Pendulum-v1.

`jax:MemoryChain`: "remember the first observation", the T-maze of Bakker (2002,
"Reinforcement learning with long short-term memory") in the form of bsuite's
`memory_len` (Osband et al. 2020). At reset a cue `c`, uniform over `num_cues`, is shown
once; `length` cue-free observations follow; on the last of them (the query) the agent
must answer with action `c`. See `make_memory_chain` for the layout and the returns.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv, int_arg
from jaxrl57.envs.cartpole import CartPoleState, make_cartpole, render_cartpole
from jaxrl57.envs.pendulum import PendulumState, make_pendulum, render_pendulum

# ---------------------------------------------------------------- MaskedCartPole

_POSITIONS = np.array([0, 2])  # x, theta in cartpole's [x, x_dot, theta, theta_dot]


def make_masked_cartpole() -> JaxEnv:
    """CartPole-v1 with the velocities hidden, a `JaxEnv` named `jax:MaskedCartPole-v1`.

    2 actions; obs float32 `[2]` = `(x, theta)`; the state is cartpole's `CartPoleState`
    (full physics), so every transition, reward, termination and truncation (500 steps)
    is exactly that of `jax:CartPole-v1`. The optimal return is 500, as for CartPole, but
    a policy that sees only the current observation has no velocities to act on; memory
    (a recurrent core, or frame stacking) gives them back.
    """
    cartpole = make_cartpole()

    def reset(key: jax.Array) -> tuple[CartPoleState, jax.Array]:
        state, obs = cartpole.reset(key)
        return state, obs[_POSITIONS]

    def step(key: jax.Array, state: CartPoleState, action: jax.Array):
        state, obs, reward, terminated, truncated = cartpole.step(key, state, action)
        return state, obs[_POSITIONS], reward, terminated, truncated

    spec = EnvSpec(
        name="jax:MaskedCartPole-v1",
        obs_shape=(2,),
        obs_dtype=np.float32,
        num_actions=cartpole.spec.num_actions,
        max_episode_steps=cartpole.spec.max_episode_steps,
    )
    return JaxEnv(spec, reset, step, render_cartpole)


# ---------------------------------------------------------------- MaskedPendulum

_ANGLE = np.array([0, 1])  # cos, sin of theta in pendulum's [cos, sin, theta_dot]


def make_masked_pendulum() -> JaxEnv:
    """Pendulum-v1 with the angular velocity hidden, a `JaxEnv` named
    `jax:MaskedPendulum-v1`.

    Torque float32 `[1]` in [-2, 2]; obs float32 `[2]` = `(cos(theta), sin(theta))`; the
    state is pendulum's `PendulumState` (full physics), so every transition, reward and
    truncation (200 steps) is exactly that of `jax:Pendulum-v1`. Swinging up and
    balancing needs theta_dot (the reward penalises it, and the torque to apply depends on
    it), which a policy that sees only the current observation cannot know; memory gives
    it back.
    """
    pendulum = make_pendulum()

    def reset(key: jax.Array) -> tuple[PendulumState, jax.Array]:
        state, obs = pendulum.reset(key)
        return state, obs[_ANGLE]

    def step(key: jax.Array, state: PendulumState, action: jax.Array):
        state, obs, reward, terminated, truncated = pendulum.step(key, state, action)
        return state, obs[_ANGLE], reward, terminated, truncated

    spec = EnvSpec(
        name="jax:MaskedPendulum-v1",
        obs_shape=(2,),
        obs_dtype=np.float32,
        num_actions=None,
        action_low=pendulum.spec.action_low,
        action_high=pendulum.spec.action_high,
        max_episode_steps=pendulum.spec.max_episode_steps,
    )
    return JaxEnv(spec, reset, step, render_pendulum)


# ---------------------------------------------------------------- MemoryChain


class MemoryChainState(NamedTuple):
    """int32 scalars: the cue to remember, steps taken."""

    cue: jax.Array
    t: jax.Array


def make_memory_chain(length: int = 10, num_cues: int = 2) -> JaxEnv:
    """The remember-the-cue task as a `JaxEnv` named `jax:MemoryChain`.

    Args:
      length: number of steps between the cue and the answer (>= 1): the cue is seen at
        t = 0 and must be answered at t = `length`.
      num_cues: number of cues (>= 2), which is also the number of actions.

    Observation at time t (t = 0 after `reset`, t = k after the k-th `step`): float32
    `[num_cues + 2]` = `(cue one-hot [num_cues], query flag, t / length)`. The one-hot is
    the cue at t = 0 and zeros afterwards; the query flag is 1.0 at t = `length` (the
    step whose action is the answer) and 0.0 elsewhere; the time channel goes from 0.0 at
    the cue to 1.0 at the query (clipped at 1.0 on the final observation, t = length + 1).

    Dynamics: the actions at t = 0 .. length - 1 do nothing and earn reward 0; the action
    at t = `length` earns +1 if it equals the cue and -1 otherwise, and the episode
    terminates: every episode lasts exactly `length + 1` steps, so it never truncates
    (`max_episode_steps = length + 1`).

    Returns: a recurrent (or any history-using) policy can answer right every time, so
    the optimal return is +1. The query observation is the same for every cue, so a
    memoryless policy answers right with probability exactly `1 / num_cues` whatever it
    does: its best expected return is `2 / num_cues - 1` (0 for 2 cues, chance level),
    which is also the uniformly random policy's.
    """
    length = int_arg("length", length, 1)
    num_cues = int_arg("num_cues", num_cues, 2)

    def render(state: MemoryChainState) -> jax.Array:
        cue = jax.nn.one_hot(state.cue, num_cues, dtype=jnp.float32) * (state.t == 0)
        query = (state.t == length).astype(jnp.float32)
        time = jnp.minimum(state.t, length).astype(jnp.float32) / length
        return jnp.concatenate([cue, jnp.stack([query, time])])

    def reset(key: jax.Array) -> tuple[MemoryChainState, jax.Array]:
        cue = jax.random.randint(key, (), 0, num_cues, jnp.int32)
        state = MemoryChainState(cue, jnp.zeros((), jnp.int32))
        return state, render(state)

    def step(key: jax.Array, state: MemoryChainState, action: jax.Array):
        del key  # deterministic dynamics
        answered = state.t == length
        correct = action.astype(jnp.int32) == state.cue
        reward = jnp.where(answered, jnp.where(correct, 1.0, -1.0), 0.0).astype(jnp.float32)
        new_state = MemoryChainState(state.cue, state.t + 1)
        terminated = new_state.t >= length + 1
        truncated = jnp.zeros_like(terminated)  # episodes end at length + 1 = max steps
        return new_state, render(new_state), reward, terminated, truncated

    spec = EnvSpec(
        name="jax:MemoryChain",
        obs_shape=(num_cues + 2,),
        obs_dtype=np.float32,
        num_actions=num_cues,
        max_episode_steps=length + 1,
    )
    return JaxEnv(spec, reset, step,
                  functools.partial(render_memory_chain, length=length))


CUE_COLORS = ((240, 200, 40), (220, 80, 80), (80, 200, 120), (170, 110, 230))


def render_memory_chain(state: MemoryChainState, length: int, scale: int = 16) -> jax.Array:
    """uint8 [2 * scale, (length + 1) * scale, 3]: the top row shows the cue in its
    colour at t = 0 only (as the agent sees it), the bottom row the agent's place
    on the way to the query cell (grey, the last one)."""
    cue_color = jnp.asarray(CUE_COLORS, jnp.uint8)[state.cue % len(CUE_COLORS)]
    cue_row = jnp.where(state.t == 0, 0, -1)  # off the grid once the cue is gone
    return render.grid_cells(2, length + 1, [
        (jnp.int32(1), jnp.int32(length), render.TRACK),
        (jnp.int32(1), jnp.minimum(state.t, length), render.PADDLE),
        (cue_row, jnp.int32(0), cue_color)], scale)
