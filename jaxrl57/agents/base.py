"""The agent interface.

An agent is a bundle of pure functions built from a static config and an
`EnvSpec`, in the spirit of `optax.GradientTransformation`:

    agent = make_dqn(config, spec, num_envs)
    state = agent.init(key, hparams)                       # AgentState pytree
    actions, state = agent.act(state, obs, key)            # obs [E, ...] -> actions [E]
    actions = agent.act_eval(state, obs, key)              # evaluation policy
    state = agent.observe(state, obs, actions, reward, terminated, truncated, next_obs)
    state, metrics = agent.update(state, key)              # one gradient step
    ready = agent.can_update(state)                        # bool array: replay warm?
    light = agent.actor_view(state)                        # what `act` reads (optional)

`update` is a no-op (returning `metrics["updated"] == 0`) until `can_update`;
it masks rather than branches, so runners call it unconditionally and no
`lax.cond` ever carries the replay (XLA copies a conditional's operands).

Evaluation goes through `agent.eval_actor` (`EvalActor`): an actor state
per evaluation episode, which recurrent agents use for their memory
(previous action and reward, LSTM state); `stateless_eval_actor` wraps a
feed-forward `act_eval`. `recurrent` agents change their state in `act`
(the actor's recurrent state), so a runner must keep what `act` returns.

Everything that does not change shapes (learning rate, discount, epsilons,
target period, priority exponents, ...) is a traced array in
`state.hparams`, so `jax.vmap(agent.init)(keys, hparams)` builds a sweep.
Runners drive these functions and never look inside the state; the next
agents (R2D2, Rainbow, Agent57) provide the same six functions.

Adding an agent
---------------
1. Traced hyperparameters: a `flax.struct.dataclass` of arrays (with a
   docstring under each field: `jaxrl57 train --list-settings` prints them).
2. The state: a NamedTuple of params, target params, optimizer state, the
   replay state, counters and the hyperparameters.
3. The parts: a network (`networks.make_q_network`, or a module of your
   own), a replay bundle (`replay.make_transition_buffer`: `add` the env
   steps in `observe`, `sample` and `set_priorities` in `update`, never read
   its state), `exploration` for acting, a loss from `losses` (or rlax), optax.
4. `update` computes the step for every call and keeps the old state where
   `can_update` is False (`jnp.where`, no `lax.cond`), returning its metrics
   with `"updated"`.
5. Return `Agent(init, act, act_eval, observe, update, can_update,
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

AgentState = Any
Metrics = dict[str, jax.Array]


class EvalActor(NamedTuple):
    """Acting in evaluation episodes with an actor state of their own.

    actor = init(state, num_envs)
    actions, actor = act(state, actor, obs, key)
    actor = observe(actor, actions, reward, done)   # after the env step
    """

    init: Callable[[AgentState, int], Any]
    act: Callable[[AgentState, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    observe: Callable[[Any, jax.Array, jax.Array, jax.Array], Any]


def stateless_eval_actor(act_eval) -> EvalActor:
    """The `EvalActor` of a feed-forward agent: no actor state."""
    return EvalActor(init=lambda state, num_envs: (),
                     act=lambda state, actor, obs, key: (act_eval(state, obs, key), actor),
                     observe=lambda actor, actions, reward, done: actor)


class Agent(NamedTuple):
    init: Callable[[jax.Array, Any], AgentState]
    act: Callable[[AgentState, jax.Array, jax.Array], tuple[jax.Array, AgentState]]
    act_eval: Callable[[AgentState, jax.Array, jax.Array], jax.Array]
    observe: Callable[..., AgentState]
    update: Callable[[AgentState, jax.Array], tuple[AgentState, Metrics]]
    can_update: Callable[[AgentState], jax.Array]
    metric_names: tuple[str, ...]
    eval_actor: EvalActor | None = None  # None: stateless_eval_actor(act_eval)
    recurrent: bool = False  # `act` changes the state (the actors' recurrent state)
    # What `act` reads, as a state `act` accepts and acts on exactly as on the full
    # one (DQN: the replay, n-step window, optimizer state and target params become
    # None). The asynchronous pipeline gives its actor thread a copy of this instead
    # of the whole state, whose replay the learner owns. None: not available.
    actor_view: Callable[[AgentState], AgentState] | None = None

    def evaluation_actor(self) -> EvalActor:
        return self.eval_actor or stateless_eval_actor(self.act_eval)


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

