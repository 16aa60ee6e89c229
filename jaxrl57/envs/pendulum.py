"""Pendulum-v1 in JAX, the inverted-pendulum swing-up, as in gymnasium.

Dynamics, constants, reward and reset follow gymnasium's `PendulumEnv`
(`gymnasium/envs/classic_control/pendulum.py`, euler integration; g = 10, m = 1, l = 1,
dt = 0.05, max torque 2, max speed 8). With theta = 0 upright and positive
counter-clockwise, a step with torque u first clips u to [-2, 2], then

    cost        = angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2
    theta_dot'  = clip(theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, -8, 8)
    theta'      = theta + theta_dot' dt

where angle_normalize(x) = ((x + pi) mod 2 pi) - pi. The reward is -cost, computed from
the state before the step (as gymnasium does); it lies in [-16.27, 0]. Reset draws
theta ~ U(-pi, pi) and theta_dot ~ U(-1, 1). The episode never terminates and truncates
after 200 steps (gymnasium's `TimeLimit` of Pendulum-v1). The action is float32 `[1]`
(the torque); observations are float32 `[cos(theta), sin(theta), theta_dot]`. theta is
not wrapped in the state, as in gymnasium. Unlike gymnasium (float64 state), the state
is float32.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv

GRAVITY = 10.0
MASS = 1.0
LENGTH = 1.0
DT = 0.05
MAX_TORQUE = 2.0
MAX_SPEED = 8.0
MAX_EPISODE_STEPS = 200


class PendulumState(NamedTuple):
    """physics: float32 [2] = (theta, theta_dot); t: int32 steps taken."""

    physics: jax.Array
    t: jax.Array


def angle_normalize(x: jax.Array) -> jax.Array:
    """x wrapped into [-pi, pi) (gymnasium's `angle_normalize`)."""
    return jnp.mod(x + jnp.pi, 2 * jnp.pi) - jnp.pi


def pendulum_obs(physics: jax.Array) -> jax.Array:
    """float32 [3] = (cos(theta), sin(theta), theta_dot) of `physics` = (theta, theta_dot)."""
    theta, theta_dot = physics
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot]).astype(jnp.float32)


def _reset(key: jax.Array) -> tuple[PendulumState, jax.Array]:
    high = jnp.array([math.pi, 1.0], jnp.float32)
    physics = jax.random.uniform(key, (2,), jnp.float32, -high, high)
    return PendulumState(physics, jnp.zeros((), jnp.int32)), pendulum_obs(physics)


def _step(key: jax.Array, state: PendulumState, action: jax.Array):
    del key  # deterministic dynamics
    theta, theta_dot = state.physics
    # Accepts a scalar as well as the spec's [1]; gymnasium takes u[0] after clipping.
    u = jnp.clip(jnp.reshape(action, (-1,))[0].astype(jnp.float32), -MAX_TORQUE, MAX_TORQUE)
    cost = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2
    theta_dot = theta_dot + (
        3 * GRAVITY / (2 * LENGTH) * jnp.sin(theta) + 3.0 / (MASS * LENGTH**2) * u) * DT
    theta_dot = jnp.clip(theta_dot, -MAX_SPEED, MAX_SPEED)
    theta = theta + theta_dot * DT
    physics = jnp.stack([theta, theta_dot]).astype(jnp.float32)
    t = state.t + 1
    terminated = jnp.zeros((), jnp.bool_)
    truncated = t >= MAX_EPISODE_STEPS
    reward = (-cost).astype(jnp.float32)
    return PendulumState(physics, t), pendulum_obs(physics), reward, terminated, truncated


def make_pendulum() -> JaxEnv:
    """Pendulum-v1 as a `JaxEnv` named `jax:Pendulum-v1` (continuous torque float32 [1]
    in [-2, 2], obs float32 [3])."""
    spec = EnvSpec(
        name="jax:Pendulum-v1",
        obs_shape=(3,),
        obs_dtype=np.float32,
        num_actions=None,
        action_low=(-MAX_TORQUE,),
        action_high=(MAX_TORQUE,),
        max_episode_steps=MAX_EPISODE_STEPS,
    )
    return JaxEnv(spec, _reset, _step, render_pendulum)


# The drawing of gymnasium's Pendulum-v1 (`classic_control/pendulum.py`), scaled down:
# the image spans +-2.2 rod lengths around the pivot, the rod is 0.2 rod lengths wide
# with rounded ends, the axle a dot at the centre. Gymnasium's torque arrow is left
# out: it shows the last action, which the state does not hold.
RENDER_SIZE = 132
_SCALE = RENDER_SIZE / (2 * 2.2)  # pixels per rod length
_PIVOT = RENDER_SIZE / 2


def render_pendulum(state: PendulumState) -> jax.Array:
    """uint8 [132, 132, 3]: the rod from the pivot (the image's centre) at angle theta,
    pointing up at theta = 0 and turning counter-clockwise as theta grows."""
    theta = state.physics[0]
    tip = (_PIVOT - jnp.cos(theta) * LENGTH * _SCALE, _PIVOT - jnp.sin(theta) * LENGTH * _SCALE)
    image = render.canvas(RENDER_SIZE, RENDER_SIZE)
    image = render.paint(image, render.segment_mask(RENDER_SIZE, RENDER_SIZE, (_PIVOT, _PIVOT),
                                                     tip, 0.1 * _SCALE), render.POLE)
    # A segment of zero length: the disc of the axle.
    return render.paint(image, render.segment_mask(RENDER_SIZE, RENDER_SIZE, (_PIVOT, _PIVOT),
                                                    (_PIVOT, _PIVOT), 0.05 * _SCALE),
                        render.FOREGROUND)
