"""n-step transitions from a batch of lockstep environments.

The n-step return (Sutton & Barto 2018, section 7.1), as used by Rainbow
(Hessel et al. 2018) and Ape-X / R2D2, for the transition starting at step t:

    R_t = sum_{k<K} gamma^k r_{t+k},   discount = gamma^K (0 if step t+K-1 terminated),

with `K = min(n, 1 + index of the first step in the window that ended the
episode)`. Truncation (time limit) ends the window but bootstraps from the
final observation; termination does not bootstrap. Steps after an episode
end within the window belong to the next episode and are ignored.

The state is a window of the last `n` steps for each of `E` environments;
push one step per call, then emit the transition that starts at the oldest
step of the window. All functions are pure and work under `jit` / `vmap`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.replay.base import EnvSteps, Transition


class NStepState(NamedTuple):
    """The last `n` steps of `E` environments, oldest first (index 0).

    steps: `EnvSteps` with leaves `[n, E, ...]` (action int32, reward float32,
    terminated and truncated bool); count: int32 scalar, steps pushed so far
    (saturates at `n`).
    """

    steps: EnvSteps
    count: jax.Array


def nstep_init(example_obs: jax.Array, num_envs: int, n: int, action_dtype=jnp.int32,
               action_shape: tuple[int, ...] = ()) -> NStepState:
    """Empty window for `num_envs` environments and `n` steps (both static).

    Args:
      example_obs: one observation without a batch axis (sets shape and dtype).
      num_envs: E.
      n: number of steps of the return, >= 1.
      action_dtype: dtype of stored actions (int32 for discrete actions).
      action_shape: shape of one action (() for discrete actions, `[D]` continuous).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    example_obs = jnp.asarray(example_obs)
    obs = jnp.zeros((n, num_envs) + example_obs.shape, example_obs.dtype)
    steps = EnvSteps(
        obs=obs,
        action=jnp.zeros((n, num_envs) + tuple(action_shape), action_dtype),
        reward=jnp.zeros((n, num_envs), jnp.float32),
        terminated=jnp.zeros((n, num_envs), bool),
        truncated=jnp.zeros((n, num_envs), bool),
        next_obs=obs,
    )
    return NStepState(steps=steps, count=jnp.zeros((), jnp.int32))


def _shift_in(window: jax.Array, new: jax.Array) -> jax.Array:
    return jnp.concatenate([window[1:], jnp.asarray(new, window.dtype)[None]], axis=0)


def nstep_push(
    state: NStepState,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    next_obs: jax.Array,
) -> NStepState:
    """Appends one step of all `E` environments, dropping the oldest.

    Args:
      obs: `[E, ...]` observation the action was taken in.
      action, reward: `[E]`.
      terminated, truncated: `[E]` bool.
      next_obs: `[E, ...]` the true next observation of this step (the final
        observation when the episode ended, not the reset observation).
    """
    n = state.steps.reward.shape[0]
    new = EnvSteps(obs, action, reward, terminated, truncated, next_obs)
    return NStepState(steps=EnvSteps(*map(_shift_in, state.steps, new)),
                      count=jnp.minimum(state.count + 1, n).astype(jnp.int32))


def nstep_emit(state: NStepState, gamma) -> tuple[Transition, jax.Array]:
    """The n-step transition of each env starting at the oldest step of the window.

    Returns:
      transition: `Transition` with leaves `[E, ...]`: obs and action of the
        oldest step, reward `sum_{k<K} gamma^k r_k`, discount `gamma^K` (0 if
        step K-1 terminated), next_obs of step K-1.
      valid: bool scalar, False until `n` steps have been pushed.
    """
    w = state.steps
    n = w.reward.shape[0]
    gamma = jnp.asarray(gamma, jnp.float32)
    done = (w.terminated | w.truncated).astype(jnp.int32)  # [n, E]
    # Step k is part of the return iff no earlier step in the window ended the episode.
    ended_before = jnp.cumsum(done, axis=0) - done
    included = ended_before == 0  # [n, E]; step 0 always included
    num_steps = jnp.sum(included, axis=0)  # K [E], in [1, n]
    powers = jnp.power(gamma, jnp.arange(n, dtype=jnp.float32))  # [n]
    reward = jnp.sum(jnp.where(included, powers[:, None] * w.reward, 0.0), axis=0)
    last = num_steps - 1  # [E]
    env = jnp.arange(w.reward.shape[1])
    terminated_last = w.terminated[last, env]
    discount = jnp.where(terminated_last, 0.0, jnp.power(gamma, num_steps.astype(jnp.float32)))
    transition = Transition(
        obs=w.obs[0],
        action=w.action[0],
        reward=reward.astype(jnp.float32),
        discount=discount.astype(jnp.float32),
        next_obs=w.next_obs[last, env],
    )
    return transition, state.count >= n
