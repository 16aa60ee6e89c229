"""A new agent on the shared parts, trained by the runners unchanged.

Expected SARSA (van Seijen et al. 2009; Sutton & Barto 2018, eq. 6.9) with a
replay buffer and a target network: the target is the expectation of the next
values under the epsilon-greedy behaviour policy instead of their maximum.
It is written only against `jaxrl57.agents.base.Agent`, the network, replay,
exploration and optax, and trains CartPole through `runners.on_device`: what
a user adding an agent writes, and nothing in the runners knows of it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57 import envs, exploration
from jaxrl57.agents.base import Agent, stateless_actor
from jaxrl57.networks import make_q_network
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_transition_buffer
from jaxrl57.runners.config import RunConfig
from jaxrl57.runners.on_device import make_train


@flax.struct.dataclass
class SarsaHParams:
    learning_rate: jax.Array
    discount: jax.Array
    epsilon: jax.Array


class SarsaState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    replay: Any
    updates: jax.Array
    hparams: SarsaHParams


def make_expected_sarsa(spec, num_envs: int, hidden=(64, 64), capacity=20_000, batch=64,
                        target_period=100, learning_starts=500) -> Agent:
    net = make_q_network(spec.num_actions, spec.obs_shape, hidden_sizes=hidden)
    obs0 = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    buffer = make_transition_buffer(obs0, num_envs, capacity, batch)
    opt = lambda hp: optax.adam(hp.learning_rate)  # noqa: E731

    def init(key, hp):
        params = net.init(key, obs0)
        return SarsaState(params, params, opt(hp).init(params), buffer.init(),
                          jnp.int32(0), hp)

    def view(state):  # what the actors read
        return state.params, state.hparams.epsilon

    def policy(view, obs, key):
        params, epsilon = view
        return exploration.epsilon_greedy(key, net.apply(params, obs), epsilon)

    def greedy(view, obs, key):
        return jnp.argmax(net.apply(view[0], obs), axis=-1)

    def observe(state, steps: EnvSteps, actor_state):
        params = ReplayParams(discount=state.hparams.discount)
        return state._replace(replay=buffer.add(state.replay, steps, params))

    def can_update(state):
        return buffer.can_sample(state.replay, learning_starts)

    def update(state, key):
        hp, ready = state.hparams, can_update(state)
        b = buffer.sample(state.replay, key, ReplayParams(discount=hp.discount)).batch
        q_next = net.apply(state.target_params, b.next_obs)
        n = spec.num_actions  # the epsilon-greedy policy's probabilities
        pi = jax.nn.one_hot(jnp.argmax(q_next, -1), n) * (1 - hp.epsilon) + hp.epsilon / n
        target = b.reward + b.discount * jnp.sum(pi * q_next, -1)

        def loss_fn(params):
            q = jnp.take_along_axis(net.apply(params, b.obs), b.action[:, None], -1)[:, 0]
            return jnp.mean(jnp.square(q - jax.lax.stop_gradient(target)))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        step, opt_state = opt(hp).update(grads, state.opt_state)
        params = optax.apply_updates(state.params, step)
        updates = state.updates + 1
        target_params = jax.tree.map(lambda t, p: jnp.where(updates % target_period == 0, p, t),
                                     state.target_params, params)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ready, a, b), new, old)  # noqa: E731
        new = SarsaState(params, target_params, opt_state, state.replay, updates, hp)
        return keep(new, state), {"loss": jnp.where(ready, loss, 0.0),
                                  "updated": ready.astype(jnp.float32)}

    return Agent(init=init, view=view, actor=stateless_actor(policy),
                 eval_actor=stateless_actor(greedy), observe=observe, update=update,
                 can_update=can_update, metric_names=("loss", "updated"))


def test_expected_sarsa_learns_cartpole_through_the_runner():
    env = envs.make_env("jax:CartPole-v1")
    run = RunConfig(total_steps=24_000, num_envs=8, updates_per_train=2, num_rows=4,
                    eval_episodes=8)
    agent = make_expected_sarsa(env.spec, run.num_envs)
    seeds = 4
    hp = SarsaHParams(learning_rate=jnp.full(seeds, 1e-3), discount=jnp.full(seeds, 0.99),
                      epsilon=jnp.full(seeds, 0.1))
    train = jax.jit(jax.vmap(make_train(agent, env, run)))
    _, rows = train(jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds)), hp)
    final = np.asarray(rows["eval_return"])[:, -1]
    assert np.asarray(rows["updates"])[:, -1].min() > 5_000
    # A random policy lasts about 22 steps; learning takes every seed far past it.
    assert np.median(final) >= 150 and final.min() >= 60, final
