"""The agent interface: an actor and a learner over one set of parameters.

An agent is a bundle of pure functions built from a static config and an
`EnvSpec`, in the spirit of `optax.GradientTransformation` and of acme's
split into actor core and learner:

    agent = make_dqn(config, spec, num_envs)

    # The learner: params, target params, optimizer state, replay, counters.
    learner = agent.init(key, hparams)
    view = agent.view(learner)                      # what actors read

    # An actor: per-env state that `act` always returns.
    actor = agent.actor.init(view, num_envs)
    actions, actor = agent.actor.act(view, actor, obs, key)      # obs [E, ...]
    next_obs, reward, terminated, truncated = env.step(actions)
    steps = EnvSteps(obs, actions, reward, terminated, truncated, next_obs)
    learner = agent.observe(learner, steps, actor)  # `actor` as `act` returned it
    actor = agent.actor.observe(actor, actions, reward, terminated | truncated)

    learner, metrics = agent.update(learner, key)   # sample, one gradient step
    ready = agent.can_update(learner)               # bool array: replay warm?

`agent.eval_actor` is the same actor with the evaluation settings (greedy up
to `eval_epsilon`, noisy layers at their mean), with its own state per
evaluation episode. Runners keep the two states apart: the learner's is the
big one (the replay), the actor's is per env and small, and an actor on
another thread or host only ever receives `view(learner)`.

The actor's state is whatever the policy carries between steps of an
episode: nothing for the DQN family, the LSTM state and the previous action
and reward for R2D2. The learner's `observe` receives it as `act` returned
it, which is how the learner stores what the actor knew (R2D2 keeps the
recurrent state at each sequence's start). `actor.observe` runs after the
env step and handles episode boundaries (a zero state where one ended).

`update` is a no-op (returning `metrics["updated"] == 0`) until `can_update`;
it masks rather than branches, so runners call it unconditionally and no
`lax.cond` ever carries the replay (XLA copies a conditional's operands).
Sampling happens inside `update`, so one learner step, priorities written
back included, is one pure function of the learner state: `jit`, `vmap` over
a sweep's members, and, for a data-parallel learner, `shard_map` over a
device mesh with the replay sharded alongside the batch (nothing in the
learner state lives on the host).

Everything that does not change shapes (learning rate, discount, epsilons,
target period, priority exponents, ...) is a traced array in the learner's
hyperparameters, so `jax.vmap(agent.init)(keys, hparams)` builds a sweep.
Runners drive these functions; of the states they read only the learner's
`updates` counter (for the log) and its params, target params and optimizer
state (the check that they are finite).

The rest of the lineage on these parts
--------------------------------------
* NGU and Agent57 (Badia et al. 2020a, b). Reward modules are bundles like
  the replay's, `init`, `reward`, `update`: the episodic novelty (an
  embedding network trained by inverse dynamics, and a per-env memory of
  embeddings with its k-nearest-neighbour kernel) and the lifelong novelty
  (RND). The learner trains their networks in `update` and publishes them in
  the view; the actor keeps the episodic memory in its state, computes the
  intrinsic reward in `act`/`observe`, and hands it to the learner's
  `observe` with the rest of its state. Each env's actor state also holds
  its policy index j, which selects (beta_j, gamma_j), and, for Agent57, its
  own sliding-window UCB bandit over the indices (the meta-controller is
  per actor in the paper), updated in `actor.observe` with the episode's
  undiscounted extrinsic return and drawn from in `act` at an episode's
  first step. The Q-network takes j (one-hot) as an input; NGU trains one
  Q-function on the mixed reward r_e + beta_j r_i, Agent57 two networks
  (extrinsic and intrinsic, each its own loss) combined as
  h(h^-1(Q_e) + beta_j h^-1(Q_i)) (`losses.agent57_q`). Replay stores j
  with each step, and the learner reads (beta_j, gamma_j) from a table in
  its hyperparameters.
* DDPG, TD3 and RDPG (Lillicrap et al. 2016; Fujimoto et al. 2018; Heess et
  al. 2015). The view holds the policy network's parameters and the action
  bounds; `act` adds exploration noise (Gaussian for TD3, or DDPG's
  Ornstein-Uhlenbeck process, whose state is the actor state, restarted at
  episode ends). The learner state holds policy and critic parameters,
  their targets and optimizers; the learner keeps actions inside the
  bounds with a tanh output or by inverting the critic's action gradients
  at the bounds (Hausknecht & Stone 2016, `losses.invert_gradients`).
  RDPG's actor state is its recurrent state (both cores, the previous
  action and the noise); its learner unrolls replayed sequences from their
  stored state after a burn-in, as R2D2 (`agents.rdpg`; Heess et al.
  backpropagate through whole episodes).

Adding an agent
---------------
1. Traced hyperparameters: a `flax.struct.dataclass` of arrays (with a
   docstring under each field: `jaxrl57 train --list-settings` prints them).
2. The learner state: a NamedTuple of params, target params, optimizer
   state, the replay state, counters and the hyperparameters.
3. The actor: `Actor(init, act, observe)`; a feed-forward policy is
   `stateless_actor(policy)`, with `policy(view, obs, key) -> actions`.
   Build it twice, with training and evaluation settings.
4. The parts: a network (`networks.make_q_network`, or a module of your
   own), a replay bundle (`replay.make_transition_buffer`: `add` the env
   steps in `observe`, `sample` and `set_priorities` in `update`, never read
   its state), `exploration` for acting, a loss from `losses` (or rlax), optax.
5. `update` computes the step for every call and keeps the old state where
   `can_update` is False (`jnp.where`, no `lax.cond`), returning its metrics
   with `"updated"`.
6. Return `Agent(init, view, actor, eval_actor, observe, update, can_update,
   metric_names)`; `runners.on_device.make_train(agent, env, run_config)`
   trains it (and `jax.vmap` of it a sweep) without any change to a runner.
   `tests/test_toy_agent.py` is a complete example: expected SARSA on these
   parts in about 60 lines, trained on CartPole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.replay.base import EnvSteps

LearnerState = Any
ActorState = Any
Metrics = dict[str, jax.Array]


class ActorView(NamedTuple):
    """What the learner publishes to its actors: the online network's
    parameters, the traced hyperparameters, and the learner's count of env
    steps observed (it schedules the exploration epsilon)."""

    params: Any
    hparams: Any
    env_steps: jax.Array


class Actor(NamedTuple):
    """A policy with per-env state, acting on a published view.

    state = init(view, num_envs)                       # leaves [num_envs, ...]
    actions, state = act(view, state, obs, key)        # obs [num_envs, ...]
    state = observe(state, actions, reward, done)      # after the env step

    `init` and `observe` draw no random numbers; an actor that needs some at an
    episode's start (a policy index) draws them in `act`, where the state says
    an episode begins."""

    init: Callable[[Any, int], ActorState]
    act: Callable[[Any, ActorState, jax.Array, jax.Array], tuple[jax.Array, ActorState]]
    observe: Callable[[ActorState, jax.Array, jax.Array, jax.Array], ActorState]


def stateless_actor(policy: Callable[[Any, jax.Array, jax.Array], jax.Array]) -> Actor:
    """The `Actor` of a feed-forward `policy(view, obs, key) -> actions`: no state."""
    return Actor(init=lambda view, num_envs: (),
                 act=lambda view, state, obs, key: (policy(view, obs, key), state),
                 observe=lambda state, actions, reward, done: state)


class Agent(NamedTuple):
    init: Callable[[jax.Array, Any], LearnerState]
    view: Callable[[LearnerState], Any]
    actor: Actor
    eval_actor: Actor
    observe: Callable[[LearnerState, EnvSteps, ActorState], LearnerState]
    update: Callable[[LearnerState, jax.Array], tuple[LearnerState, Metrics]]
    can_update: Callable[[LearnerState], jax.Array]
    metric_names: tuple[str, ...]


def hparams_from_values(cls, defaults: dict[str, float], values: dict[str, Any]):
    """`cls` (a dataclass of traced settings) from `defaults` overridden by
    `values`, each a float32 array; unknown names raise ValueError."""
    merged = {**defaults, **values}
    unknown = set(merged) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown hyperparameters: {sorted(unknown)}")
    return cls(**{k: jnp.asarray(v, jnp.float32) for k, v in merged.items()})


def annealed_learning_rate(hp):
    """The step size as a function of the update count: `hp.learning_rate`,
    annealed linearly to `hp.lr_final_fraction` of itself over
    `hp.lr_decay_updates` updates, then constant. The end points are traced,
    so a sweep may vary them (optax.linear_schedule branches in Python on
    its length)."""

    def learning_rate(count):
        progress = jnp.minimum(count / jnp.maximum(hp.lr_decay_updates, 1.0), 1.0)
        return hp.learning_rate * (1.0 + (hp.lr_final_fraction - 1.0) * progress)

    return learning_rate

