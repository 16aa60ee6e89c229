"""Pure-JAX replay buffers whose state is a pytree: uniform, prioritized, n-step, sequence,
and Atari frames stored once (`frames`).

Agents use the bundles of `replay.buffer` (`make_transition_buffer`,
`make_sequence_buffer`); the functions of the storage modules below are their parts.
"""

from jaxrl57.replay.base import EnvSteps, Transition
from jaxrl57.replay.buffer import (
    ReplayParams,
    Sample,
    SequenceBuffer,
    SequenceSample,
    TransitionBuffer,
    make_sequence_buffer,
    make_transition_buffer,
)
from jaxrl57.replay.frames import (
    FrameReplayState,
    frame_add,
    frame_bytes_per_transition,
    frame_get,
    frame_init,
    frame_rows_per_env,
    frame_sample,
    frame_sample_prioritized,
    frame_update_priorities,
)
from jaxrl57.replay.nstep import NStepState, nstep_emit, nstep_init, nstep_push
from jaxrl57.replay.prioritized import (
    PrioritizedState,
    importance_weights,
    prioritized_add,
    prioritized_init,
    prioritized_sample,
    prioritized_update,
    proportional_indices,
)
from jaxrl57.replay.sequence import (
    SequenceReplayState,
    sequence_can_sample,
    sequence_init,
    sequence_push,
    sequence_sample,
    sequence_update_priorities,
)
from jaxrl57.replay.sum_tree import (
    sum_tree_find,
    sum_tree_get,
    sum_tree_init,
    sum_tree_set,
    sum_tree_total,
)
from jaxrl57.replay.uniform import UniformState, uniform_add, uniform_init, uniform_sample

__all__ = [
    "EnvSteps",
    "ReplayParams",
    "Sample",
    "SequenceBuffer",
    "SequenceSample",
    "TransitionBuffer",
    "make_sequence_buffer",
    "make_transition_buffer",
    "FrameReplayState",
    "NStepState",
    "PrioritizedState",
    "SequenceReplayState",
    "Transition",
    "UniformState",
    "frame_add",
    "frame_bytes_per_transition",
    "frame_get",
    "frame_init",
    "frame_rows_per_env",
    "frame_sample",
    "frame_sample_prioritized",
    "frame_update_priorities",
    "importance_weights",
    "nstep_emit",
    "nstep_init",
    "nstep_push",
    "prioritized_add",
    "prioritized_init",
    "prioritized_sample",
    "prioritized_update",
    "proportional_indices",
    "sequence_can_sample",
    "sequence_init",
    "sequence_push",
    "sequence_sample",
    "sequence_update_priorities",
    "sum_tree_find",
    "sum_tree_get",
    "sum_tree_init",
    "sum_tree_set",
    "sum_tree_total",
    "uniform_add",
    "uniform_init",
    "uniform_sample",
]
