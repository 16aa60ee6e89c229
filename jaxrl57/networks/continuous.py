"""Networks for continuous actions: a deterministic policy and Q-critics on (obs, action).

Lillicrap et al. 2016 (DDPG), sec. 7: ReLU MLPs; the action enters the
critic's second layer there, here its input (as TD3's reference code and
CleanRL do); the last layers start uniform in [-3e-3, 3e-3], so initial
actions and values are near zero. The policy returns its unbounded output;
the agent maps it into the action bounds (tanh, clip, or nothing with
inverting gradients: `agents.ddpg`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxrl57.networks.torsos import MLPTorso

FINAL_INIT_SCALE = 3e-3  # Lillicrap et al. 2016, sec. 7


def _final_init(scale: float):
    return nn.initializers.uniform(2 * scale) if scale else nn.initializers.zeros


def _centered(init, scale: float):
    """`init` (uniform in [0, 2 scale)) shifted to [-scale, scale)."""

    def f(key, shape, dtype=jnp.float32):
        return init(key, shape, dtype) - scale

    return f


class DeterministicPolicy(nn.Module):
    """obs [..., *obs_shape] -> unbounded action [..., action_dim]."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        x = MLPTorso(self.hidden_sizes, self.obs_ndim)(obs)
        init = _centered(_final_init(FINAL_INIT_SCALE), FINAL_INIT_SCALE)
        return nn.Dense(self.action_dim, kernel_init=init, bias_init=init)(x)


class Critic(nn.Module):
    """(obs [..., *obs_shape], action [..., D]) -> Q [...]; `num_critics` > 1 gives
    independent critics stacked on a leading axis ([num_critics, ...], TD3's twins)."""

    hidden_sizes: Sequence[int] = (256, 256)
    obs_ndim: int = 1
    num_critics: int = 1

    @nn.compact
    def __call__(self, obs, action):
        flat = obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,)).astype(jnp.float32)
        x = jnp.concatenate([flat, action.astype(jnp.float32)], axis=-1)
        ensemble = nn.vmap(_OneCritic, variable_axes={"params": 0}, split_rngs={"params": True},
                           in_axes=None, axis_size=self.num_critics)
        return ensemble(self.hidden_sizes)(x)


class _OneCritic(nn.Module):
    hidden_sizes: Sequence[int]

    @nn.compact
    def __call__(self, x):
        x = MLPTorso(self.hidden_sizes, 1)(x)
        init = _centered(_final_init(FINAL_INIT_SCALE), FINAL_INIT_SCALE)
        return nn.Dense(1, kernel_init=init, bias_init=init)(x)[..., 0]
