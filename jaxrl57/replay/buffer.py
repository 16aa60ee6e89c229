"""Transition replay as one bundle of pure functions per kind of storage.

The interface is flashbax's (`init`, `add`, `sample`, `can_sample`,
`set_priorities`), with what flashbax cannot do kept: the priority exponents
and the discount of the n-step return are traced arguments (`ReplayParams`), so
they sweep under `vmap`; Atari frames are stored once (`replay.frames`).
`make_transition_buffer` builds the bundle once from static settings; an agent
keeps the state the bundle's functions return and never reads its fields.

`add` takes one step of all `E` envs. The n-step return (Sutton & Barto 2018,
sec. 7.1; Rainbow, Ape-X) is folded in: whole-transition storage keeps a
window of the last `n` steps (`replay.nstep`) and stores the transition that
starts at its oldest step once the window is full; frame storage keeps 1-step
rows and builds the n-step transition when sampling. Until then, and for a
learner step that did not happen (`set_priorities`' `mask`), the buffer
leaves its state as it was: masked with `jnp.where`, since a `lax.cond` would
make XLA copy the replay, the largest array of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.replay.base import EnvSteps, Transition
from jaxrl57.replay.frames import (
    frame_add,
    frame_init,
    frame_sample,
    frame_sample_prioritized,
    frame_update_priorities,
)
from jaxrl57.replay.nstep import NStepState, nstep_emit, nstep_init, nstep_push
from jaxrl57.replay.prioritized import (
    PrioritizedState,
    prioritized_add,
    prioritized_init,
    prioritized_sample,
    prioritized_update,
)
from jaxrl57.replay.sequence import (
    sequence_init,
    sequence_push,
    sequence_sample,
    sequence_update_priorities,
)
from jaxrl57.replay.uniform import UniformState, uniform_add, uniform_init, uniform_sample


class ReplayParams(NamedTuple):
    """The traced settings a buffer reads (scalars, or `[K]` under a sweep's vmap)."""

    discount: jax.Array | float = 0.99  # gamma of the n-step return
    priority_alpha: jax.Array | float = 0.0  # priority exponent (Schaul et al. 2016, eq. 1)
    priority_beta: jax.Array | float = 1.0  # importance-sampling exponent (sec. 3.4)


class Sample(NamedTuple):
    """A sampled batch: `Transition` leaves `[B, ...]`; for prioritized buffers the
    slots `[B]` to hand back to `set_priorities` and the importance weights `[B]`
    (normalised by the batch maximum); None for uniform ones."""

    batch: Transition
    indices: jax.Array | None
    weights: jax.Array | None


class NStepStore(NamedTuple):
    """Whole-transition storage behind an n-step window."""

    window: NStepState
    store: UniformState | PrioritizedState


class TransitionBuffer(NamedTuple):
    """A replay buffer of (n-step) transitions as pure functions.

    init() -> state
    add(state, steps: EnvSteps, params) -> state
    sample(state, key, params) -> Sample of `batch_size`
    can_sample(state, min_size) -> bool: at least max(min_size, batch_size) stored
    set_priorities(state, indices, priorities, params, mask) -> state; priorities
        are raw (`|td|` or a loss), `mask` False leaves the state unchanged; the
        identity for uniform buffers
    size(state) -> int32 transitions that can be sampled
    """

    init: Callable[[], Any]
    add: Callable[[Any, EnvSteps, ReplayParams], Any]
    sample: Callable[[Any, jax.Array, ReplayParams], Sample]
    can_sample: Callable[[Any, Any], jax.Array]
    set_priorities: Callable[[Any, jax.Array, jax.Array, ReplayParams, jax.Array], Any]
    size: Callable[[Any], jax.Array]
    prioritized: bool


def _keep_priorities(mask, new, old):
    return new._replace(tree=jnp.where(mask, new.tree, old.tree),
                        max_priority=jnp.where(mask, new.max_priority, old.max_priority))


def make_transition_buffer(
    example_obs: jax.Array, num_envs: int, capacity: int, batch_size: int, *, n_step: int = 1,
    prioritized: bool = False, frames: bool = False, action_dtype=jnp.int32,
    action_shape: tuple[int, ...] = (),
) -> TransitionBuffer:
    """The buffer for one kind of storage, all settings static.

    Args:
      example_obs: one observation without a batch axis (shape and dtype).
      num_envs: E, the envs of each `add`.
      capacity: transitions kept (frames: split evenly over the envs).
      batch_size: transitions per `sample`.
      n_step: steps of the return, >= 1.
      prioritized: proportional prioritized replay (Schaul et al. 2016, sec. 3.3);
        otherwise uniform.
      frames: store each frame of stacked uint8 observations `[S, H, W]` once
        (`replay.frames`); otherwise whole transitions.
      action_dtype, action_shape: one action (int32 scalars for discrete actions;
        float32 `[D]` for continuous ones, whole transitions only).
    """
    if frames and (action_shape or action_dtype != jnp.int32):
        raise ValueError("frame storage keeps discrete (int32 scalar) actions only")
    if n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {n_step}")
    example_obs = jnp.asarray(example_obs)
    if frames and (example_obs.ndim != 3 or example_obs.dtype != jnp.uint8):
        raise ValueError(f"frame storage needs stacked uint8 frames [S, H, W], got "
                         f"{example_obs.dtype} {example_obs.shape}")
    if frames:
        stack = dict(stack_size=example_obs.shape[0], n_step=n_step)

        def init():
            return frame_init(example_obs, num_envs, capacity, n_step)

        def add(state, steps: EnvSteps, params: ReplayParams):
            alpha = params.priority_alpha if prioritized else 0.0
            return frame_add(state, *steps, n_step=n_step, alpha=alpha)

        def sample(state, key, params: ReplayParams) -> Sample:
            if prioritized:
                return Sample(*frame_sample_prioritized(state, key, batch_size,
                                                        gamma=params.discount,
                                                        beta=params.priority_beta, **stack))
            batch, _ = frame_sample(state, key, batch_size, gamma=params.discount, **stack)
            return Sample(batch, None, None)

        def set_priorities(state, indices, priorities, params: ReplayParams, mask):
            if not prioritized:
                return state
            new = frame_update_priorities(state, indices, priorities, params.priority_alpha)
            return _keep_priorities(mask, new, state)

        def size(state):
            return state.size
    else:
        example = Transition(obs=example_obs, action=jnp.zeros(action_shape, action_dtype),
                             reward=jnp.zeros((), jnp.float32),
                             discount=jnp.zeros((), jnp.float32), next_obs=example_obs)

        def init():
            store = (prioritized_init(example, capacity) if prioritized
                     else uniform_init(example, capacity))
            return NStepStore(nstep_init(example_obs, num_envs, n_step, action_dtype,
                                         action_shape), store)

        def add(state: NStepStore, steps: EnvSteps, params: ReplayParams):
            window = nstep_push(state.window, *steps)
            transitions, valid = nstep_emit(window, params.discount)
            old = state.store
            if prioritized:
                new = prioritized_add(old, transitions, params.priority_alpha)
                new = new._replace(tree=jnp.where(valid, new.tree, old.tree))
            else:
                new = uniform_add(old, transitions)
            # Until the window is full the write lands in the still-empty slot at
            # `position`, which stays where it was.
            new = new._replace(position=jnp.where(valid, new.position, old.position),
                               size=jnp.where(valid, new.size, old.size))
            return NStepStore(window, new)

        def sample(state: NStepStore, key, params: ReplayParams) -> Sample:
            if prioritized:
                return Sample(*prioritized_sample(state.store, key, batch_size,
                                                  params.priority_beta))
            return Sample(uniform_sample(state.store, key, batch_size), None, None)

        def set_priorities(state: NStepStore, indices, priorities, params: ReplayParams, mask):
            if not prioritized:
                return state
            new = prioritized_update(state.store, indices, priorities, params.priority_alpha)
            return state._replace(store=_keep_priorities(mask, new, state.store))

        def size(state: NStepStore):
            return state.store.size

    def can_sample(state, min_size):
        return size(state) >= jnp.maximum(min_size, batch_size)

    return TransitionBuffer(init=init, add=add, sample=sample, can_sample=can_sample,
                            set_priorities=set_priorities, size=size, prioritized=prioritized)


class SequenceSample(NamedTuple):
    """Sampled sequences: step leaves `[B, seq_len, ...]`, the stored recurrent state
    before each sequence's first step, slots `[B]` and importance weights `[B]`."""

    steps: Any
    start_core_state: Any
    indices: jax.Array
    weights: jax.Array


class SequenceBuffer(NamedTuple):
    """Prioritized replay of fixed-length, overlapping sequences with their stored
    recurrent state (R2D2, Kapturowski et al. 2019, sec. 3; `replay.sequence`).

    init() -> state
    add(state, step, core_state, params, active=None) -> state: one step of `E`
        envs (leaves `[E, ...]`) and their core states before it; envs where
        `active` is False are left out (R2D2 pushes an episode's final
        observation for the ended envs only)
    sample(state, key, params) -> SequenceSample of `batch_size`
    can_sample(state, min_size) -> bool: at least max(min_size, batch_size) stored
    set_priorities(state, indices, priorities, params, mask) -> state
    size(state) -> int32 sequences stored
    """

    init: Callable[[], Any]
    add: Callable[..., Any]
    sample: Callable[[Any, jax.Array, ReplayParams], SequenceSample]
    can_sample: Callable[[Any, Any], jax.Array]
    set_priorities: Callable[[Any, jax.Array, jax.Array, ReplayParams, jax.Array], Any]
    size: Callable[[Any], jax.Array]


def make_sequence_buffer(example_step, example_core_state, num_envs: int, capacity: int,
                         seq_len: int, period: int, batch_size: int) -> SequenceBuffer:
    """The sequence buffer, all settings static (see `replay.sequence.sequence_init`)."""

    def init():
        return sequence_init(example_step, example_core_state, num_envs, capacity, seq_len,
                             period)

    def add(state, step, core_state, params: ReplayParams, active=None):
        return sequence_push(state, step, core_state, params.priority_alpha, active=active)

    def sample(state, key, params: ReplayParams) -> SequenceSample:
        return SequenceSample(*sequence_sample(state, key, batch_size, params.priority_beta))

    def set_priorities(state, indices, priorities, params: ReplayParams, mask):
        new = sequence_update_priorities(state, indices, priorities, params.priority_alpha)
        return _keep_priorities(mask, new, state)

    def size(state):
        return state.size

    def can_sample(state, min_size):
        return size(state) >= jnp.maximum(min_size, batch_size)

    return SequenceBuffer(init=init, add=add, sample=sample, can_sample=can_sample,
                          set_priorities=set_priorities, size=size)


__all__ = ["EnvSteps", "NStepStore", "ReplayParams", "Sample", "SequenceBuffer",
           "SequenceSample", "TransitionBuffer", "make_sequence_buffer",
           "make_transition_buffer"]
