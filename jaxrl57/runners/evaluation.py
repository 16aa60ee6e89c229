"""Evaluation episodes, for every runner: one protocol, three loops.

The protocol: each of `num_episodes` envs plays ONE episode with the agent's
evaluation actor (`Agent.eval_actor`: greedy up to `eval_epsilon`, with its
own state per episode), acting on the learner's view, cut after the horizon
(`eval_horizon`); the score is the mean undiscounted return. EnvPool's
evaluation envs play whole games with unclipped rewards (`envs.envpool_env`).

The loops:
- `make_scan_evaluate`: a JAX env, the episodes as one `lax.scan` inside the
  on-device runner's program;
- `host_evaluate`: an EnvPool adapter stepped from Python, one jitted actor
  call per step;
- `make_xla_evaluate`: the same EnvPool episodes as one jitted program that
  steps the pool through its XLA interface (`envs.envpool_xla`): the same
  keys, actions and episodes as the host loop (tested), without a host round
  trip per step. Pools with 64-bit arrays (MuJoCo) go through it only with
  `jax_enable_x64`; the runners play them with the host loop.

Actions are the evaluation actor's, discrete (int32 [n]) or continuous
(float32 [n, D]); the EnvPool loops cast them to the pool's action dtype.

The EnvPool loops evaluate K sweep members at once: the pool holds K * n envs
(member k owns envs k*n .. k*n+n-1) and the actor functions are mapped over
the member axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.agents.base import Agent
from jaxrl57.envs.base import JaxEnv


def eval_horizon(max_episode_steps: int, max_steps: int = 0) -> int:
    """Steps an evaluation episode may take: the env's limit, or `max_steps` when
    that is set (> 0) and shorter."""
    return min(max_episode_steps, max_steps) if max_steps > 0 else max_episode_steps


class Episodes(NamedTuple):
    """The evaluation episodes of a JAX env: undiscounted returns and lengths [n],
    and, when recorded, the env states of episode 0 (leaves [horizon + 1, ...]:
    the state before each step, then the one after the last) with how many of
    them belong to the episode (`lengths[0] + 1`)."""

    returns: jax.Array
    lengths: jax.Array
    first_states: Any = None


def make_scan_episodes(agent: Agent, env: JaxEnv, num_episodes: int, max_steps: int = 0,
                       record: bool = False):
    """`play(view, key) -> Episodes` of `num_episodes` episodes of a JAX env (`view`:
    `agent.view` of the learner state) with the evaluation actor, as one `lax.scan`
    of the horizon's length (finished episodes are masked). `record` keeps the
    env states of episode 0, for rendering it."""
    horizon = eval_horizon(env.spec.max_episode_steps, max_steps)
    actor = agent.eval_actor
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731

    def play(view, key):
        reset_key, key = jax.random.split(key)
        env_state, obs = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))

        def body(carry, _):
            env_state, obs, actor_state, returns, lengths, alive, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            before = first(env_state) if record else None
            actions, actor_state = actor.act(view, actor_state, obs, act_key)
            env_state, obs, reward, term, trunc = jax.vmap(env.step)(
                jax.random.split(step_key, num_episodes), env_state, actions)
            actor_state = actor.observe(actor_state, actions, reward, term | trunc)
            returns = returns + jnp.where(alive, reward, 0.0)
            lengths = lengths + alive.astype(jnp.int32)
            alive = alive & ~(term | trunc)
            return (env_state, obs, actor_state, returns, lengths, alive, key), before

        init = (env_state, obs, actor.init(view, num_episodes), jnp.zeros(num_episodes),
                jnp.zeros(num_episodes, jnp.int32), jnp.ones(num_episodes, bool), key)
        (last, _, _, returns, lengths, _, _), befores = jax.lax.scan(body, init,
                                                                   length=horizon)
        if not record:
            return Episodes(returns, lengths)
        # Envs are not reset here, so the state after episode 0's last step
        # (step lengths[0] - 1) is the state before the next one, or the scan's
        # last: states[:lengths[0] + 1] is the whole episode.
        states = jax.tree.map(lambda b, x: jnp.concatenate([b, x[None]]), befores, first(last))
        return Episodes(returns, lengths, states)

    return play


def make_scan_evaluate(agent: Agent, env: JaxEnv, num_episodes: int, max_steps: int = 0):
    """`evaluate(view, key) -> mean return` of `make_scan_episodes`' episodes: the
    score of a row of the on-device runner."""
    play = make_scan_episodes(agent, env, num_episodes, max_steps)

    def evaluate(view, key):
        return jnp.mean(play(view, key).returns)

    return evaluate


class MemberActor(NamedTuple):
    """The evaluation actor mapped over K members (`runners.devices.over_members`):
    `init(views, n)`, `act(views, actor_states, obs [K, n, ...],
    keys [K, 2])` and `observe(actor_states, actions, reward, done)` with `[K, n]`
    leaves."""

    init: Callable
    act: Callable
    observe: Callable


def member_actor(agent: Agent, per_member: Callable) -> MemberActor:
    """`agent`'s evaluation actor over the member axis; `per_member(fn, in_axes=0)`
    maps a single-member function over it."""
    actor = agent.eval_actor
    return MemberActor(init=per_member(actor.init, in_axes=(0, None)),
                       act=per_member(actor.act), observe=per_member(actor.observe))


def _by_member(num_members: int, x):
    return x.reshape((num_members, -1) + x.shape[1:])


def host_episodes(envs, actor: MemberActor, view, key, split2: Callable, num_members: int,
                  horizon: int, record_first: bool = False):
    """The first episode of each env of the EnvPool adapter `envs` (K * n envs,
    freshly reset), stepped from Python: `(returns [K * n], lengths [K * n],
    observations of env 0 during its episode or None)`.

    `actor`'s functions are jitted by the caller (`init` with `n` static);
    `split2(keys [K, 2]) -> (keys, act_keys)` advances the members' keys."""
    obs = envs.reset()
    returns = np.zeros(envs.num_envs)
    lengths = np.zeros(envs.num_envs, np.int64)
    alive = np.ones(envs.num_envs, bool)
    frames = [obs[0]] if record_first else None
    actor_state = actor.init(view, envs.num_envs // num_members)
    for _ in range(horizon):
        key, act_key = split2(key)
        actions, actor_state = actor.act(view, actor_state, _by_member(num_members, obs),
                                         act_key)
        actions = np.asarray(actions)
        out = envs.step(actions.reshape((-1,) + actions.shape[2:]))
        done = out.terminated | out.truncated
        actor_state = actor.observe(actor_state, actions, _by_member(num_members, out.reward),
                                    _by_member(num_members, done))
        returns += np.where(alive, out.reward, 0.0)
        lengths += alive
        if record_first and alive[0]:
            frames.append(out.final_obs[0])  # the observation reached, final or not
        alive &= ~done
        obs = out.obs
        if not alive.any():
            break
    envs.pop_episode_stats()
    return returns, lengths, frames


def host_evaluate(envs, actor: MemberActor, view, key, split2: Callable, num_members: int,
                  horizon: int) -> np.ndarray:
    """Per member `[K]`, the mean first-episode return of its envs (`host_episodes`)."""
    returns, _, _ = host_episodes(envs, actor, view, key, split2, num_members, horizon)
    return _by_member(num_members, returns).mean(axis=1)


def first_episode_returns(fns, handle, act, observe, actor, key, horizon: int):
    """Plays from a `reset` until every env's first episode has ended or `horizon`
    steps, inside the caller's program, through EnvPool's XLA interface. Returns
    `(handle, returns [E] float32, lengths [E] int32)`; the pool is left idle.

    fns: `envs.envpool_xla.XlaFunctions` of a sync-mode pool; `handle`: its
    `fns.handle`, passed into the program as an argument.
    act(actor, obs [E, ...], key) -> (actions [E] or [E, D], actor, key): the policy, with
    its own state (`actor`) and its own use of the key; `observe(actor,
    actions, reward, done) -> actor` after each step, or None (a feed-forward
    policy). The returns sum the rewards `recv` gives (the pool's own reward
    setting: unclipped for the evaluation protocol).
    """
    from jaxrl57.envs.envpool_xla import recv_ordered, send_all

    handle, first = recv_ordered(fns, handle)
    num_envs = first.reward.shape[0]

    def cond(carry):
        t, alive = carry[0], carry[4]
        return (t < horizon) & jnp.any(alive)

    def body(carry):
        t, handle, obs, actor, alive, returns, lengths, key = carry
        actions, actor, key = act(actor, obs, key)
        handle = send_all(fns, handle, actions)
        handle, out = recv_ordered(fns, handle)
        done = out.terminated | out.truncated
        if observe is not None:
            actor = observe(actor, actions, out.reward, done)
        returns = returns + jnp.where(alive, out.reward, 0.0)
        lengths = lengths + alive.astype(jnp.int32)
        alive = alive & ~done
        return t + 1, handle, out.obs, actor, alive, returns, lengths, key

    carry = (jnp.int32(0), handle, first.obs, actor, jnp.ones(num_envs, bool),
             jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, jnp.int32), key)
    _, handle, _, _, _, returns, lengths, _ = jax.lax.while_loop(cond, body, carry)
    return handle, returns, lengths


def make_xla_evaluate(pool, actor: MemberActor, split2: Callable, num_members: int,
                      num_episodes: int, horizon: int) -> Callable[[Any, jax.Array], np.ndarray]:
    """`host_evaluate` as one jitted program over the sync-mode EnvPool `pool`
    (K * n envs, n = `num_episodes`): `evaluate(views, key) -> [K]` mean
    first-episode returns, with the same keys, actions and episodes as the host
    loop. `actor` holds the unjitted member-mapped functions."""
    from jaxrl57.envs import envpool_xla

    fns = envpool_xla.xla_functions(pool)
    by_member = lambda x: _by_member(num_members, x)  # noqa: E731

    def program(handle, view, key):
        def act(actor_state, obs, key):
            key, act_key = split2(key)
            actions, actor_state = actor.act(view, actor_state, by_member(obs), act_key)
            return actions.reshape((-1,) + actions.shape[2:]), actor_state, key

        def observe(actor_state, actions, reward, done):
            return actor.observe(actor_state, by_member(actions), by_member(reward),
                                 by_member(done))

        handle, returns, _ = first_episode_returns(
            fns, handle, act, observe, actor.init(view, num_episodes), key, horizon)
        return handle, by_member(returns).mean(axis=1)

    compiled = jax.jit(program)

    def evaluate(view, key) -> np.ndarray:
        envpool_xla.reset(pool)
        _, returns = compiled(fns.handle, view, key)
        return np.asarray(returns, np.float64)

    return evaluate


__all__ = ["Episodes", "MemberActor", "eval_horizon", "first_episode_returns", "host_episodes",
           "host_evaluate", "make_scan_episodes", "make_scan_evaluate", "make_xla_evaluate",
           "member_actor"]
