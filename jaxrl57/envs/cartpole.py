"""CartPole-v1 in JAX (Barto, Sutton & Anderson 1983), as in gymnasium.

Dynamics, constants and termination follow gymnasium's `CartPoleEnv`
(`gymnasium/envs/classic_control/cartpole.py`, euler integration):

    temp     = (F + m_p l theta_dot^2 sin(theta)) / (m_c + m_p)
    theta_dd = (g sin(theta) - cos(theta) temp) / (l (4/3 - m_p cos^2(theta) / (m_c + m_p)))
    x_dd     = temp - m_p l theta_dd cos(theta) / (m_c + m_p)

with F = +10 for action 1 and -10 for action 0, then x += tau x_dot, x_dot += tau x_dd,
theta += tau theta_dot, theta_dot += tau theta_dd (tau = 0.02). The episode terminates when
|x| > 2.4 or |theta| > 12 degrees; the reward is 1 on every step, the terminal one included;
the env truncates after 500 steps. Observations are float32 `[x, x_dot, theta, theta_dot]`.
Unlike gymnasium (float64 state), the state is float32.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs import render
from jaxrl57.envs.base import EnvSpec, JaxEnv

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
LENGTH = 0.5  # half the pole's length
POLE_MASS_LENGTH = MASS_POLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
MAX_EPISODE_STEPS = 500


class CartPoleState(NamedTuple):
    """physics: float32 [4] = (x, x_dot, theta, theta_dot); t: int32 steps taken."""

    physics: jax.Array
    t: jax.Array


def _reset(key: jax.Array) -> tuple[CartPoleState, jax.Array]:
    physics = jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)
    return CartPoleState(physics, jnp.zeros((), jnp.int32)), physics


def _step(key: jax.Array, state: CartPoleState, action: jax.Array):
    del key  # deterministic dynamics
    x, x_dot, theta, theta_dot = state.physics
    force = jnp.where(action == 1, FORCE_MAG, -FORCE_MAG).astype(jnp.float32)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (
        LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS)
    )
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    x = x + TAU * x_dot
    x_dot = x_dot + TAU * x_acc
    theta = theta + TAU * theta_dot
    theta_dot = theta_dot + TAU * theta_acc
    physics = jnp.stack([x, x_dot, theta, theta_dot]).astype(jnp.float32)
    t = state.t + 1
    terminated = (jnp.abs(x) > X_THRESHOLD) | (jnp.abs(theta) > THETA_THRESHOLD)
    truncated = (t >= MAX_EPISODE_STEPS) & ~terminated
    reward = jnp.ones((), jnp.float32)
    return CartPoleState(physics, t), physics, reward, terminated, truncated


def make_cartpole() -> JaxEnv:
    """CartPole-v1 as a `JaxEnv` named `jax:CartPole-v1` (2 actions, obs float32 [4])."""
    spec = EnvSpec(
        name="jax:CartPole-v1",
        obs_shape=(4,),
        obs_dtype=np.float32,
        num_actions=2,
        max_episode_steps=MAX_EPISODE_STEPS,
    )
    return JaxEnv(spec, _reset, _step, render_cartpole)


# The drawing of gymnasium's CartPole-v1 (`classic_control/cartpole.py`), scaled
# down: the track spans +-X_THRESHOLD metres over the image's width.
RENDER_HEIGHT, RENDER_WIDTH = 120, 240
_SCALE = RENDER_WIDTH / (2 * X_THRESHOLD)  # pixels per metre
_CART_W, _CART_H = 0.4 * _SCALE, 0.24 * _SCALE
_TRACK_ROW = 0.8 * RENDER_HEIGHT


def render_cartpole(state: CartPoleState) -> jax.Array:
    """uint8 [120, 240, 3]: the track, the cart at x and the pole at angle theta
    (positive leans right), 2 * LENGTH long from the cart's top."""
    x, _, theta, _ = state.physics
    centre = RENDER_WIDTH / 2 + x * _SCALE
    top = _TRACK_ROW - _CART_H
    image = render.canvas(RENDER_HEIGHT, RENDER_WIDTH)
    image = render.paint(image, render.rect_mask(RENDER_HEIGHT, RENDER_WIDTH, _TRACK_ROW - 1,
                                                  0, _TRACK_ROW + 1, RENDER_WIDTH),
                          render.TRACK)
    image = render.paint(image, render.rect_mask(RENDER_HEIGHT, RENDER_WIDTH, top,
                                                  centre - _CART_W / 2, _TRACK_ROW,
                                                  centre + _CART_W / 2), render.CART)
    pole = 2 * LENGTH * _SCALE
    tip = (top - jnp.cos(theta) * pole, centre + jnp.sin(theta) * pole)
    return render.paint(image, render.segment_mask(RENDER_HEIGHT, RENDER_WIDTH, (top, centre),
                                                    tip, 0.04 * _SCALE), render.POLE)
