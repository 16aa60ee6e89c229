"""R2D2: recurrent replay distributed DQN (Kapturowski et al. 2019), as one agent.

The agent of `jaxrl57.agents.base` with a recurrent Q-network
(`networks.recurrent.RecurrentQNetwork`: torso, previous action and reward,
LSTM or ConvLSTM core, dueling head). Its pieces, as in the paper:

* Actors keep their recurrent state per environment, reset where an episode
  begins, and act epsilon-greedily with the Ape-X ladder of epsilons over the
  E environments (`exploration.apex_epsilons`, eps 0.4, alpha 7).
* Sequence replay (`replay.sequence`): every `period` (40) steps each env
  emits its last `seq_len = burn_in + trace_length + 1` steps (40 + 80 + 1,
  the layout of acme's R2D2: the last step only gives the bootstrap value),
  stored with the actor's recurrent state at the sequence's first step (the
  "stored state" strategy, sec. 3), prioritized by `losses.r2d2_priority`
  (eta 0.9, exponent 0.9, importance sampling exponent 0.6).
* Learner: burn-in (40 steps) replays the start of a sequence from the
  stored state only to warm the state, which is then cut from the gradient
  (`lax.stop_gradient`); the next `trace_length` (80) steps carry the loss:
  n-step (5) double Q-learning with value rescaling h (`losses.r2d2_loss`),
  online and target networks each unrolled from the same stored state;
  target copied every 2,500 updates; Adam (lr 1e-4, eps 1e-3).

Episode ends. As acme's adders do, an episode's final observation (the
`next_obs` of its last step) is pushed as a step of its own, for the envs
whose episode just ended: `final` set, no action or reward, excluded from the
loss (mask 0), with discount 0 so that no n-step return runs on into the next
episode. Only a termination sets the discount of the last real step to 0; at
a time-limit truncation the n-step targets of the steps before it bootstrap
from the value of the final observation (the learner hands that value in as
the final step's reward), so a time limit is not learned as an episode end.
The episode that follows starts from the zero recurrent state with zero
previous action and reward.

The actor's state (`RecurrentActorState`) is the core state with the previous
action and reward per env; the evaluation actor is the same with
`eval_epsilon`, its state per evaluation episode.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax
import rlax

from jaxrl57 import exploration, losses
from jaxrl57.agents.base import (
    Actor,
    ActorView,
    Agent,
    annealed_learning_rate,
    hparams_from_values,
)
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks.recurrent import RecurrentQNetwork, initial_carry
from jaxrl57.networks.torsos import ConvTorso, MLPTorso
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_sequence_buffer
from jaxrl57.replay.sequence import check_sequence_layout


@dataclasses.dataclass(frozen=True)
class RecurrentReplayConfig:
    """Static settings of a recurrent Q-learner on replayed sequences (shapes and
    program structure): R2D2's, and NGU's and Agent57's underneath theirs."""

    torso: str = "mlp"
    """Feature network: mlp (hidden_sizes), nature_cnn (flattened convolutions) or small_cnn."""
    hidden_sizes: tuple[int, ...] = (64,)
    """Layer widths of the MLP torso."""
    core_size: int = 512
    """LSTM units; with conv_lstm_features, the dense layer after the ConvLSTM."""
    conv_lstm_features: int = 0
    """Channels of a ConvLSTM core (drqn); 0: an LSTM core."""
    dueling: bool = True
    """Value and advantage streams (Wang et al. 2016)."""
    head_hidden: tuple[int, ...] = (512,)
    """Hidden layers of the head after the core."""
    # Sequences hold burn_in + trace_length + 1 steps (`seq_len`, as acme stores
    # them): the burn-in only warms the recurrent state, the next trace_length
    # steps carry the loss, the last one only gives their bootstrap value.
    burn_in: int = 40
    """Steps at a sequence's start that only warm up the recurrent state (Kapturowski et al. 2019,
    sec. 3)."""
    trace_length: int = 80
    """Steps of a sequence that carry the loss."""
    period: int = 40
    """Steps between sequence starts (overlap seq_len - period)."""
    replay_capacity: int = 4_000
    """Sequences kept in replay."""
    batch_size: int = 64
    """Sequences per update."""
    rescale_eps: float = 1e-3
    """eps of the value rescaling h (Pohlen et al. 2018)."""

    @property
    def seq_len(self) -> int:
        """Steps per stored sequence: burn-in, trained steps and one bootstrap step."""
        return self.burn_in + self.trace_length + 1

    def validate(self) -> None:
        if self.torso not in ("mlp", "nature_cnn", "small_cnn"):
            raise ValueError(f"torso must be mlp, nature_cnn or small_cnn, not {self.torso!r}")
        if self.conv_lstm_features and self.torso == "mlp":
            raise ValueError("conv_lstm_features needs a convolutional torso")
        check_sequence_layout(self.burn_in, self.trace_length, self.period)
        for name in ("batch_size", "replay_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.replay_capacity:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than replay_capacity "
                             f"({self.replay_capacity})")
        for name in ("hidden_sizes", "head_hidden"):
            if any(size < 1 for size in getattr(self, name)):
                raise ValueError(f"{name} must be layer sizes >= 1, got {getattr(self, name)}")
        if self.core_size < 1:
            raise ValueError(f"core_size must be >= 1, got {self.core_size}")
        if self.conv_lstm_features < 0:
            raise ValueError(f"conv_lstm_features must be >= 0 (0: an LSTM core), "
                             f"got {self.conv_lstm_features}")
        # h^-1 (rlax.signed_parabolic) divides by rescale_eps.
        if not 0.0 < self.rescale_eps < float("inf"):
            raise ValueError(f"rescale_eps must be finite and > 0, got {self.rescale_eps}")


@dataclasses.dataclass(frozen=True)
class R2D2Config(RecurrentReplayConfig):
    """Static settings (shapes and program structure)."""

    n_step: int = 5
    """Steps of the bootstrapped return."""

    def validate(self) -> None:
        super().validate()
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {self.n_step}")


@flax.struct.dataclass
class R2D2HParams:
    """Traced settings (float32 scalars, or [K] when stacked for a sweep)."""

    learning_rate: jax.Array
    """Adam's step size at the first update."""
    lr_final_fraction: jax.Array
    """The step size anneals linearly to this fraction of learning_rate ..."""
    lr_decay_updates: jax.Array
    """... over this many updates (derived from the run unless set; fraction 1: constant, the
    paper)."""
    optimizer_eps: jax.Array
    """Adam's eps."""
    max_grad_norm: jax.Array
    """Global gradient-norm clip."""
    discount: jax.Array
    """Discount gamma."""
    epsilon: jax.Array
    """Ape-X ladder's base: env i explores with epsilon ** (1 + epsilon_alpha i / (E - 1))."""
    epsilon_alpha: jax.Array
    """Ape-X ladder's exponent."""
    eval_epsilon: jax.Array
    """Epsilon of evaluation episodes."""
    learning_starts: jax.Array
    """Sequences in replay before the first update."""
    target_period: jax.Array
    """Updates between target copies."""
    priority_alpha: jax.Array
    """Priority exponent alpha."""
    priority_beta: jax.Array
    """Importance-sampling exponent beta (fixed)."""
    priority_eta: jax.Array
    """Mix of the max and mean |TD| of a sequence in its priority (Kapturowski et al. 2019, sec.
    2.3)."""

    @classmethod
    def create(cls, **values: Any) -> R2D2HParams:
        return hparams_from_values(cls, DEFAULT_HPARAMS, values)


# Kapturowski et al. 2019, Table 2.
DEFAULT_HPARAMS: dict[str, float] = dict(
    learning_rate=1e-4, lr_final_fraction=1.0, lr_decay_updates=1.0, optimizer_eps=1e-3,
    max_grad_norm=40.0, discount=0.997,
    epsilon=0.4, epsilon_alpha=7.0, eval_epsilon=0.001, learning_starts=64,
    target_period=2_500, priority_alpha=0.9, priority_beta=0.6, priority_eta=0.9,
)


class R2D2State(NamedTuple):
    """The learner's state."""

    params: Any
    target_params: Any
    opt_state: Any
    replay: Any
    env_steps: jax.Array
    updates: jax.Array
    hparams: R2D2HParams


class RecurrentActorState(NamedTuple):
    """An actor's state per env (leaves [E, ...]): what the network is fed with
    the current observation, and the core state its step reached."""

    carry: Any  # core state before the current observation
    next_carry: Any  # after acting on it (set by `act`)
    prev_action: jax.Array  # int32
    prev_reward: jax.Array
    reset: jax.Array  # bool: the current observation begins an episode


def make_network(config: RecurrentReplayConfig, spec: EnvSpec) -> RecurrentQNetwork:
    if config.torso == "mlp":
        torso = MLPTorso(hidden_sizes=config.hidden_sizes, obs_ndim=len(spec.obs_shape))
    else:
        channels_first = len(spec.obs_shape) == 3 and spec.obs_shape[0] < spec.obs_shape[-1]
        spatial = config.conv_lstm_features > 0
        if config.torso == "nature_cnn":
            torso = ConvTorso(dense=0, spatial=spatial, channels_first=channels_first)
        else:
            torso = ConvTorso(features=(16, 32), kernels=(3, 3), strides=(1, 2), dense=0,
                              padding="SAME", spatial=spatial, channels_first=channels_first)
    return RecurrentQNetwork(spec.num_actions, torso, core_size=config.core_size,
                             dueling=config.dueling, head_hidden=config.head_hidden,
                             conv_lstm_features=config.conv_lstm_features)


def make_optimizer(hp: R2D2HParams) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(hp.max_grad_norm),
                       optax.adam(annealed_learning_rate(hp), eps=hp.optimizer_eps))


def make_sequence_loss(network: RecurrentQNetwork, config: R2D2Config):
    """The learner's loss on a batch of replayed sequences (sec. 3 of the paper):

    `loss_fn(params, target_params, steps, start_carry, weights, hp) ->
    (loss, (priority [B], mean Q, mean |td|, td [B, trace_length]))` with
    `steps` leaves time-major [seq_len, B, ...] and `start_carry` the stored
    states [B, ...]. The first `burn_in` steps only advance the online and
    target states from the stored state; the online state that leaves the
    burn-in is cut from the gradient. The next `trace_length` steps carry the
    loss and the last step only gives their bootstrap value.

    A `final` step (an episode's final observation, see the module docstring)
    enters the n-step sums with its own value, `h^-1(q_target[a*])` with
    `a* = argmax q_online` (the double-Q bootstrap `losses.r2d2_loss` takes),
    as its reward and discount 0: the return of every earlier step whose
    n-step window reaches it ends there with that value, times the discount of
    the step into it (0 after a termination, 1 after a truncation), which is
    the bootstrap on the final observation (Pardo et al. 2018 on time limits).
    """
    burn = config.burn_in
    h_inv = functools.partial(rlax.signed_parabolic, eps=config.rescale_eps)

    def loss_fn(params, target_params, steps, start_carry, weights, hp: R2D2HParams):
        def unroll(p, sl, carry):
            return network.apply(p, steps["obs"][sl], steps["prev_action"][sl],
                                 steps["prev_reward"][sl], steps["reset"][sl], carry)

        online_carry, target_carry = start_carry, start_carry
        if burn:
            head = slice(0, burn)
            online_carry = jax.lax.stop_gradient(unroll(params, head, start_carry)[1])
            target_carry = unroll(target_params, head, start_carry)[1]
        rest = slice(burn, None)
        q_online, _ = unroll(params, rest, online_carry)  # [trace_length + 1, B, A]
        q_target, _ = unroll(target_params, rest, target_carry)
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        learn = lambda k: batch_major(steps[k][burn:-1])  # noqa: E731
        greedy = jnp.argmax(q_online, axis=-1)[..., None]
        value = jax.lax.stop_gradient(
            h_inv(jnp.take_along_axis(q_target, greedy, axis=-1)[..., 0]))
        reward = jnp.where(learn("final"), batch_major(value[:-1]), learn("reward"))
        loss, td, priority = losses.r2d2_loss(
            batch_major(q_online[:-1]), learn("action"), reward,
            hp.discount * learn("discount"), batch_major(q_target[1:]),
            batch_major(q_online[1:]), n_step=config.n_step, eta=hp.priority_eta,
            mask_t=learn("mask"), weights=weights, rescale_eps=config.rescale_eps)
        td_abs = jnp.sum(jnp.abs(td)) / jnp.maximum(jnp.sum(learn("mask")), 1.0)
        return loss, (priority, jnp.mean(q_online), td_abs, td)

    return loss_fn


def finish_update(state, ready, params, online_q, opt_state, replay, metrics):
    """The end of a recurrent learner's step (R2D2's, NGU's): the target copy of
    `online_q` every `target_period` updates, and the new params, target,
    optimizer state and count kept only where `ready` (masked, never branched:
    `agents.base`); metrics zeroed where not, with `updated`."""
    hp = state.hparams
    num_updates = state.updates + 1
    copy = jnp.mod(num_updates, jnp.maximum(hp.target_period, 1).astype(jnp.int32)) == 0
    target_params = jax.tree.map(lambda t, p: jnp.where(copy, p, t), state.target_params,
                                 online_q)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ready, n, o), new, old)  # noqa: E731
    metrics = {k: jnp.where(ready, v, 0.0) for k, v in metrics.items()}
    metrics["updated"] = ready.astype(jnp.float32)
    return state._replace(
        params=keep(params, state.params),
        target_params=keep(target_params, state.target_params),
        opt_state=keep(opt_state, state.opt_state), replay=replay,
        updates=jnp.where(ready, num_updates, state.updates)), metrics


def make_r2d2(config: R2D2Config, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds R2D2 for `num_envs` lockstep environments of `spec`."""
    config.validate()
    if not spec.discrete:
        raise ValueError(f"R2D2 needs a discrete action space; {spec.name} has continuous "
                         f"actions")
    network = make_network(config, spec)
    E = num_envs
    obs_example = jnp.zeros(spec.obs_shape, spec.obs_dtype)

    def step_once(params, carry, obs, prev_action, prev_reward, reset):
        """One acting step for a batch: inputs [N, ...] -> (q [N, A], carry)."""
        q, carry = network.apply(params, obs[None], prev_action[None], prev_reward[None],
                                 reset[None], carry)
        return q[0], carry

    def init_params(key):
        T1 = (1, 1)
        return network.init(key, jnp.broadcast_to(obs_example, T1 + obs_example.shape),
                            jnp.zeros(T1, jnp.int32), jnp.zeros(T1), jnp.ones(T1, bool))

    example_step = dict(
        obs=obs_example, action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
        discount=jnp.zeros(()), mask=jnp.zeros(()), reset=jnp.zeros((), bool),
        final=jnp.zeros((), bool), prev_action=jnp.zeros((), jnp.int32),
        prev_reward=jnp.zeros(()))
    carry_shapes = jax.eval_shape(
        lambda: initial_carry(network, init_params(jax.random.PRNGKey(0)), obs_example, E))
    buffer = make_sequence_buffer(
        example_step, jax.tree.map(lambda c: jnp.zeros(c.shape[1:], c.dtype), carry_shapes), E,
        config.replay_capacity, config.seq_len, config.period, config.batch_size)

    def replay_params(hp: R2D2HParams) -> ReplayParams:
        return ReplayParams(discount=hp.discount, priority_alpha=hp.priority_alpha,
                            priority_beta=hp.priority_beta)

    def init(key, hp: R2D2HParams) -> R2D2State:
        params = init_params(key)
        return R2D2State(
            params=params, target_params=params, opt_state=make_optimizer(hp).init(params),
            replay=buffer.init(), env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32), hparams=hp)

    def view(state: R2D2State) -> ActorView:
        return ActorView(params=state.params, hparams=state.hparams, env_steps=state.env_steps)

    def actor_init(view: ActorView, n: int) -> RecurrentActorState:
        carry = initial_carry(network, view.params, obs_example, n)
        return RecurrentActorState(carry=carry, next_carry=carry,
                                   prev_action=jnp.zeros(n, jnp.int32),
                                   prev_reward=jnp.zeros(n), reset=jnp.ones(n, bool))

    def make_act(evaluation: bool):
        def act(view: ActorView, actor: RecurrentActorState, obs, key):
            hp = view.hparams
            q, next_carry = step_once(view.params, actor.carry, obs, actor.prev_action,
                                      actor.prev_reward, actor.reset)
            epsilons = (hp.eval_epsilon if evaluation else
                        exploration.apex_epsilons(obs.shape[0], hp.epsilon, hp.epsilon_alpha))
            return (exploration.epsilon_greedy(key, q, epsilons),
                    actor._replace(next_carry=next_carry))

        return act

    def actor_observe(actor: RecurrentActorState, action, reward, done):
        """What the next step is fed: the state `act` reached, or the zero state
        and no previous action or reward where an episode ended (acme's actor
        does the same)."""
        zero = lambda x: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)),  # noqa: E731
                                   jnp.zeros_like(x), x)
        return actor._replace(carry=jax.tree.map(zero, actor.next_carry),
                              prev_action=zero(action.astype(jnp.int32)),
                              prev_reward=zero(reward.astype(jnp.float32)), reset=done)

    def observe(state: R2D2State, steps: EnvSteps, actor: RecurrentActorState):
        """Stores the step of every env, with the state `actor` acted from, and the
        final observation of the envs whose episode ended."""
        ended = steps.terminated | steps.truncated
        action, reward = steps.action.astype(jnp.int32), steps.reward.astype(jnp.float32)
        no = jnp.zeros(E, bool)
        step = dict(obs=steps.obs, action=action, reward=reward,
                    discount=1.0 - steps.terminated.astype(jnp.float32), mask=jnp.ones(E),
                    reset=actor.reset, final=no, prev_action=actor.prev_action,
                    prev_reward=actor.prev_reward)
        params = replay_params(state.hparams)
        replay = buffer.add(state.replay, step, actor.carry, params)
        # The final observation, for the envs whose episode ended: a step of its own,
        # after the state the actor reached on the last step.
        final = dict(obs=steps.next_obs.astype(steps.obs.dtype), action=jnp.zeros_like(action),
                     reward=jnp.zeros_like(reward), discount=jnp.zeros(E), mask=jnp.zeros(E),
                     reset=no, final=jnp.ones(E, bool), prev_action=action, prev_reward=reward)
        replay = buffer.add(replay, final, actor.next_carry, params, active=ended)
        return state._replace(replay=replay, env_steps=state.env_steps + steps.obs.shape[0])

    def can_update(state: R2D2State):
        return buffer.can_sample(state.replay, state.hparams.learning_starts)

    loss_fn = make_sequence_loss(network, config)

    def update(state: R2D2State, key):
        """One learner step on `batch_size` sequences; a masked no-op until
        `can_update` (see `agents.base`)."""
        hp = state.hparams
        ready = can_update(state)
        steps, start_carry, indices, weights = buffer.sample(state.replay, key,
                                                             replay_params(hp))
        time_major = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)
        (loss, (priority, q_mean, td_abs, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, time_major, start_carry, weights, hp)
        updates, opt_state = make_optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        replay = buffer.set_priorities(state.replay, indices, priority, replay_params(hp),
                                       ready)
        metrics = {"loss": loss, "q_mean": q_mean, "td_abs": td_abs,
                   "grad_norm": optax.tree.norm(grads)}
        return finish_update(state, ready, params, params, opt_state, replay, metrics)

    return Agent(init=init, view=view,
                 actor=Actor(init=actor_init, act=make_act(False), observe=actor_observe),
                 eval_actor=Actor(init=actor_init, act=make_act(True), observe=actor_observe),
                 observe=observe, update=update, can_update=can_update,
                 metric_names=("loss", "q_mean", "td_abs", "grad_norm", "updated"))
