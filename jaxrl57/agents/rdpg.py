"""RDPG: recurrent deterministic policy gradient (Heess et al. 2015), as one agent.

Heess et al. 2015, "Memory-based control with recurrent neural networks",
Algorithm 1: DDPG (`agents.ddpg`) with a recurrent actor mu(h_t) and a
recurrent critic Q(h_t, a_t) of the history h_t = (o_1, a_1, ..., a_{t-1}, o_t)
(`networks.recurrent_continuous`), trained on replayed sequences with

    critic:  y_t = r_t + gamma_t Q'(h_{t+1}, mu'(h_{t+1})),   gamma_t = 0 at a termination
             dW ~ 1/NT sum_{i,t} (y_t - Q(h_t, a_t)) dQ(h_t, a_t)/dW   (BPTT)
    actor:   dtheta ~ 1/NT sum_{i,t} dQ(h_t, a)/da|_{a = mu(h_t)} dmu(h_t)/dtheta   (BPTT)

both computed from the same critic and applied together (the paper's order),
then slowly tracking targets theta' <- tau theta + (1 - tau) theta'. The
actor's gradient is `ddpg.policy_gradient` over every trained step of every
sequence: the VJP of the actor's unroll with the critic's action gradient at
each step, which is jax.grad of -mean_{i,t} Q(h_t, mu(h_t)) through the
unroll unless inverted. Everything else is DDPG's, imported from
`agents.ddpg`: action bounds (`action_bounding`: tanh, inverting gradients of
Hausknecht & Stone 2016, clip, none), Gaussian or Ornstein-Uhlenbeck
exploration with uniform random steps first, TD3's twin critics, target
smoothing and policy delay (Fujimoto et al. 2018) when asked for, the optimizer.

Sequences, not whole episodes (the difference from the paper). Heess et al.
store whole episodes and unroll each from its start with backpropagation
through time over its full length. Here, as R2D2 does (Kapturowski et al. 2019,
sec. 3; `agents.r2d2`), every `period` steps each env emits its last
`seq_len = burn_in + trace_length + 1` steps (`replay.sequence`), stored with
the recurrent states of both networks at the sequence's first step (the
"stored state"); the learner starts every unroll from that state, runs the
first `burn_in` steps only to warm it up (no gradient into them), trains on
the next `trace_length` steps (BPTT over those) and uses the last one only for
the bootstrap Q'(h_{t+1}, .). Fixed shapes and short unrolls make one update
one small compiled program whatever the episode length; the price is that
the stored state was computed by older parameters, which the burn-in repairs.
The actor advances the critic's core too while it acts (its input is the
history only, not the action being judged), so both states are stored.

Sampling is uniform, as in the paper: the sequence buffer's sum tree with
priority exponent 0 (every leaf 1, importance weights 1), and the learner never
writes priorities back, which saves a sum-tree write per update for a
prioritisation the method does not use. `learning_starts` counts stored
sequences.

Episode ends, as in `agents.r2d2`: an episode's final observation is pushed as
a step of its own (no action or reward, loss mask 0), carrying on the history
of its episode, so the last real step bootstraps from Q'(h_{T+1}, mu'(h_{T+1}))
at a time-limit truncation; only a termination sets gamma_t = 0. The next
episode's first step is marked `reset`: the networks zero their state and the
previous action there (`networks.recurrent_continuous`), also inside a replayed
sequence. The actor's state holds both cores' states, the previous action, the
reset flag and the OU noise per env.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57.agents.base import Actor, ActorView, Agent, hparams_from_values
from jaxrl57.agents.ddpg import DEFAULT_HPARAMS as DDPG_DEFAULT_HPARAMS
from jaxrl57.agents.ddpg import (
    ActorCriticMethod,
    DDPGHParams,
    DDPGParams,
    action_noise,
    bound_action,
    explore_action,
    make_optimizer,
    policy_gradient,
    smooth_target_action,
)
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks.recurrent_continuous import RecurrentCritic, RecurrentPolicy, zero_carry
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_sequence_buffer
from jaxrl57.replay.sequence import check_sequence_layout


@dataclasses.dataclass(frozen=True)
class RDPGConfig(ActorCriticMethod):
    """Static settings (shapes and program structure)."""

    hidden_sizes: tuple[int, ...] = ()
    """Layer widths of the MLP torso before each LSTM (empty: the observation itself)."""
    core_size: int = 64
    """LSTM units of the actor's and of the critic's core."""
    head_hidden: tuple[int, ...] = (64,)
    """Hidden layers after each core (the critic's take [core output, action])."""
    # Sequences hold burn_in + trace_length + 1 steps (`seq_len`, as agents.r2d2).
    burn_in: int = 10
    """Steps at a sequence's start that only warm up the stored recurrent states."""
    trace_length: int = 20
    """Steps of a sequence that carry the losses (backpropagation through time over them)."""
    period: int = 10
    """Steps between sequence starts (overlap seq_len - period)."""
    replay_capacity: int = 5_000
    """Sequences kept in replay."""
    batch_size: int = 32
    """Sequences per update."""

    @property
    def seq_len(self) -> int:
        """Steps per stored sequence: burn-in, trained steps and one bootstrap step."""
        return self.burn_in + self.trace_length + 1

    def validate(self) -> None:
        """Raises ValueError for impossible settings."""
        self.validate_method()
        check_sequence_layout(self.burn_in, self.trace_length, self.period)
        for name in ("batch_size", "replay_capacity", "core_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.replay_capacity:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than replay_capacity "
                             f"({self.replay_capacity})")
        for name in ("hidden_sizes", "head_hidden"):
            if any(size < 1 for size in getattr(self, name)):
                raise ValueError(f"{name} must be layer sizes >= 1, got {getattr(self, name)}")


@flax.struct.dataclass
class RDPGHParams(DDPGHParams):
    """Traced settings (float32 scalars, or [K] when stacked for a sweep): DDPG's, with
    `learning_starts` in sequences."""

    learning_starts: jax.Array
    """Sequences in replay before the first update."""

    @classmethod
    def create(cls, **values: Any) -> RDPGHParams:
        return hparams_from_values(cls, DEFAULT_HPARAMS, values)


# DDPG's defaults (`agents.ddpg.DEFAULT_HPARAMS`), with the replay warm-up in sequences.
DEFAULT_HPARAMS: dict[str, float] = dict(DDPG_DEFAULT_HPARAMS, learning_starts=64)


class RDPGCarry(NamedTuple):
    """The recurrent states of one set of envs: the actor's LSTM (c, z) with leaves
    [E, H] and the critics' with leaves [E, num_critics, H]."""

    policy: Any
    critic: Any


class RDPGState(NamedTuple):
    """The learner's state."""

    params: DDPGParams
    target_params: DDPGParams
    actor_opt_state: Any
    critic_opt_state: Any
    replay: Any
    env_steps: jax.Array  # int32, total env steps observed
    updates: jax.Array  # int32, critic updates done
    hparams: RDPGHParams


class RDPGActorState(NamedTuple):
    """An actor's state per env (leaves [E, ...])."""

    carry: RDPGCarry  # the cores' states before the current observation
    next_carry: RDPGCarry  # after it (set by `act`)
    prev_action: jax.Array  # [E, D], the action before the current observation
    reset: jax.Array  # bool [E]: the current observation begins an episode
    noise: jax.Array  # [E, D], the OU process (zeros with Gaussian noise)


class RDPGNetworks(NamedTuple):
    """RDPG's networks as pure functions over time-major sequences `[T, B, ...]`.

    init(key) -> DDPGParams (the critics' leaves stacked [num_critics, ...])
    policy(actor_params, obs, prev_action, reset, carry) -> (mu [T, B, D] bounded, carry)
    encode(critic_params, obs, prev_action, reset, carry [B, N, H]) -> (z [N, T, B, H], carry)
    value(critic_params, z [N, T, B, H], action [T, B, D]) -> Q [N, T, B]
    zero_state(n) -> RDPGCarry of n envs
    """

    init: Any
    policy: Any
    encode: Any
    value: Any
    zero_state: Any


def _bounds(spec: EnvSpec):
    if spec.discrete:
        raise ValueError(f"RDPG needs a continuous action space; {spec.name} has "
                         f"{spec.num_actions} discrete actions")
    if not (np.all(np.isfinite(spec.action_low)) and np.all(np.isfinite(spec.action_high))):
        raise ValueError(f"{spec.name} has unbounded actions; RDPG here needs finite bounds")
    return jnp.asarray(spec.action_low, jnp.float32), jnp.asarray(spec.action_high, jnp.float32)


def make_networks(config: RDPGConfig, spec: EnvSpec) -> RDPGNetworks:
    """The actor mu(h_t) and the critics Q_i(h_t, a) of `networks.recurrent_continuous`
    for `spec`, the actor's output bounded by `config.action_bounding`."""
    low, high = _bounds(spec)
    D, N, H = low.shape[0], config.num_critics, config.core_size
    net = dict(core_size=H, hidden_sizes=config.hidden_sizes, head_hidden=config.head_hidden,
               obs_ndim=len(spec.obs_shape))
    policy_net = RecurrentPolicy(D, **net)
    critic_net = RecurrentCritic(**net)
    obs_example = jnp.zeros(spec.obs_shape, spec.obs_dtype)

    def policy(actor_params, obs, prev_action, reset, carry):
        u, carry = policy_net.apply(actor_params, obs, prev_action, reset, carry)
        return bound_action(u, config.action_bounding, low, high), carry

    def encode(critic_params, obs, prev_action, reset, carry):
        def one(p, c):
            return critic_net.apply(p, obs, prev_action, reset, c, method="encode")
        return jax.vmap(one, in_axes=(0, 1), out_axes=(0, 1))(critic_params, carry)

    def value(critic_params, z, action):
        return jax.vmap(lambda p, zi: critic_net.apply(p, zi, action, method="value"))(
            critic_params, z)

    def init(key) -> DDPGParams:
        actor_key, critic_key = jax.random.split(key)
        T1 = (1, 1)
        obs = jnp.broadcast_to(obs_example, T1 + obs_example.shape)
        action, reset = jnp.zeros(T1 + (D,)), jnp.ones(T1, bool)
        return DDPGParams(
            actor=policy_net.init(actor_key, obs, action, reset),
            critic=jax.vmap(lambda k: critic_net.init(k, obs, action, action, reset))(
                jax.random.split(critic_key, N)))

    def zero_state(n: int) -> RDPGCarry:
        return RDPGCarry(policy=zero_carry(H, (n,)), critic=zero_carry(H, (n, N)))

    return RDPGNetworks(init, policy, encode, value, zero_state)


def make_sequence_gradients(networks: RDPGNetworks, config: RDPGConfig, spec: EnvSpec):
    """Both gradients of a batch of replayed sequences, from the same critic (Heess et
    al. 2015, Algorithm 1; see the module docstring):

    `grads(params, target_params, steps, start, hp, key) -> (critic grads, actor grads,
    metrics)` with `steps` leaves time-major [seq_len, B, ...] and `start` the stored
    `RDPGCarry` [B, ...]. Every network starts from the stored states. The first
    `burn_in` steps only advance them (the online networks' with no gradient); the
    next `trace_length` steps carry both losses, and the last step only gives
    Q'(h_{t+1}, mu'(h_{t+1})). Steps with mask 0 (final observations) are left out
    of both means.
    """
    low, high = _bounds(spec)
    D = low.shape[0]
    scale = (high - low) / 2
    invert = config.action_bounding == "inverting_gradients"
    burn = config.burn_in
    policy_unroll, critic_encode, critic_value = networks.policy, networks.encode, networks.value

    def grads(params: DDPGParams, target: DDPGParams, steps, start: RDPGCarry,
              hp: RDPGHParams, key):
        def inputs(sl):
            return steps["obs"][sl], steps["prev_action"][sl], steps["reset"][sl]

        p_online, c_online = start.policy, start.critic
        if burn:
            head = inputs(slice(0, burn))
            p_online = jax.lax.stop_gradient(policy_unroll(params.actor, *head, p_online)[1])
            c_online = jax.lax.stop_gradient(critic_encode(params.critic, *head, c_online)[1])
        trained = inputs(slice(burn, -1))
        learn = {k: v[burn:-1] for k, v in steps.items()}  # [T, B, ...]
        T, B = learn["mask"].shape
        mask = learn["mask"]
        count = jnp.maximum(jnp.sum(mask), 1.0)

        # y_t = r_t + gamma_t min_i Q'_i(h_{t+1}, a~_{t+1}), a~ the (smoothed) mu'(h_{t+1}).
        # The targets have no gradient to stop, so their burn-in is the start of one unroll.
        everything = inputs(slice(None))
        a_next = smooth_target_action(
            policy_unroll(target.actor, *everything, start.policy)[0][burn + 1:], hp, key, low,
            high, scale)
        z_next = critic_encode(target.critic, *everything, start.critic)[0][:, burn + 1:]
        q_next = jnp.min(critic_value(target.critic, z_next, a_next), axis=0)
        y = jax.lax.stop_gradient(learn["reward"] + hp.discount * learn["discount"] * q_next)

        def critic_loss(critic_params):
            z, _ = critic_encode(critic_params, *trained, c_online)
            q = critic_value(critic_params, z, learn["action"])  # [N, T, B]
            loss = jnp.sum(jnp.sum(mask * (q - y) ** 2, axis=(1, 2)) / count)
            return loss, (z, jnp.sum(mask * q[0]) / count)

        (c_loss, (z, q_mean)), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            params.critic)

        # The actor's gradient at every trained step through critic 0's action input; the
        # weights make policy_gradient's mean over T*B steps the mean over the unmasked ones.
        z0 = jax.lax.stop_gradient(z[:1])
        critic0 = jax.tree.map(lambda x: x[:1], params.critic)
        weights = (mask * (T * B) / count).reshape(-1)

        def policy(actor_params):
            return policy_unroll(actor_params, *trained, p_online)[0].reshape(T * B, D)

        def critic(actions):
            return critic_value(critic0, z0, actions.reshape(T, B, D))[0].reshape(-1) * weights

        a_grads, actions, actor_q = policy_gradient(policy, critic, params.actor, low, high,
                                                    invert=invert)
        valid = mask.reshape(-1, 1) > 0
        outside = valid & ((actions < low) | (actions > high))
        excess = jnp.where(valid, jnp.maximum(jnp.maximum(actions - high, low - actions), 0.0),
                           0.0) / scale
        metrics = {"loss": c_loss, "q_mean": q_mean, "actor_q": actor_q,
                   "policy_out_of_bounds": jnp.sum(outside) / (count * D),
                   "policy_excess": jnp.max(excess), "grad_norm": optax.tree.norm(c_grads)}
        return c_grads, a_grads, metrics

    return grads


def make_rdpg(config: RDPGConfig, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds RDPG for `num_envs` lockstep environments of `spec` (continuous actions)."""
    config.validate()
    low, high = _bounds(spec)
    D, E = low.shape[0], num_envs
    scale = (high - low) / 2
    networks = make_networks(config, spec)
    policy_unroll, critic_encode, zero_state = (networks.policy, networks.encode,
                                                networks.zero_state)
    init_params = networks.init
    obs_example = jnp.zeros(spec.obs_shape, spec.obs_dtype)

    # ---- replay -------------------------------------------------------------------------

    example_step = dict(obs=obs_example, action=jnp.zeros(D), reward=jnp.zeros(()),
                        discount=jnp.zeros(()), mask=jnp.zeros(()), reset=jnp.zeros((), bool),
                        prev_action=jnp.zeros(D))
    buffer = make_sequence_buffer(
        example_step, jax.tree.map(lambda x: x[0], zero_state(1)), E, config.replay_capacity,
        config.seq_len, config.period, config.batch_size)

    def replay_params(hp: RDPGHParams) -> ReplayParams:
        # Exponent 0: every sequence has leaf 1 in the sum tree, a uniform draw.
        return ReplayParams(discount=hp.discount, priority_alpha=0.0, priority_beta=0.0)

    def actor_opt(hp):
        return make_optimizer(hp.actor_learning_rate, hp.max_grad_norm)

    def critic_opt(hp):
        return make_optimizer(hp.critic_learning_rate, hp.max_grad_norm, hp.critic_weight_decay)

    def init(key, hp: RDPGHParams) -> RDPGState:
        params = init_params(key)
        return RDPGState(params=params, target_params=params,
                         actor_opt_state=actor_opt(hp).init(params.actor),
                         critic_opt_state=critic_opt(hp).init(params.critic),
                         replay=buffer.init(), env_steps=jnp.zeros((), jnp.int32),
                         updates=jnp.zeros((), jnp.int32), hparams=hp)

    # ---- acting -------------------------------------------------------------------------

    def view(state: RDPGState) -> ActorView:
        # The critic too: the actor advances the critic's core, whose state replay stores.
        return ActorView(params=state.params, hparams=state.hparams, env_steps=state.env_steps)

    def actor_init(view: ActorView, n: int) -> RDPGActorState:
        carry = zero_state(n)
        return RDPGActorState(carry=carry, next_carry=carry, prev_action=jnp.zeros((n, D)),
                              reset=jnp.ones(n, bool), noise=jnp.zeros((n, D)))

    def make_act(evaluation: bool):
        def act(view: ActorView, actor: RDPGActorState, obs, key):
            hp = view.hparams
            inputs = (obs[None], actor.prev_action[None], actor.reset[None])
            greedy, policy_carry = policy_unroll(view.params.actor, *inputs, actor.carry.policy)
            greedy = greedy[0]
            n = obs.shape[0]
            if evaluation:  # nothing is stored: the critic's core may stand still
                eps = jax.random.normal(key, (n, D))
                action = jnp.clip(greedy + hp.eval_noise * scale * eps, low, high)
                return action, actor._replace(
                    next_carry=actor.carry._replace(policy=policy_carry))
            _, critic_carry = critic_encode(view.params.critic, *inputs, actor.carry.critic)
            noise_key, random_key = jax.random.split(key)
            noise, ou_noise = action_noise(config.exploration, hp, noise_key, (n, D), scale,
                                           actor.noise)
            action = explore_action(greedy, noise, random_key, low, high,
                                    view.env_steps < hp.random_steps)
            return action, actor._replace(next_carry=RDPGCarry(policy_carry, critic_carry),
                                          noise=ou_noise)

        return act

    def actor_observe(actor: RDPGActorState, action, reward, done):
        """What the next step is fed: the states `act` reached, or zero states, no
        previous action and a restarted OU process where an episode ended."""
        def zero(x):
            return jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)), 0.0, x)
        return actor._replace(carry=jax.tree.map(zero, actor.next_carry),
                              prev_action=zero(action.astype(jnp.float32)), reset=done,
                              noise=zero(actor.noise))

    # ---- learning -----------------------------------------------------------------------

    def observe(state: RDPGState, steps: EnvSteps, actor: RDPGActorState):
        """Stores each env's step with the states `actor` acted from, then the final
        observation of the envs whose episode ended (see the module docstring)."""
        ended = steps.terminated | steps.truncated
        action = steps.action.astype(jnp.float32).reshape(E, D)
        reward = steps.reward.astype(jnp.float32)
        step = dict(obs=steps.obs, action=action, reward=reward,
                    discount=1.0 - steps.terminated.astype(jnp.float32), mask=jnp.ones(E),
                    reset=actor.reset, prev_action=actor.prev_action)
        params = replay_params(state.hparams)
        replay = buffer.add(state.replay, step, actor.carry, params)
        final = dict(obs=steps.next_obs.astype(steps.obs.dtype), action=jnp.zeros_like(action),
                     reward=jnp.zeros_like(reward), discount=jnp.zeros(E), mask=jnp.zeros(E),
                     reset=jnp.zeros(E, bool), prev_action=action)
        replay = buffer.add(replay, final, actor.next_carry, params, active=ended)
        return state._replace(replay=replay, env_steps=state.env_steps + steps.obs.shape[0])

    def can_update(state: RDPGState):
        return buffer.can_sample(state.replay, state.hparams.learning_starts)

    sequence_gradients = make_sequence_gradients(networks, config, spec)

    def update(state: RDPGState, key):
        """One critic step, and every `policy_delay` critic steps one actor step and a
        move of both targets; a masked no-op until `can_update` (see `agents.base`)."""
        hp = state.hparams
        ready = can_update(state)
        sample_key, noise_key = jax.random.split(key)
        steps, start, _, _ = buffer.sample(state.replay, sample_key, replay_params(hp))
        time_major = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)
        c_grads, a_grads, metrics = sequence_gradients(state.params, state.target_params,
                                                     time_major, start, hp, noise_key)
        c_updates, critic_opt_state = critic_opt(hp).update(c_grads, state.critic_opt_state,
                                                           state.params.critic)
        a_updates, actor_opt_state = actor_opt(hp).update(a_grads, state.actor_opt_state,
                                                         state.params.actor)
        num_updates = state.updates + 1
        delay = jnp.maximum(jnp.round(hp.policy_delay), 1.0).astype(jnp.int32)
        actor_step = ready & (jnp.mod(num_updates, delay) == 0)

        def keep(mask, new, old):
            return jax.tree.map(lambda n, o: jnp.where(mask, n, o), new, old)

        params = DDPGParams(
            actor=keep(actor_step, optax.apply_updates(state.params.actor, a_updates),
                       state.params.actor),
            critic=keep(ready, optax.apply_updates(state.params.critic, c_updates),
                        state.params.critic))
        polyak = jax.tree.map(lambda t, p: hp.tau * p + (1.0 - hp.tau) * t,
                              state.target_params, params)
        metrics = {k: jnp.where(ready, v, 0.0) for k, v in metrics.items()}
        metrics["updated"] = ready.astype(jnp.float32)
        return state._replace(
            params=params, target_params=keep(actor_step, polyak, state.target_params),
            actor_opt_state=keep(actor_step, actor_opt_state, state.actor_opt_state),
            critic_opt_state=keep(ready, critic_opt_state, state.critic_opt_state),
            updates=jnp.where(ready, num_updates, state.updates)), metrics

    agent = Agent(init=init, view=view,
                  actor=Actor(init=actor_init, act=make_act(False), observe=actor_observe),
                  eval_actor=Actor(init=actor_init, act=make_act(True), observe=actor_observe),
                  observe=observe, update=update, can_update=can_update,
                  metric_names=("loss", "q_mean", "actor_q", "policy_out_of_bounds",
                                "policy_excess", "grad_norm", "updated"))
    return agent
