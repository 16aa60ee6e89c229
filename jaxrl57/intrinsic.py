"""Intrinsic rewards of Never Give Up and Agent57, as pure functions on arrays.

NGU (Badia et al. 2020a, "Never Give Up: Learning Directed Exploration
Strategies", sec. 2) rewards a step with

    r_i = r_episodic * min(max(alpha, 1), L)                              (NGU eq. 1)

* the episodic novelty `r_episodic`, from the k nearest neighbours of the
  step's embedding among the embeddings of the earlier steps of the same
  episode (Algorithm 1; the memory is emptied at every episode start, so a
  state revisited within an episode stops paying, and pays again in the
  next episode);
* the lifelong novelty `alpha` of Random Network Distillation (Burda et al.
  2019), the predictor's error on the step's observation standardised by
  running statistics: `alpha = 1 + (err - mean_err) / std_err`, clipped to
  [1, L] with L = 5 (NGU sec. 2, Table 6 "maximum reward scaling").

Everything here is arrays in, arrays out, and works under `jit`, `vmap` and
`grad`. A per-env memory is one `EpisodicMemory` with a leading env axis:
`jax.vmap(episodic_memory_step)` steps all envs at once. Where rlax has
these operators (`rlax.episodic_memory_intrinsic_rewards`, 0.1.9) it feeds
the negated distances of `knn_query` into its running mean, pads a fresh
memory with zero embeddings that count as neighbours, and never empties the
memory at episode ends; this module is written from the paper instead and
tested against a NumPy transcription of Algorithm 1.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

Array = chex.Array
Numeric = chex.Numeric

__all__ = [
    "episodic_novelty_reward",
    "EpisodicMemory",
    "episodic_memory_init",
    "episodic_memory_reset",
    "episodic_memory_step",
    "RunningStats",
    "running_stats_init",
    "running_stats_update",
    "normalize_observation",
    "rnd_error",
    "inverse_dynamics_loss",
    "lifelong_modulator",
    "ngu_intrinsic_reward",
]


# --- Episodic novelty (NGU Algorithm 1) -------------------------------------------


def episodic_novelty_reward(
    sq_distances: Array,
    mean_sq_distance: Array,
    *,
    kernel_epsilon: Numeric = 1e-4,
    cluster_distance: Numeric = 0.008,
    pseudo_count: Numeric = 1e-3,
    max_similarity: Numeric = 8.0,
) -> Array:
    """The episodic intrinsic reward of one step (Badia et al. 2020a, Algorithm 1).

        d_i = max(sq_distances_i / mean_sq_distance - cluster_distance, 0)
        K_i = kernel_epsilon / (d_i + kernel_epsilon)
        s   = sqrt(sum_i K_i) + pseudo_count
        r   = 1 / s, or 0 where s > max_similarity

    `1 / s` approximates `1 / sqrt(n)`, n the pseudo-count of visits to the
    state within the episode (sec. 2, eq. 2); the defaults are the paper's
    (Table 6: kernel epsilon 1e-4, cluster distance 0.008, pseudo-count
    constant 1e-3, maximum similarity 8).

    Args:
      sq_distances: [..., k] squared Euclidean distances from the step's
        embedding to its k nearest neighbours in the episodic memory. A
        neighbour the memory does not have (fewer than k entries) is `inf`:
        its kernel value is 0, so an empty memory gives `1 / pseudo_count`,
        the paper's reward for a count of zero.
      mean_sq_distance: [...] the running mean of the k-nearest-neighbour
        squared distances, already updated with this step's (Algorithm 1,
        line 3). Zero only while every distance seen was zero; the distances
        then count as zero (identical embeddings).

    Returns:
      [...] float32 rewards.
    """
    sq_distances = jnp.asarray(sq_distances, jnp.float32)
    mean = jnp.asarray(mean_sq_distance, jnp.float32)
    chex.assert_rank(mean, sq_distances.ndim - 1)
    tiny = jnp.finfo(jnp.float32).tiny
    normalized = sq_distances / jnp.maximum(mean, tiny)[..., None]
    clustered = jnp.maximum(normalized - cluster_distance, 0.0)
    kernel = kernel_epsilon / (clustered + kernel_epsilon)
    similarity = jnp.sqrt(jnp.sum(kernel, axis=-1)) + pseudo_count
    return jnp.where(similarity > max_similarity, 0.0, 1.0 / similarity)


class EpisodicMemory(NamedTuple):
    """The embeddings of one episode's earlier steps, and the running mean of
    nearest-neighbour squared distances (a leading env axis for many envs)."""

    embeddings: Array  # [capacity, dim]: a ring; slots at or past `size` are stale
    size: Array  # int32: valid entries (this episode's steps, at most capacity)
    position: Array  # int32: the next slot written
    mean_sq_distance: Array  # float32: running mean d_m^2 over every distance seen
    distance_count: Array  # float32: how many distances that mean holds


def episodic_memory_init(capacity: int, dim: int) -> EpisodicMemory:
    """An empty memory of `capacity` embeddings of size `dim` (NGU: 30,000 on
    Atari, Table 6). For E envs: `jax.vmap(lambda _: episodic_memory_init(c, d))(
    jnp.arange(E))`."""
    if capacity < 1 or dim < 1:
        raise ValueError(f"capacity and dim must be >= 1, got {capacity}, {dim}")
    return EpisodicMemory(
        embeddings=jnp.zeros((capacity, dim), jnp.float32),
        size=jnp.zeros((), jnp.int32), position=jnp.zeros((), jnp.int32),
        mean_sq_distance=jnp.zeros((), jnp.float32),
        distance_count=jnp.zeros((), jnp.float32))


def episodic_memory_reset(memory: EpisodicMemory, reset: Array) -> EpisodicMemory:
    """Empties the memory where `reset` (an episode starts). The running mean
    d_m^2 is a statistic of the embedding's scale, not of the episode, and is
    kept."""
    reset = jnp.asarray(reset, bool)
    return memory._replace(size=jnp.where(reset, 0, memory.size),
                           position=jnp.where(reset, 0, memory.position))


def _nearest_sq_distances(memory: EpisodicMemory, embedding: Array, k: int) -> Array:
    """[k] squared distances to the k nearest valid entries, ascending; `inf`
    for the neighbours an emptier memory lacks. Exact search: 30k x 32 floats
    per env step is a fused reduction and one top_k on device."""
    capacity = memory.embeddings.shape[0]
    sq = jnp.sum(jnp.square(memory.embeddings - embedding), axis=-1)
    sq = jnp.where(jnp.arange(capacity) < memory.size, sq, jnp.inf)
    if k <= capacity:
        return -jax.lax.top_k(-sq, k)[0]
    return jnp.concatenate([jnp.sort(sq), jnp.full((k - capacity,), jnp.inf)])


def episodic_memory_step(
    memory: EpisodicMemory,
    embedding: Array,
    *,
    num_neighbors: int = 10,
    kernel_epsilon: Numeric = 1e-4,
    cluster_distance: Numeric = 0.008,
    pseudo_count: Numeric = 1e-3,
    max_similarity: Numeric = 8.0,
    distance_window: Numeric = jnp.inf,
) -> tuple[Array, EpisodicMemory]:
    """One step of Algorithm 1 for one env: the reward of `embedding` [dim]
    against the episode's earlier embeddings, then the embedding stored.

    The k nearest neighbours are found among the steps before this one
    (sec. 2: the memory holds f(x_0), ..., f(x_{t-1})); the running mean d_m^2
    takes their squared distances (line 3) before they are normalised by it;
    the embedding is written last, over the oldest entry once the ring is full.
    `num_neighbors` is static (NGU: k = 10); call `episodic_memory_reset` at
    episode starts first.

    While the episode has fewer than k earlier steps, each missing neighbour
    counts as one at the running mean distance (a normalised distance of 1),
    the distance of an ordinary neighbour: an episode's first state is as
    novel as a state far from all k. Taken literally, Algorithm 1 would count
    a missing neighbour as infinitely far (`episodic_novelty_reward` with
    `inf`), and every episode's first step would pay 1 / c = 1000, some 30
    times a novel state's reward of about 30; on short episodes those first
    steps would dominate the intrinsic return.

    `distance_window`: the running mean weighs the older distances as at most
    this many (inf: all of them, Algorithm 1's running average); a finite
    window follows an embedding whose scale drifts while it trains.

    Returns:
      (reward [], the memory with the embedding stored).
    """
    embedding = jnp.asarray(embedding, jnp.float32)
    sq = _nearest_sq_distances(memory, embedding, num_neighbors)
    finite = jnp.isfinite(sq)
    new = jnp.sum(finite.astype(jnp.float32))
    total = jnp.minimum(memory.distance_count, distance_window) + new
    step_sum = jnp.sum(jnp.where(finite, sq, 0.0))
    # The incremental form keeps float32 exact enough over millions of steps.
    mean = memory.mean_sq_distance + jnp.where(
        new > 0, (step_sum - new * memory.mean_sq_distance) / jnp.maximum(total, 1.0), 0.0)
    # Before any distance has been seen the mean is 0; the missing neighbours
    # then still sit at a normalised distance of 1.
    scale = jnp.where(mean > 0, mean, 1.0)
    reward = episodic_novelty_reward(
        jnp.where(finite, sq, scale), scale, kernel_epsilon=kernel_epsilon,
        cluster_distance=cluster_distance, pseudo_count=pseudo_count,
        max_similarity=max_similarity)
    capacity = memory.embeddings.shape[0]
    return reward, EpisodicMemory(
        embeddings=memory.embeddings.at[memory.position].set(embedding),
        size=jnp.minimum(memory.size + 1, capacity),
        position=(memory.position + 1) % capacity,
        mean_sq_distance=mean, distance_count=total)


# --- Lifelong novelty (RND, Burda et al. 2019) ----------------------------------------


class RunningStats(NamedTuple):
    """Running mean and variance over every sample seen (the parallel algorithm of
    Chan et al. 1979), of an observation's features or of a scalar."""

    mean: Array
    var: Array
    count: Array  # float32


def running_stats_init(shape: tuple[int, ...] = ()) -> RunningStats:
    """No samples yet: mean 0, variance 1 (standardising is the identity)."""
    return RunningStats(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                        jnp.zeros((), jnp.float32))


def running_stats_update(stats: RunningStats, batch: Array, mask: Array | None = None,
                         max_count: Numeric = jnp.inf) -> RunningStats:
    """`stats` merged with the samples of `batch` [B, *shape] (those where `mask`
    [B] is true): exactly the mean and (population) variance of all samples.

    With a finite `max_count` the old statistics weigh as at most `max_count`
    samples, so the statistics follow a drifting quantity over roughly the last
    `max_count` samples (an exponential forgetting): RND's prediction errors
    fall by orders of magnitude while the predictor learns, and against their
    all-time mean every later error would look familiar."""
    batch = jnp.asarray(batch, jnp.float32)
    weights = (jnp.ones(batch.shape[:1], jnp.float32) if mask is None
               else jnp.asarray(mask, jnp.float32))
    w = weights.reshape((-1,) + (1,) * (batch.ndim - 1))
    n = jnp.sum(weights)
    batch_mean = jnp.sum(w * batch, axis=0) / jnp.maximum(n, 1.0)
    batch_var = jnp.sum(w * jnp.square(batch - batch_mean), axis=0) / jnp.maximum(n, 1.0)
    old = jnp.minimum(stats.count, max_count)
    total = old + n
    delta = batch_mean - stats.mean
    frac = n / jnp.maximum(total, 1.0)
    mean = stats.mean + delta * frac
    # Before any sample the variance is a placeholder (1), not data: it has no weight.
    old_m2 = jnp.where(old > 0, stats.var * old, 0.0)
    m2 = old_m2 + batch_var * n + jnp.square(delta) * old * frac
    var = jnp.where(total > 0, m2 / jnp.maximum(total, 1.0), stats.var)
    return RunningStats(jnp.where(n > 0, mean, stats.mean), jnp.where(n > 0, var, stats.var),
                        total)


def normalize_observation(stats: RunningStats, obs: Array, clip: Numeric = 5.0,
                          eps: Numeric = 1e-8) -> Array:
    """RND's observation normalisation (Burda et al. 2019, sec. 2.4): each feature
    whitened by the running mean and standard deviation, then clipped to
    [-clip, clip] (5 in the paper)."""
    z = (jnp.asarray(obs, jnp.float32) - stats.mean) / jnp.sqrt(stats.var + eps)
    return jnp.clip(z, -clip, clip)


def rnd_error(prediction: Array, target: Array) -> Array:
    """err(x) = ||g_hat(x) - g(x)||^2 over the last axis (NGU sec. 2): the RND
    predictor's squared error against the fixed random target network. Its
    mean over a batch is the predictor's loss (gradient only through
    `prediction`)."""
    target = jax.lax.stop_gradient(jnp.asarray(target, jnp.float32))
    return jnp.sum(jnp.square(jnp.asarray(prediction, jnp.float32) - target), axis=-1)


def inverse_dynamics_loss(logits: Array, actions: Array, weights: Array | None = None
                          ) -> Array:
    """mean_b w_b * cross-entropy(logits_b, a_b): the loss that trains NGU's
    embedding, through a classifier of the action taken between two consecutive
    observations (NGU sec. 2; `networks.intrinsic.InverseDynamics`)."""
    per_example = optax.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits, jnp.float32), jnp.asarray(actions, jnp.int32))
    if weights is not None:
        per_example = per_example * weights
    return jnp.mean(per_example)


def lifelong_modulator(error: Array, stats: RunningStats, eps: Numeric = 1e-8) -> Array:
    """alpha = 1 + (err - mean_err) / std_err (NGU sec. 2), with `stats` the
    running statistics of the errors (`running_stats_update`)."""
    return 1.0 + (jnp.asarray(error, jnp.float32) - stats.mean) / jnp.sqrt(stats.var + eps)


def ngu_intrinsic_reward(episodic_reward: Array, lifelong_modulator: Array,
                         max_modulator: Numeric = 5.0) -> Array:
    """r_i = r_episodic * min(max(alpha, 1), L) (NGU eq. 1, L = 5 in Table 6)."""
    alpha = jnp.clip(jnp.asarray(lifelong_modulator, jnp.float32), 1.0, max_modulator)
    return jnp.asarray(episodic_reward, jnp.float32) * alpha
