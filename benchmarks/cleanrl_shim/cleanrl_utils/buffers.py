"""A NumPy `ReplayBuffer` with the interface of CleanRL's `cleanrl_utils.buffers`.

Written anew for the calls of `ddpg_continuous_action_jax.py`; it keeps the
semantics of CleanRL's (stable-baselines3's) buffer: storage [buffer_size,
n_envs, ...] written in a ring, `sample` draws `batch_size` indices uniformly
with replacement with `np.random.randint` (then an env index per sample, as
CleanRL does, so the global NumPy stream is drawn the same way), observations,
actions [B, act_dim], next observations, dones [B, 1] (the stored terminations:
`handle_timeout_termination=False`) and rewards [B, 1]. The samples are NumPy
arrays with torch's `.numpy()`, in place of CPU tensors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces


class _Tensor(np.ndarray):
    """A NumPy array that also answers torch's `.numpy()`."""

    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)


class ReplayBufferSamples(NamedTuple):
    observations: _Tensor
    actions: _Tensor
    next_observations: _Tensor
    dones: _Tensor
    rewards: _Tensor


class ReplayBuffer:
    """Uniform replay of (obs, action, next_obs, done, reward) for Box spaces."""

    def __init__(self, buffer_size: int, observation_space: spaces.Space,
                 action_space: spaces.Space, device: Any = "auto", n_envs: int = 1,
                 optimize_memory_usage: bool = False, handle_timeout_termination: bool = True):
        if not (isinstance(observation_space, spaces.Box) and isinstance(action_space, spaces.Box)):
            raise NotImplementedError("this stand-in stores Box observations and actions only")
        if optimize_memory_usage or handle_timeout_termination:
            raise NotImplementedError("this stand-in supports optimize_memory_usage=False and "
                                      "handle_timeout_termination=False only")
        self.n_envs = n_envs
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.obs_shape = observation_space.shape
        self.action_dim = int(np.prod(action_space.shape))
        act_dtype = np.float32 if action_space.dtype == np.float64 else action_space.dtype
        n = (self.buffer_size, n_envs)
        self.observations = np.zeros((*n, *self.obs_shape), dtype=observation_space.dtype)
        self.next_observations = np.zeros((*n, *self.obs_shape), dtype=observation_space.dtype)
        self.actions = np.zeros((*n, self.action_dim), dtype=act_dtype)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.dones = np.zeros(n, dtype=np.float32)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        return self.buffer_size if self.full else self.pos

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        """Stores one vector step: obs, next_obs [n_envs, ...], action, reward, done [n_envs]."""
        self.observations[self.pos] = np.array(obs)
        self.next_observations[self.pos] = np.array(next_obs)
        self.actions[self.pos] = np.array(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = np.array(reward)
        self.dones[self.pos] = np.array(done)
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def sample(self, batch_size: int) -> ReplayBufferSamples:
        """`batch_size` stored transitions drawn uniformly with replacement."""
        idx = np.random.randint(0, self.size(), size=batch_size)
        env = np.random.randint(0, high=self.n_envs, size=(len(idx),))
        data = (self.observations[idx, env], self.actions[idx, env],
                self.next_observations[idx, env], self.dones[idx, env].reshape(-1, 1),
                self.rewards[idx, env].reshape(-1, 1))
        return ReplayBufferSamples(*(np.array(x).view(_Tensor) for x in data))
