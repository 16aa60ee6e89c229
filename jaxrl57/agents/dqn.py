"""The DQN family as one agent: DQN, Double DQN, dueling, n-step, prioritized replay.

* DQN: Mnih et al. 2015, "Human-level control through deep RL" (Nature):
  Q-learning with a target network, Huber-clipped TD error, centered RMSProp.
* Double DQN: van Hasselt et al. 2016, eq. 4 (online net selects, target evaluates).
* Dueling: Wang et al. 2016, eq. 9 (`networks.DuelingHead`).
* Prioritized replay: Schaul et al. 2016 (proportional variant, IS weights
  with beta annealed to 1).
* n-step returns: Sutton 1988; as used by Hessel et al. 2018 (Rainbow).

The agent follows `jaxrl57.agents.base.Agent`. Shapes are fixed by the
static `DQNConfig`; every numeric setting that does not change a shape is a
traced array in `DQNHParams`, so `jax.vmap(agent.init)(keys, hparams)`
gives a population whose members differ in learning rate, discount, ...

Target network: every `target_period` gradient updates the target moves to
`tau * online + (1 - tau) * target`. `tau = 1` is the periodic copy of
Nature DQN; `target_period = 1` with a small `tau` is Polyak averaging.
Both are traced, so both can be swept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from jaxrl57 import exploration, losses
from jaxrl57.agents.base import Agent
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks import make_q_network
from jaxrl57.replay import (
    Transition,
    nstep_emit,
    nstep_init,
    nstep_push,
    prioritized_add,
    prioritized_init,
    prioritized_sample,
    prioritized_update,
    uniform_add,
    uniform_init,
    uniform_sample,
)


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Static settings: they fix shapes or program structure (not sweepable by vmap)."""

    torso: str = "mlp"  # mlp | nature_cnn | small_cnn
    hidden_sizes: tuple[int, ...] = (256, 256)
    dueling: bool = False
    double: bool = False
    n_step: int = 1
    prioritized: bool = False
    replay_capacity: int = 100_000
    batch_size: int = 32
    optimizer: str = "adam"  # adam | rmsprop (centered, as in Nature DQN)

    def validate(self) -> None:
        """Raises ValueError for impossible settings."""
        if self.batch_size < 1 or self.replay_capacity < 1 or self.n_step < 1:
            raise ValueError("batch_size, replay_capacity and n_step must be >= 1")
        if self.batch_size > self.replay_capacity:
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than replay_capacity "
                f"({self.replay_capacity})")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be adam or rmsprop, not {self.optimizer!r}")
        if self.torso not in ("mlp", "nature_cnn", "small_cnn"):
            raise ValueError(f"torso must be mlp, nature_cnn or small_cnn, not {self.torso!r}")


@flax.struct.dataclass
class DQNHParams:
    """Traced settings (float32 scalars, or [K] when stacked for a sweep)."""

    learning_rate: jax.Array
    lr_final_fraction: jax.Array  # learning rate anneals linearly to this fraction ...
    lr_decay_updates: jax.Array  # ... over this many updates (fraction 1: constant)
    discount: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array
    epsilon_decay_steps: jax.Array  # env steps
    eval_epsilon: jax.Array
    learning_starts: jax.Array  # transitions in replay before the first update
    target_period: jax.Array  # gradient updates between target moves
    target_tau: jax.Array
    huber_delta: jax.Array
    max_grad_norm: jax.Array
    optimizer_eps: jax.Array
    rmsprop_decay: jax.Array
    priority_alpha: jax.Array
    priority_beta_start: jax.Array
    priority_beta_steps: jax.Array  # updates over which beta anneals to 1

    @classmethod
    def create(cls, **values: Any) -> DQNHParams:
        """Defaults (Adam, small-task scale) overridden by `values`."""
        merged = {**DEFAULT_HPARAMS, **values}
        unknown = set(merged) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown hyperparameters: {sorted(unknown)}")
        return cls(**{k: jnp.asarray(v, jnp.float32) for k, v in merged.items()})


DEFAULT_HPARAMS: dict[str, float] = dict(
    learning_rate=1e-3, lr_final_fraction=1.0, lr_decay_updates=1.0, discount=0.99,
    epsilon_start=1.0, epsilon_end=0.05,
    epsilon_decay_steps=10_000, eval_epsilon=0.0, learning_starts=1_000, target_period=500,
    target_tau=1.0, huber_delta=1.0, max_grad_norm=10.0, optimizer_eps=1e-8,
    rmsprop_decay=0.95, priority_alpha=0.6, priority_beta_start=0.4,
    priority_beta_steps=100_000,
)


class DQNState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    replay: Any
    nstep: Any
    env_steps: jax.Array  # int32, total env steps observed
    updates: jax.Array  # int32, gradient updates done
    hparams: DQNHParams


def make_optimizer(config: DQNConfig, hp: DQNHParams) -> optax.GradientTransformation:
    """Gradient clipping then Adam, or the centered RMSProp of Nature DQN.

    Nature DQN's RMSProp (Graves 2013, eq. 38-41): decay 0.95 for both
    moments, 0.01 added inside the square root; optax's centered rmsprop is
    exactly that form.
    """
    clip = optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=hp.max_grad_norm)
    # Linear annealing with traced end points, so it can be swept like the rest
    # (optax.linear_schedule branches in Python on its length).
    def learning_rate(count):
        progress = jnp.minimum(count / jnp.maximum(hp.lr_decay_updates, 1.0), 1.0)
        return hp.learning_rate * (1.0 + (hp.lr_final_fraction - 1.0) * progress)
    if config.optimizer == "adam":
        opt = optax.adam(learning_rate=learning_rate, eps=hp.optimizer_eps)
    else:
        opt = optax.rmsprop(learning_rate=learning_rate, decay=hp.rmsprop_decay,
                            eps=hp.optimizer_eps, centered=True)
    return optax.chain(clip, opt)


def make_dqn(config: DQNConfig, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds the DQN-family agent for `num_envs` lockstep environments of `spec`."""
    config.validate()
    if not spec.discrete:
        raise ValueError(f"DQN needs a discrete action space; {spec.name} has continuous actions")
    network = make_q_network(spec.num_actions, spec.obs_shape, torso=config.torso,
                             hidden_sizes=config.hidden_sizes, dueling=config.dueling)
    example_obs = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    example = Transition(obs=example_obs, action=jnp.zeros((), jnp.int32),
                         reward=jnp.zeros((), jnp.float32), discount=jnp.zeros((), jnp.float32),
                         next_obs=example_obs)

    def init(key, hp: DQNHParams) -> DQNState:
        params = network.init(key, example_obs)
        opt_state = make_optimizer(config, hp).init(params)
        if config.prioritized:
            replay = prioritized_init(example, config.replay_capacity)
        else:
            replay = uniform_init(example, config.replay_capacity)
        return DQNState(
            params=params, target_params=params, opt_state=opt_state, replay=replay,
            nstep=nstep_init(example_obs, num_envs, config.n_step),
            env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32), hparams=hp)

    def epsilon(state: DQNState):
        hp = state.hparams
        return exploration.linear_epsilon(state.env_steps, hp.epsilon_start, hp.epsilon_end,
                                          hp.epsilon_decay_steps)

    def act(state: DQNState, obs, key):
        q = network.apply(state.params, obs)
        return exploration.epsilon_greedy(key, q, epsilon(state)), state

    def act_eval(state: DQNState, obs, key):
        q = network.apply(state.params, obs)
        return exploration.epsilon_greedy(key, q, state.hparams.eval_epsilon)

    def observe(state: DQNState, obs, action, reward, terminated, truncated, next_obs):
        nstep = nstep_push(state.nstep, obs, action, reward, terminated, truncated, next_obs)
        transitions, valid = nstep_emit(nstep, state.hparams.discount)
        # No lax.cond around the write: XLA copies a conditional's operands, and
        # the replay is the largest array of the run. The first n-1 steps write
        # into the (still empty) slot at `position` without advancing it.
        if config.prioritized:
            added = prioritized_add(state.replay, transitions, state.hparams.priority_alpha)
            replay = added._replace(tree=jnp.where(valid, added.tree, state.replay.tree))
        else:
            replay = uniform_add(state.replay, transitions)
        replay = replay._replace(
            position=jnp.where(valid, replay.position, state.replay.position),
            size=jnp.where(valid, replay.size, state.replay.size))
        return state._replace(nstep=nstep, replay=replay,
                              env_steps=state.env_steps + obs.shape[0])

    def can_update(state: DQNState):
        return state.replay.size >= jnp.maximum(state.hparams.learning_starts, config.batch_size)

    def loss_fn(params, target_params, batch: Transition, weights, hp: DQNHParams):
        q_t_target = network.apply(target_params, batch.next_obs)
        if config.double:
            # One pass of the online net over obs and next_obs together.
            both = network.apply(params, jnp.concatenate([batch.obs, batch.next_obs]))
            q_tm1, q_t_online = jnp.split(both, 2)
            loss, td = losses.double_dqn_loss(
                q_tm1, batch.action, batch.reward, batch.discount, q_t_target, q_t_online,
                huber_delta=hp.huber_delta, weights=weights)
        else:
            q_tm1 = network.apply(params, batch.obs)
            loss, td = losses.dqn_loss(
                q_tm1, batch.action, batch.reward, batch.discount, q_t_target,
                huber_delta=hp.huber_delta, weights=weights)
        return loss, (td, jnp.mean(q_tm1))

    def update(state: DQNState, key):
        """One gradient step, or no change while replay is warming up.

        The warm-up test masks the result instead of branching (`lax.cond`
        would copy the replay it carries; under `vmap` it is a select anyway).
        `metrics["updated"]` is 1.0 when the step counted.
        """
        hp = state.hparams
        ready = can_update(state)
        if config.prioritized:
            beta = hp.priority_beta_start + (1.0 - hp.priority_beta_start) * jnp.minimum(
                1.0, state.updates / hp.priority_beta_steps)
            batch, indices, weights = prioritized_sample(state.replay, key, config.batch_size,
                                                         beta)
        else:
            batch, weights = uniform_sample(state.replay, key, config.batch_size), None
        (loss, (td, q_mean)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch, weights, hp)
        updates, opt_state = make_optimizer(config, hp).update(grads, state.opt_state,
                                                                state.params)
        params = optax.apply_updates(state.params, updates)
        num_updates = state.updates + 1
        move = jnp.mod(num_updates, jnp.maximum(hp.target_period, 1).astype(jnp.int32)) == 0
        target_params = jax.tree.map(
            lambda t, p: jnp.where(move, hp.target_tau * p + (1.0 - hp.target_tau) * t, t),
            state.target_params, params)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ready, n, o), new, old)
        replay = state.replay
        if config.prioritized:
            updated = prioritized_update(replay, indices, jnp.abs(td), hp.priority_alpha)
            replay = updated._replace(tree=jnp.where(ready, updated.tree, replay.tree),
                                      max_priority=jnp.where(ready, updated.max_priority,
                                                             replay.max_priority))
        metrics = {"loss": loss, "q_mean": q_mean, "td_abs": jnp.mean(jnp.abs(td)),
                   "grad_norm": optax.tree.norm(grads)}
        metrics = {k: jnp.where(ready, v, 0.0) for k, v in metrics.items()}
        metrics["updated"] = ready.astype(jnp.float32)
        new_state = state._replace(
            params=keep(params, state.params), target_params=keep(target_params,
                                                                  state.target_params),
            opt_state=keep(opt_state, state.opt_state), replay=replay,
            updates=jnp.where(ready, num_updates, state.updates))
        return new_state, metrics

    return Agent(init=init, act=act, act_eval=act_eval, observe=observe, update=update,
                 can_update=can_update,
                 metric_names=("loss", "q_mean", "td_abs", "grad_norm", "updated"))


# Named presets: (static config fields, traced hyperparameters). The Atari
# values are those of the papers; `jaxrl57.configs` adapts them per env family.
NATURE_ATARI_HPARAMS = dict(
    learning_rate=2.5e-4, discount=0.99, epsilon_start=1.0, epsilon_end=0.1,
    epsilon_decay_steps=1_000_000, eval_epsilon=0.05, learning_starts=50_000,
    target_period=10_000, target_tau=1.0, huber_delta=1.0, max_grad_norm=float("inf"),
    optimizer_eps=0.01, rmsprop_decay=0.95,
)

PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Mnih et al. 2015, Extended Data Table 1.
    "dqn": (dict(), dict()),
    # van Hasselt et al. 2016 ("tuned": eps_end 0.01, eval eps 0.001, target 30k frames).
    "double_dqn": (dict(double=True), dict()),
    # Wang et al. 2016: dueling + double, gradient norm clipped to 10.
    "dueling": (dict(double=True, dueling=True), dict()),
    # Schaul et al. 2016: proportional, alpha 0.6, beta 0.4 -> 1, double DQN.
    "prioritized": (dict(double=True, prioritized=True), dict(priority_alpha=0.6,
                                                             priority_beta_start=0.4)),
}

ATARI_PRESET_HPARAMS: dict[str, dict[str, float]] = {
    "dqn": dict(),
    "double_dqn": dict(epsilon_end=0.01, eval_epsilon=0.001, target_period=7_500),
    "dueling": dict(epsilon_end=0.01, eval_epsilon=0.001, target_period=7_500,
                    max_grad_norm=10.0),
    # Prioritized replay: step size divided by 4 (Schaul et al. 2016, sec. 4).
    "prioritized": dict(epsilon_end=0.01, eval_epsilon=0.001, target_period=7_500,
                        learning_rate=2.5e-4 / 4),
}
