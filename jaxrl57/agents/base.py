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

`update` is a no-op (returning `metrics["updated"] == 0`) until `can_update`;
it masks rather than branches, so runners call it unconditionally and no
`lax.cond` ever carries the replay (XLA copies a conditional's operands).

Everything that does not change shapes (learning rate, discount, epsilons,
target period, priority exponents, ...) is a traced array in
`state.hparams`, so `jax.vmap(agent.init)(keys, hparams)` builds a sweep.
Runners drive these functions and never look inside the state; the next
agents (R2D2, Rainbow, Agent57) provide the same six functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

AgentState = Any
Metrics = dict[str, jax.Array]


class Agent(NamedTuple):
    init: Callable[[jax.Array, Any], AgentState]
    act: Callable[[AgentState, jax.Array, jax.Array], tuple[jax.Array, AgentState]]
    act_eval: Callable[[AgentState, jax.Array, jax.Array], jax.Array]
    observe: Callable[..., AgentState]
    update: Callable[[AgentState, jax.Array], tuple[AgentState, Metrics]]
    can_update: Callable[[AgentState], jax.Array]
    metric_names: tuple[str, ...]
