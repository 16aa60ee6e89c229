"""The on-device runner: a whole training of a JAX environment as one `lax.scan`.

Acting, environment steps, replay writes, gradient updates and periodic
greedy evaluation all run inside one compiled program, so

    train = make_train(agent, env, config)
    final, metrics = jax.jit(jax.vmap(train))(keys, hparams)   # a sweep, one program

trains a population of K members (seeds and/or hyperparameter values) at
once. The loop is cut into log rows; a row is `phases_per_row` training
phases, each stepping all `num_envs` environments `train_every` times and
then making `updates_per_train` gradient updates (no-ops until replay holds
`learning_starts` transitions). The replay ratio is therefore
`updates_per_train / (train_every * num_envs)` updates per env step. Every
row ends with a greedy evaluation on fresh environments.

`run_rows(state, num_rows)` advances a `RunnerState` by some rows; the
command line calls it chunk by chunk so it can show progress and write
checkpoints, and because the computation is deterministic a run resumed from
a checkpoint ends with exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl57.agents.base import Agent
from jaxrl57.envs.base import JaxEnv
from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners.config import RunConfig
from jaxrl57.runners.evaluation import make_scan_evaluate
from jaxrl57.runners.rows import log_row


class RunnerState(NamedTuple):
    agent: Any  # the learner's state
    actor: Any  # the actor's state, per env
    env_state: Any
    obs: jax.Array
    key: jax.Array
    episode_return: jax.Array  # [E] running undiscounted return
    episode_length: jax.Array  # [E]
    row: jax.Array  # int32: log rows completed
    eval_key: jax.Array  # the key of the last row's evaluation (`jaxrl57 eval` replays it)


def _where_done(done, new, old):
    return jax.tree.map(
        lambda n, o: jnp.where(done.reshape(done.shape + (1,) * (n.ndim - 1)), n, o), new, old)


def make_runner(agent: Agent, env: JaxEnv, config: RunConfig):
    """Returns `(init, run_rows)`: `init(key, hparams) -> RunnerState` and
    `run_rows(state, num_rows) -> (state, rows)` where `rows` maps each name of
    `runners.rows.ROW_FIELDS` and `agent.metric_names` to a [num_rows] array."""
    config.validate()
    E = config.num_envs
    evaluate = make_scan_evaluate(agent, env, config.eval_episodes, config.eval_max_steps)

    def init(key, hparams) -> RunnerState:
        agent_key, env_key, key = jax.random.split(key, 3)
        env_state, obs = jax.vmap(env.reset)(jax.random.split(env_key, E))
        learner = agent.init(agent_key, hparams)
        return RunnerState(
            agent=learner, actor=agent.actor.init(agent.view(learner), E),
            env_state=env_state, obs=obs, key=key,
            episode_return=jnp.zeros(E), episode_length=jnp.zeros(E, jnp.int32),
            row=jnp.zeros((), jnp.int32), eval_key=jnp.zeros_like(key))

    metric_names = tuple(n for n in agent.metric_names if n != "updated")
    zero_metrics = {name: jnp.zeros(()) for name in metric_names}

    def env_step(carry, _):
        state, stats = carry
        key, act_key, step_key, reset_key = jax.random.split(state.key, 4)
        actions, actor = agent.actor.act(agent.view(state.agent), state.actor, state.obs,
                                         act_key)
        env_state, next_obs, reward, term, trunc = jax.vmap(env.step)(
            jax.random.split(step_key, E), state.env_state, actions)
        learner = agent.observe(state.agent,
                                EnvSteps(state.obs, actions, reward, term, trunc, next_obs), actor)
        done = term | trunc
        actor = agent.actor.observe(actor, actions, reward, done)
        reset_state, reset_obs = jax.vmap(env.reset)(jax.random.split(reset_key, E))
        ep_return = state.episode_return + reward
        ep_length = state.episode_length + 1
        stats = dict(
            stats,
            return_sum=stats["return_sum"] + jnp.sum(jnp.where(done, ep_return, 0.0)),
            length_sum=stats["length_sum"] + jnp.sum(jnp.where(done, ep_length, 0)),
            episodes=stats["episodes"] + jnp.sum(done))
        state = state._replace(
            agent=learner, actor=actor, env_state=_where_done(done, reset_state, env_state),
            obs=_where_done(done, reset_obs, next_obs), key=key,
            episode_return=jnp.where(done, 0.0, ep_return),
            episode_length=jnp.where(done, 0, ep_length))
        return (state, stats), None

    def one_update(carry, key):
        agent_state, stats = carry
        agent_state, m = agent.update(agent_state, key)
        stats = dict(stats, updates_done=stats["updates_done"] + m["updated"],
                     metric_sums={k: v + m[k] for k, v in stats["metric_sums"].items()})
        return (agent_state, stats), None

    def phase(carry, _):
        """`train_every` steps of all envs, then `updates_per_train` updates
        (no-ops while replay warms up). No lax.cond: see agents.base."""
        (state, stats), _ = jax.lax.scan(env_step, carry, length=config.train_every)
        key, update_key = jax.random.split(state.key)
        (agent_state, stats), _ = jax.lax.scan(
            one_update, (state.agent, stats),
            jax.random.split(update_key, config.updates_per_train))
        return (state._replace(agent=agent_state, key=key), stats), None

    def one_row(state: RunnerState, _):
        stats = dict(return_sum=jnp.zeros(()), length_sum=jnp.zeros((), jnp.int32),
                     episodes=jnp.zeros((), jnp.int32), updates_done=jnp.zeros(()),
                     metric_sums=zero_metrics)
        (state, stats), _ = jax.lax.scan(phase, (state, stats),
                                         length=config.phases_per_row)
        key, eval_key = jax.random.split(state.key)
        state = state._replace(key=key, row=state.row + 1, eval_key=eval_key)
        # Every row is evaluated (a cond here would carry the whole agent state).
        eval_return = evaluate(agent.view(state.agent), eval_key)
        row = log_row(jnp, env_steps=state.row * config.steps_per_row,
                      updates=state.agent.updates if hasattr(state.agent, "updates")
                      else jnp.int32(0),
                      return_sum=stats["return_sum"], length_sum=stats["length_sum"],
                      episodes=stats["episodes"], eval_return=eval_return,
                      metric_sums=stats["metric_sums"], updates_done=stats["updates_done"])
        return state, row

    def run_rows(state: RunnerState, num_rows: int):
        return jax.lax.scan(one_row, state, length=num_rows)

    return init, run_rows


def make_train(agent: Agent, env: JaxEnv, config: RunConfig):
    """`train(key, hparams) -> (final RunnerState, rows)`: the whole run, one scan.

    `jax.jit(jax.vmap(train))(keys, hparams)` runs a sweep as one program."""
    init, run_rows = make_runner(agent, env, config)

    def train(key, hparams):
        return run_rows(init(key, hparams), config.num_rows)

    return train
