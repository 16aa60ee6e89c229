"""Atari replay that stores each frame once and rebuilds frame stacks when sampling.

The agent of Mnih et al. (2015) sees the last `S = 4` frames (84x84 gray)
stacked; storing `obs` and `next_obs` of every transition keeps each frame
`2 S = 8` times. Here every env has a ring of single frames, one ROW per
step, and the stacks of a sampled transition are gathered from the ring, as
in dopamine's replay and the Nature DQN code (bytes per transition: one
frame plus a few bytes; `frame_bytes_per_transition`).

Layout. Environments give stacked observations `[E, S, H, W]` (EnvPool's
Atari layout: channels first, newest frame last). Per env, row `j` holds the
newest frame of the observation a step was taken in, with that step's
action, reward and termination flags. `frame_add` writes two rows per env,
`head` (the step: `obs[:, -1]` and its data) and `head + 1` (the newest frame
of `next_obs`), then advances `head` by one, or by two when the step ended
the episode. So the next step overwrites the `next_obs` frame with the same
frame (`obs_{t+1} = next_obs_t` while the episode goes on), while the final
observation of an episode keeps its row (a "final row", no step) and the
next episode starts after it: bootstrapping from a truncated episode's true
final observation needs no extra storage, and the cost is one row per
episode.

Frame stacks. Row `j`'s stack is rows `j-S+1 .. j`, except before the row
where the env restarted its stack: EnvPool fills a new game's stack with
copies of its first frame (checked on Breakout-v5 with EnvPool 1.2.5), other
wrappers with zeros, and EnvPool's `episodic_life` keeps the old frames
after a lost life (the new stack holds the final frame of the "episode" that
just ended). Rather than guess from the done flags, `frame_add` compares the
observation with the previous row's stack (the last `next_obs`, kept per env
so that the ring is never read before it is written: XLA would copy it) and
records, per row, whether the stack continues, restarts with copies, or
restarts with zeros (`stack_start`); rebuilt stacks then equal what the env
gave, bit for bit.
Observations that fit none of the three are counted in `stack_mismatches`
(which stays 0 for EnvPool and for `obs_{t+1} = next_obs_t` streams).

n-step returns (Sutton 1988; Hessel et al. 2018) are computed at SAMPLE time
from the stored 1-step rewards and flags, as Ape-X and dopamine's Rainbow do,
rather than storing the outputs of `replay.nstep`: the rows are the 1-step
stream already, so no window of stacks is kept per env, and the discount is
read when sampling (a traced hyperparameter may change). The return and
discount are those of `replay.nstep.nstep_emit` (which computes them here):
the window stops at the first terminated or truncated step; termination
gives discount 0, truncation bootstraps from the true final observation.

Validity. A row can be sampled once its n-step window is complete (its
bootstrap frame written) and while all `S` rows of its stack are still in
the ring; the sum tree holds 0 for every other row, so neither sampler can
return it. Uniform sampling keeps every valid leaf at 1 (add with
`alpha = 0`); proportional prioritized sampling (Schaul et al. 2016) keeps
`p^alpha` and reuses `replay.prioritized`. New rows enter at
`max_priority ** alpha`.

All functions are pure over the `FrameReplayState` pytree, with static
shapes (`num_envs`, the rows per env, `stack_size`, `n_step`, the batch
size) and traced `gamma`, `alpha`, `beta`, so they work under `jit` and
`vmap`. Nothing branches on traced values (no `lax.cond` carrying the
frames, which XLA would copy). Row counters are absolute int32 (at most two
rows per step: 10^9 steps per env before they overflow).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.replay.base import EnvSteps, Transition
from jaxrl57.replay.nstep import NStepState, nstep_emit
from jaxrl57.replay.prioritized import importance_weights, proportional_indices
from jaxrl57.replay.sum_tree import sum_tree_find, sum_tree_get, sum_tree_init, sum_tree_set

# `stack_start` codes: how the stack of a row treats the rows before it.
CONTINUES, COPIES, ZEROS = 0, 1, 2


class FrameReplayState(NamedTuple):
    """Frame rings of `E` envs with `R` rows each, and a sum tree over the `E * R` rows.

    frames: uint8 `[E, R, H, W]`, the newest frame of the row's observation.
    action: `[E, R]`; reward: float32 `[E, R]`; terminated, truncated: bool
      `[E, R]`: the step taken at the row (meaningful where `is_step`).
    is_step: bool `[E, R]`, False for final rows and the pending next frame.
    stack_start: uint8 `[E, R]`, `CONTINUES`, `COPIES` or `ZEROS`.
    head: int32 `[E]`, absolute row the next step is written to.
    end: int32 `[E]`, one past the last written absolute row; rows
      `[end - R, end)` are in the ring, absolute row `a` in slot `a % R`.
    tree: float32 sum tree over leaves `e * R + slot`, 0 where not sampleable.
    max_priority: float32 scalar, largest raw priority seen (starts at 1).
    size: int32 scalar, number of sampleable rows (positive leaves).
    stack_mismatches: int32 scalar, observations no stack rule reproduces.
    last_next_obs: `[E, S, H, W]`, the last step's next_obs (the stack of row
      `end - 1`), to tell how the next observation's stack was built.
    """

    frames: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    is_step: jax.Array
    stack_start: jax.Array
    head: jax.Array
    end: jax.Array
    tree: jax.Array
    max_priority: jax.Array
    size: jax.Array
    stack_mismatches: jax.Array
    last_next_obs: jax.Array


def frame_rows_per_env(capacity: int, num_envs: int) -> int:
    """Rows of each env's ring for `capacity` rows in all (rounded up)."""
    return -(-int(capacity) // int(num_envs))


def frame_init(
    example_obs,
    num_envs: int,
    capacity: int,
    n_step: int = 1,
    action_dtype=jnp.int32,
) -> FrameReplayState:
    """Empty rings for `capacity` rows in all, `ceil(capacity / num_envs)` per env.

    Args:
      example_obs: ONE stacked observation `[S, H, W]` (values unused).
      num_envs: E, static.
      capacity: rows in all (one row per step, plus one per episode end).
      n_step: the n of the returns that will be sampled (checked against the
        ring size: a ring must hold a whole window and a stack).
      action_dtype: dtype of the stored actions.
    """
    shape = tuple(jnp.shape(example_obs))
    if len(shape) != 3:
        raise ValueError(f"frame replay needs stacked frames [S, H, W], got shape {shape}")
    stack, height, width = shape
    rows = frame_rows_per_env(capacity, num_envs)
    if num_envs < 1 or n_step < 1:
        raise ValueError(f"num_envs and n_step must be >= 1, got {num_envs}, {n_step}")
    if rows < stack + n_step + 2:
        raise ValueError(f"frame replay: {rows} rows per env (capacity {capacity} over "
                         f"{num_envs} envs) cannot hold a stack of {stack} and an "
                         f"{n_step}-step window; need >= {stack + n_step + 2}")
    dtype = jnp.asarray(example_obs).dtype
    per_row = lambda dt: jnp.zeros((num_envs, rows), dt)
    return FrameReplayState(
        frames=jnp.zeros((num_envs, rows, height, width), dtype),
        action=per_row(action_dtype),
        reward=per_row(jnp.float32),
        terminated=per_row(bool),
        truncated=per_row(bool),
        is_step=per_row(bool),
        stack_start=per_row(jnp.uint8),
        head=jnp.zeros((num_envs,), jnp.int32),
        end=jnp.zeros((num_envs,), jnp.int32),
        tree=sum_tree_init(num_envs * rows),
        max_priority=jnp.ones((), jnp.float32),
        size=jnp.zeros((), jnp.int32),
        stack_mismatches=jnp.zeros((), jnp.int32),
        last_next_obs=jnp.zeros((num_envs,) + shape, dtype),
    )


def _stacks(state: FrameReplayState, env: jax.Array, rows: jax.Array, stack: int) -> jax.Array:
    """Frame stacks `[B, S, H, W]` (oldest first) ending at absolute rows `[B]` of envs `[B]`."""
    num_rows = state.frames.shape[1]
    back = jnp.arange(stack)  # i = 0 is the newest frame
    rows_back = rows[:, None] - back[None, :]  # [B, S]
    code = state.stack_start[env[:, None], rows_back % num_rows]
    # Offset of the newest row that restarted the stack (S - 1: none in the stack).
    restarts = jnp.concatenate([code[:, :-1] != CONTINUES, jnp.ones_like(code[:, :1], bool)], 1)
    first = jnp.argmax(restarts, axis=1)  # [B]
    source = rows[:, None] - jnp.minimum(back[None, :], first[:, None])
    frames = state.frames[env[:, None], source % num_rows]  # [B, S, H, W]
    start_code = jnp.take_along_axis(code, first[:, None], axis=1)
    zero = (back[None, :] > first[:, None]) & (start_code == ZEROS)
    frames = jnp.where(zero[:, :, None, None], jnp.zeros((), frames.dtype), frames)
    return frames[:, ::-1]


def frame_add(
    state: FrameReplayState,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    next_obs: jax.Array,
    *,
    n_step: int = 1,
    alpha=0.0,
) -> FrameReplayState:
    """Appends one step of all `E` envs and enables the rows whose windows completed.

    Args:
      obs: `[E, S, H, W]` the observation the action was taken in.
      action, reward: `[E]`; terminated, truncated: bool `[E]`.
      next_obs: `[E, S, H, W]` the true next observation (the final one when
        the episode ended, not the reset observation).
      n_step: static n of the returns that will be sampled.
      alpha: priority exponent; rows enter at `max_priority ** alpha` (0:
        uniform replay, every valid leaf 1).
    """
    num_envs, num_rows = state.action.shape
    stack = obs.shape[1]
    env = jnp.arange(num_envs)
    head = state.head
    done = jnp.asarray(terminated, bool) | jnp.asarray(truncated, bool)

    # How the env built this stack: continuing the previous row's stack, or
    # restarted. The previous row's stack is the last next_obs (kept apart:
    # reading the ring before writing it makes XLA copy the whole ring), or,
    # while an episode goes on, the last obs: next_obs shifted back one frame.
    axes = (1, 2, 3)
    went_on = (head == state.end - 1) & (head > 0)
    last = state.last_next_obs
    previous_tail = jnp.where(went_on[:, None, None, None], last[:, :-1], last[:, 1:])
    continues = (head > 0) & jnp.all(obs[:, :-1] == previous_tail, axis=axes)
    copies = jnp.all(obs[:, :-1] == obs[:, -1:], axis=axes)
    zeros = jnp.all(obs[:, :-1] == 0, axis=axes)
    code = jnp.where(continues, CONTINUES, jnp.where(copies, COPIES, ZEROS)).astype(jnp.uint8)
    shifted = jnp.all(next_obs[:, :-1] == obs[:, 1:], axis=axes)
    # While an episode goes on, obs must be the previous step's next_obs, whose
    # frame is already in the row (head == end - 1 unless the last step ended).
    same = continues & jnp.all(obs[:, -1] == last[:, -1], axis=(1, 2))
    mismatches = (jnp.sum(~(continues | copies | zeros)) + jnp.sum(~shifted)
                  + jnp.sum(went_on & ~same))

    slot, slot_next = head % num_rows, (head + 1) % num_rows
    frames = state.frames.at[env, slot].set(obs[:, -1]).at[env, slot_next].set(next_obs[:, -1])
    put = lambda x, v, v_next: x.at[env, slot].set(v).at[env, slot_next].set(v_next)
    new = state._replace(
        frames=frames,
        action=state.action.at[env, slot].set(jnp.asarray(action, state.action.dtype)),
        reward=state.reward.at[env, slot].set(jnp.asarray(reward, jnp.float32)),
        terminated=put(state.terminated, terminated, False),
        truncated=put(state.truncated, truncated, False),
        is_step=put(state.is_step, True, False),
        stack_start=put(state.stack_start, code, CONTINUES),
        head=(head + 1 + done).astype(jnp.int32),
        end=(head + 2).astype(jnp.int32),
        stack_mismatches=state.stack_mismatches + mismatches.astype(jnp.int32),
        last_next_obs=jnp.asarray(next_obs, state.last_next_obs.dtype),
    )

    # Rows h-n+1 .. h whose n-step window ends at this step: the one n-1 steps
    # back, or all of them since the last episode end when this step ends one.
    k = jnp.arange(n_step)
    rows = head[:, None] - (n_step - 1) + k[None, :]  # [E, n]
    old_done = state.terminated | state.truncated
    window_done = jnp.concatenate(
        [old_done[env[:, None], rows[:, :-1] % num_rows], done[:, None]], axis=1)
    window_step = jnp.concatenate(
        [state.is_step[env[:, None], rows[:, :-1] % num_rows],
         jnp.ones((num_envs, 1), bool)], axis=1)
    # Episode ends in rows k .. h-1: such a window closed at an earlier step.
    before_newest = jnp.concatenate([window_done[:, :-1], jnp.zeros((num_envs, 1), bool)], 1)
    ended = jnp.flip(jnp.cumsum(jnp.flip(before_newest, 1), axis=1), 1)
    # A row's whole stack must still be in the ring (the start check reads it).
    lowest = new.end - num_rows + stack - 1  # [E]
    enable = (window_step & (ended == 0) & (done[:, None] | (k[None, :] == 0))
              & (rows >= lowest[:, None]) & (rows >= 0))
    leaves = env[:, None] * num_rows + rows % num_rows  # [E, n]
    old_leaves = sum_tree_get(state.tree, leaves)
    fresh = jnp.power(state.max_priority, jnp.asarray(alpha, jnp.float32))
    keep = jnp.where(k[None, :] == n_step - 1, 0.0, old_leaves)  # row h is new
    values = jnp.where(enable, fresh, keep)
    # Rows that left the ring's sampleable range (at most two per step), and the
    # pending next frame, are zeroed first; the window's values are written last.
    dropped = jnp.stack([lowest - 2, lowest - 1, head + 1], axis=1)  # [E, 3]
    dropped_leaves = env[:, None] * num_rows + dropped % num_rows
    indices = jnp.concatenate([dropped_leaves, leaves], axis=1).reshape(-1)
    values = jnp.concatenate([jnp.zeros(dropped.shape, jnp.float32), values], 1).reshape(-1)
    old = sum_tree_get(state.tree, indices)
    # Count each leaf once, by its last write (the one the tree keeps).
    order = jnp.arange(indices.shape[0])
    later = (indices[:, None] == indices[None, :]) & (order[None, :] > order[:, None])
    last = ~jnp.any(later, axis=1)
    change = jnp.where(last, (values > 0).astype(jnp.int32) - (old > 0).astype(jnp.int32), 0)
    return new._replace(tree=sum_tree_set(state.tree, indices, values),
                        size=(state.size + jnp.sum(change)).astype(jnp.int32))


def frame_get(
    state: FrameReplayState, indices: jax.Array, *, stack_size: int, n_step: int, gamma
) -> Transition:
    """The n-step transitions starting at leaves `indices [B]`, stacks rebuilt.

    `reward` is `sum_{k<K} gamma^k r_k` and `discount` `gamma^K` (0 after a
    termination), K the window up to the first episode end (`nstep_emit`);
    `obs` and `next_obs` are `[B, S, H, W]`. Only meaningful for sampleable
    leaves (positive in `state.tree`).
    """
    num_rows = state.action.shape[1]
    indices = jnp.asarray(indices, jnp.int32)
    env, slot = indices // num_rows, indices % num_rows
    end = state.end[env]
    start = end - num_rows + (slot - end) % num_rows  # absolute row of the leaf
    rows = start[None, :] + jnp.arange(n_step)[:, None]  # [n, B]
    at = lambda x: x[env[None, :], rows % num_rows]
    # nstep_emit on row numbers in place of observations: it picks the
    # bootstrap row, and the frames are gathered once below.
    window = NStepState(EnvSteps(obs=rows, action=at(state.action), reward=at(state.reward),
                                 terminated=at(state.terminated),
                                 truncated=at(state.truncated), next_obs=rows + 1),
                        count=jnp.asarray(n_step, jnp.int32))
    steps, _ = nstep_emit(window, gamma)
    both = _stacks(state, jnp.concatenate([env, env]),
                   jnp.concatenate([steps.obs, steps.next_obs]), stack_size)
    batch = indices.shape[0]
    return steps._replace(obs=both[:batch], next_obs=both[batch:])


def frame_sample(
    state: FrameReplayState, key: jax.Array, batch_size: int, *, stack_size: int,
    n_step: int, gamma,
) -> tuple[Transition, jax.Array]:
    """Uniform sample, with replacement, of `batch_size` sampleable rows.

    Uniform when rows were added with `alpha = 0` and priorities never
    updated (every valid leaf 1). Returns the transitions (`frame_get`) and
    their leaf indices `[B]`. An empty buffer returns leaf 0: wait for
    `state.size > 0`.
    """
    targets = jax.random.uniform(key, (batch_size,), jnp.float32) * state.tree[1]
    indices = sum_tree_find(state.tree, targets).astype(jnp.int32)
    return frame_get(state, indices, stack_size=stack_size, n_step=n_step, gamma=gamma), indices


def frame_sample_prioritized(
    state: FrameReplayState, key: jax.Array, batch_size: int, *, stack_size: int,
    n_step: int, gamma, beta,
) -> tuple[Transition, jax.Array, jax.Array]:
    """Stratified proportional sample (Schaul et al. 2016), as `prioritized_sample`.

    Returns the transitions, their leaf indices `[B]` for
    `frame_update_priorities`, and the importance weights
    `(N P(i))^-beta / max_batch`, N the number of sampleable rows.
    """
    indices = proportional_indices(state.tree, key, batch_size).astype(jnp.int32)
    weights = importance_weights(state.tree, indices, state.size, beta)
    batch = frame_get(state, indices, stack_size=stack_size, n_step=n_step, gamma=gamma)
    return batch, indices, weights


def frame_update_priorities(
    state: FrameReplayState, indices: jax.Array, priorities: jax.Array, alpha, eps: float = 1e-6
) -> FrameReplayState:
    """Sets leaves `indices [B]` to `(|p| + eps)^alpha`, as `prioritized_update`.

    A leaf that is 0 (its row stopped being sampleable since it was drawn)
    stays 0. `max_priority` becomes `max(max_priority, max |p|)`.
    """
    priorities = jnp.abs(jnp.asarray(priorities, jnp.float32))
    leaves = jnp.power(priorities + eps, jnp.asarray(alpha, jnp.float32))
    leaves = jnp.where(sum_tree_get(state.tree, indices) > 0, leaves, 0.0)
    return state._replace(tree=sum_tree_set(state.tree, indices, leaves),
                          max_priority=jnp.maximum(state.max_priority, jnp.max(priorities)))


def frame_bytes_per_transition(state: FrameReplayState) -> float:
    """Bytes of all the state's arrays per row (arrays or `jax.eval_shape` structs).

    A row holds one step, except one final row per episode, so with episodes
    of mean length L a stored transition costs `(L + 1) / L` times this.
    """
    total = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                for x in jax.tree_util.tree_leaves(state))
    return total / int(np.prod(state.action.shape))  # rows of all envs (and members)
