"""Agent57's meta-controller: a sliding-window UCB bandit over the policy family.

Badia et al. 2020b ("Agent57: Outperforming the Atari Human Benchmark",
sec. 4 and appendix D) let each actor choose, at the start of every episode,
which member j of the (beta_j, gamma_j) family to follow, as a
non-stationary multi-armed bandit whose reward is the episode's undiscounted
extrinsic return. Over the last `window_size` episodes (Garivier & Moulines
2011, sliding-window UCB):

    N(a) = #{episodes in the window that played a}
    mu(a) = mean return of those episodes
    A_k = k                                           for the first k < num_arms episodes,
    A_k = argmax_a mu(a) + beta * sqrt(1 / N(a))      with probability 1 - epsilon,
    A_k = uniform over the arms                       with probability epsilon.

An arm the window has not seen scores +inf (tried first, lowest index first).
Agent57's values (Table 3 of the paper's appendix): window 90, beta 1,
epsilon 0.5. Sec. 4 describes windows of 160 episodes for the actors and
3,600 for the evaluator; `window_size` is a shape, so each is its own
`ucb_init`.

The state is a pytree of arrays: `jit` and `vmap` (one bandit per env, as in
the paper, where every actor has its own) apply directly; `beta` and
`epsilon` are traced, so a sweep over them is a `vmap` too.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
Numeric = chex.Numeric

__all__ = ["UCBState", "ucb_init", "ucb_select", "ucb_update", "ucb_scores", "window_means",
           "greedy_arm"]


class UCBState(NamedTuple):
    arms: Array  # [window] int32: the arm of each episode in the window, -1 where none yet
    rewards: Array  # [window] float32: their rewards
    count: Array  # int32: episodes seen in all
    pulls: Array  # [num_arms] int32: episodes per arm over all time (for histograms)
    beta: Array  # float32: weight of the confidence bonus
    epsilon: Array  # float32: probability of a uniformly random arm


def ucb_init(num_arms: int, window_size: int = 90, *, beta: Numeric = 1.0,
             epsilon: Numeric = 0.5) -> UCBState:
    """A bandit over `num_arms` arms that remembers the last `window_size`
    episodes. Defaults: Agent57's Table 3."""
    if num_arms < 1 or window_size < 1:
        raise ValueError(f"num_arms and window_size must be >= 1, got {num_arms}, "
                         f"{window_size}")
    return UCBState(arms=jnp.full((window_size,), -1, jnp.int32),
                    rewards=jnp.zeros((window_size,), jnp.float32),
                    count=jnp.zeros((), jnp.int32),
                    pulls=jnp.zeros((num_arms,), jnp.int32),
                    beta=jnp.asarray(beta, jnp.float32),
                    epsilon=jnp.asarray(epsilon, jnp.float32))


def window_means(state: UCBState) -> tuple[Array, Array]:
    """([num_arms] mean reward of each arm over the window (0 where unplayed),
    [num_arms] its plays N(a) in the window)."""
    num_arms = state.pulls.shape[-1]
    played = jax.nn.one_hot(state.arms, num_arms, dtype=jnp.float32)  # -1 is all zeros
    n = jnp.sum(played, axis=0)
    total = jnp.sum(played * state.rewards[:, None], axis=0)
    return total / jnp.maximum(n, 1.0), n


def ucb_scores(state: UCBState) -> Array:
    """[num_arms] mu(a) + beta * sqrt(1 / N(a)) over the window; +inf where N(a) = 0."""
    mean, n = window_means(state)
    return jnp.where(n > 0, mean + state.beta * jnp.sqrt(1.0 / jnp.maximum(n, 1.0)), jnp.inf)


def greedy_arm(state: UCBState) -> Array:
    """The arm of the best window mean among those played (0 before any play): the
    choice of Agent57's evaluator, greedy in the arms."""
    mean, n = window_means(state)
    return jnp.argmax(jnp.where(n > 0, mean, -jnp.inf)).astype(jnp.int32)


def ucb_select(state: UCBState, key: chex.PRNGKey) -> Array:
    """The arm of the next episode: each arm once in turn, then epsilon-greedy
    in the sliding-window UCB scores (ties to the lowest index)."""
    num_arms = state.pulls.shape[-1]
    explore_key, arm_key = jax.random.split(key)
    greedy = jnp.argmax(ucb_scores(state)).astype(jnp.int32)
    random_arm = jax.random.randint(arm_key, (), 0, num_arms, jnp.int32)
    explore = jax.random.uniform(explore_key) < state.epsilon
    chosen = jnp.where(explore, random_arm, greedy)
    return jnp.where(state.count < num_arms, state.count, chosen).astype(jnp.int32)


def ucb_update(state: UCBState, arm: Array, reward: Array) -> UCBState:
    """`state` after an episode that played `arm` and returned `reward` (the
    undiscounted extrinsic return); the oldest episode leaves a full window."""
    window = state.arms.shape[-1]
    arm = jnp.asarray(arm, jnp.int32)
    slot = state.count % window
    return state._replace(arms=state.arms.at[slot].set(arm),
                          rewards=state.rewards.at[slot].set(
                              jnp.asarray(reward, jnp.float32)),
                          count=state.count + 1,
                          pulls=state.pulls.at[arm].add(1))
