"""Deterministic policy gradients for continuous actions: DDPG and TD3, as one agent.

* DDPG: Lillicrap et al. 2016, "Continuous control with deep reinforcement
  learning", Algorithm 1: a deterministic actor mu(s) trained along the
  critic's action gradient, grad_theta J = E[dQ/da(s, mu(s)) dmu/dtheta]
  (Silver et al. 2014), a critic trained on y = r + gamma Q'(s', mu'(s')),
  slowly tracking target networks (theta' <- tau theta + (1 - tau) theta'),
  replay, and exploration noise added to the actor's action
  (Ornstein-Uhlenbeck, theta 0.15, sigma 0.2, sec. 7; or Gaussian).
* TD3: Fujimoto et al. 2018, "Addressing function approximation error in
  actor-critic methods", Algorithm 1: twin critics and the clipped double-Q
  target y = r + gamma min_i Q'_i(s', a~) (sec. 4.2), target policy smoothing
  a~ = clip(mu'(s') + clip(eps, -c, c), low, high) with eps ~ N(0, sigma~)
  (sec. 5.3), and the actor and targets updated every `policy_delay` critic
  updates (sec. 5.2).

Action bounds (`action_bounding`), the setting this agent adds:
* `tanh`: mu(s) = low + (tanh(u) + 1) (high - low) / 2, the usual squashing;
* `inverting_gradients`: mu(s) = u unsquashed, and the critic's gradient
  dQ/da is scaled by (high - a)/(high - low) where it pushes a up and by
  (a - low)/(high - low) where it pushes a down, reversed past a bound
  (Hausknecht & Stone 2016, sec. 4.3.3; `losses.invert_gradients`), which
  keeps the actor's output inside the bounds without saturating a tanh;
* `clip`: mu(s) = clip(u, low, high), whose gradient vanishes outside the
  bounds (an actor pushed past one stays there: the trap the others avoid);
* `none`: mu(s) = u; the env clips what it receives (the problem inverting
  gradients solves: the output drifts out of the bounds).

In every mode the action sent to the env is clip(mu(s) + noise, low, high)
and stored as sent, and the target action is clipped into the bounds, so
the critic is trained on actions the env can take. The actor's gradient is
computed as the vector-Jacobian product of mu with the (possibly inverted)
dQ/da, which is exactly grad of -mean_b Q(s_b, mu(s_b)) when not inverted.
The `policy_out_of_bounds` metric is the fraction of mu's action components
outside the bounds on each update's batch of replayed states, `policy_excess`
the largest distance of one past its bound, in action scales.

Noise scales are fractions of the action scale (high - low) / 2, as in
Fujimoto's and CleanRL's code. Until `random_steps` env steps have been
observed the actor acts uniformly at random in the bounds (Fujimoto et al.
2018, sec. 6.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57 import losses
from jaxrl57.agents.base import Actor, ActorView, Agent, hparams_from_values
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks.continuous import Critic, DeterministicPolicy
from jaxrl57.replay import Transition
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_transition_buffer

ACTION_BOUNDINGS = ("tanh", "inverting_gradients", "clip", "none")
EXPLORATIONS = ("gaussian", "ou")


@dataclasses.dataclass(frozen=True)
class ActorCriticMethod:
    """The static choices of the deterministic actor-critic method that DDPG, TD3 and
    RDPG share (their configs add the networks' and the replay's sizes)."""

    num_critics: int = 1
    """Critics: 1 (DDPG) or 2, the clipped double-Q target of TD3 (Fujimoto et al. 2018, sec.
    4.2)."""
    action_bounding: str = "tanh"
    """How the actor's output stays in the action bounds: tanh, inverting_gradients (Hausknecht &
    Stone 2016), clip, or none."""
    exploration: str = "gaussian"
    """Action noise: gaussian, or ou (Ornstein-Uhlenbeck, Lillicrap et al. 2016)."""

    def validate_method(self) -> None:
        """Raises ValueError for a choice the agents do not have."""
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if self.action_bounding not in ACTION_BOUNDINGS:
            raise ValueError(f"action_bounding must be one of {', '.join(ACTION_BOUNDINGS)}, "
                             f"not {self.action_bounding!r}")
        if self.exploration not in EXPLORATIONS:
            raise ValueError(f"exploration must be one of {', '.join(EXPLORATIONS)}, "
                             f"not {self.exploration!r}")


@dataclasses.dataclass(frozen=True)
class DDPGConfig(ActorCriticMethod):
    """Static settings: they fix shapes or program structure (not sweepable by vmap)."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Layer widths of the actor's and the critic's MLPs."""
    replay_capacity: int = 1_000_000
    """Transitions kept in replay."""
    batch_size: int = 256
    """Transitions per gradient update."""
    n_step: int = 1
    """Steps of the bootstrapped return."""

    def validate(self) -> None:
        """Raises ValueError for impossible settings."""
        self.validate_method()
        for name in ("batch_size", "replay_capacity", "n_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.replay_capacity:
            raise ValueError(f"batch_size ({self.batch_size}) is larger than replay_capacity "
                             f"({self.replay_capacity})")
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be layer sizes >= 1, got {self.hidden_sizes}")


@flax.struct.dataclass
class DDPGHParams:
    """Traced settings (float32 scalars, or [K] when stacked for a sweep)."""

    actor_learning_rate: jax.Array
    """Adam step size of the actor."""
    critic_learning_rate: jax.Array
    """Adam step size of the critic(s)."""
    critic_weight_decay: jax.Array
    """L2 penalty on the critic's weights, added to its gradient (Lillicrap et al. 2016: 1e-2)."""
    discount: jax.Array
    """Discount gamma."""
    tau: jax.Array
    """Target networks move to tau * online + (1 - tau) * target at each actor update."""
    exploration_noise: jax.Array
    """Std of the Gaussian action noise, or sigma of the OU process, in action scales."""
    ou_theta: jax.Array
    """Mean reversion of the OU process per step."""
    eval_noise: jax.Array
    """Std of Gaussian action noise in evaluation episodes (0: the deterministic policy)."""
    target_noise: jax.Array
    """TD3's target policy smoothing: std of the noise on the target action (0: none) ..."""
    target_noise_clip: jax.Array
    """... clipped to +-this (both in action scales)."""
    policy_delay: jax.Array
    """Critic updates per actor and target update (TD3: 2; DDPG: 1)."""
    learning_starts: jax.Array
    """Transitions in replay before the first update."""
    random_steps: jax.Array
    """Env steps of uniformly random actions before the actor acts."""
    max_grad_norm: jax.Array
    """Global gradient-norm clip of each network (inf: none)."""

    @classmethod
    def create(cls, **values: Any) -> DDPGHParams:
        return hparams_from_values(cls, DEFAULT_HPARAMS, values)


# TD3 as its authors' code runs it now (github.com/sfujim/TD3, main.py: Adam 3e-4,
# 256x256, batch 256), also CleanRL's; the paper's Table 3 values (1e-3, 400x300,
# batch 100) are the MuJoCo presets (`presets.DDPG_MUJOCO`).
DEFAULT_HPARAMS: dict[str, float] = dict(
    actor_learning_rate=3e-4, critic_learning_rate=3e-4, critic_weight_decay=0.0,
    discount=0.99, tau=0.005, exploration_noise=0.1, ou_theta=0.15, eval_noise=0.0,
    target_noise=0.0, target_noise_clip=0.5, policy_delay=1.0, learning_starts=10_000,
    random_steps=10_000, max_grad_norm=float("inf"),
)


class DDPGParams(NamedTuple):
    actor: Any
    critic: Any


class DDPGState(NamedTuple):
    params: DDPGParams
    target_params: DDPGParams
    actor_opt_state: Any
    critic_opt_state: Any
    replay: Any
    env_steps: jax.Array  # int32, total env steps observed
    updates: jax.Array  # int32, critic updates done
    hparams: DDPGHParams


class OUState(NamedTuple):
    """The Ornstein-Uhlenbeck noise of each env, [E, D]: restarted at 0 at episode ends."""

    noise: jax.Array


def _kernels(params):
    """True at the Dense layers' weight matrices, False at their biases."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def make_optimizer(learning_rate, max_grad_norm,
                   weight_decay=None) -> optax.GradientTransformation:
    """Adam after a global-norm clip, with an optional L2 penalty on the weight
    matrices added to the gradient (weight_decay * w: the gradient of
    weight_decay / 2 * |w|^2, the convention of the DDPG reference code in
    OpenAI baselines, which also leaves the biases undecayed; Lillicrap et al.
    2016, sec. 7, say only "L2 weight decay of 10^-2" for Q)."""
    parts = [optax.clip_by_global_norm(max_grad_norm)]
    if weight_decay is not None:  # added to the gradient before Adam: L2 on the loss
        parts.append(optax.add_decayed_weights(weight_decay, mask=_kernels))
    parts.append(optax.adam(learning_rate))
    return optax.chain(*parts)


def bound_action(u, bounding: str, low, high):
    """The actor's action from its raw output `u` [..., D] under `bounding` (see the
    module docstring): tanh squashing into [low, high], a clip, or `u` itself."""
    if bounding == "tanh":
        return (high + low) / 2 + (high - low) / 2 * jnp.tanh(u)
    if bounding == "clip":
        return jnp.clip(u, low, high)
    return u


def action_noise(exploration: str, hp, key, shape, scale, ou_noise=None):
    """Exploration noise in action units, and the new OU state (`ou_noise` [..., D],
    unchanged for Gaussian noise): N(0, exploration_noise^2) per component, or one
    step x' = x - theta x + sigma eps of the Ornstein-Uhlenbeck process with dt = 1
    (Lillicrap et al. 2016, sec. 7), both times the action scale `scale`."""
    eps = jax.random.normal(key, shape)
    if exploration == "ou":
        ou_noise = (1.0 - hp.ou_theta) * ou_noise + hp.exploration_noise * eps
        return ou_noise * scale, ou_noise
    return hp.exploration_noise * scale * eps, ou_noise


def explore_action(greedy, noise, key, low, high, random_now):
    """clip(greedy + noise, low, high), or actions uniform in the bounds where
    `random_now` (the first `random_steps`, Fujimoto et al. 2018, sec. 6.1)."""
    acting = jnp.clip(greedy + noise, low, high)
    uniform = jax.random.uniform(key, acting.shape, minval=low, maxval=high)
    return jnp.where(random_now, uniform, acting)


def smooth_target_action(a_t, hp, key, low, high, scale):
    """TD3's target policy smoothing (Fujimoto et al. 2018, sec. 5.3):
    clip(a_t + clip(eps, -c, c), low, high), eps ~ N(0, target_noise^2), in action scales."""
    smooth = jnp.clip(hp.target_noise * jax.random.normal(key, a_t.shape),
                      -hp.target_noise_clip, hp.target_noise_clip) * scale
    return jnp.clip(a_t + smooth, low, high)


def policy_gradient(policy, critic, actor_params, low, high, *, invert: bool = False):
    """The deterministic policy gradient of a batch (Silver et al. 2014, eq. 6;
    Lillicrap et al. 2016, Algorithm 1), as a loss gradient for a minimiser.

        grad = -1/B sum_b J_mu(s_b)^T g_b,   g_b = dQ/da(s_b, a) at a = mu(s_b)

    with g_b replaced by `losses.invert_gradients(g_b, a_b, low, high)` when
    `invert` (Hausknecht & Stone 2016, sec. 4.3.3). Without inverting, this is
    `jax.grad` of `-mean_b Q(s_b, mu(s_b))`.

    Args:
      policy: actor_params -> actions [B, D] (the batch's states closed over).
      critic: actions [B, D] -> Q [B] (the critic's params and states closed over).
      actor_params: where the gradient is taken.
      low, high: the action bounds [D].

    Returns:
      (gradient with the structure of `actor_params`, actions [B, D], mean Q).
    """
    actions, policy_vjp = jax.vjp(policy, actor_params)
    q_values, critic_vjp = jax.vjp(critic, actions)
    (dqda,) = critic_vjp(jnp.ones_like(q_values))
    if invert:
        dqda = losses.invert_gradients(dqda, actions, low, high)
    (grads,) = policy_vjp(-dqda / actions.shape[0])
    return grads, actions, jnp.mean(q_values)


def make_ddpg(config: DDPGConfig, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds DDPG/TD3 for `num_envs` lockstep environments of `spec` (continuous actions)."""
    config.validate()
    if spec.discrete:
        raise ValueError(f"DDPG and TD3 need a continuous action space; {spec.name} has "
                         f"{spec.num_actions} discrete actions")
    low = jnp.asarray(spec.action_low, jnp.float32)
    high = jnp.asarray(spec.action_high, jnp.float32)
    if not (np.all(np.isfinite(spec.action_low)) and np.all(np.isfinite(spec.action_high))):
        raise ValueError(f"{spec.name} has unbounded actions; DDPG here needs finite bounds")
    D = low.shape[0]
    scale = (high - low) / 2
    obs_ndim = len(spec.obs_shape)
    policy_net = DeterministicPolicy(D, config.hidden_sizes, obs_ndim)
    critic_net = Critic(config.hidden_sizes, obs_ndim, config.num_critics)
    example_obs = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    buffer = make_transition_buffer(example_obs, num_envs, config.replay_capacity,
                                    config.batch_size, n_step=config.n_step,
                                    action_dtype=jnp.float32, action_shape=(D,))

    def mu(actor_params, obs):
        return bound_action(policy_net.apply(actor_params, obs), config.action_bounding,
                            low, high)

    def q(critic_params, obs, action):
        return critic_net.apply(critic_params, obs, action)  # [num_critics, B]

    def actor_opt(hp):
        return make_optimizer(hp.actor_learning_rate, hp.max_grad_norm)

    def critic_opt(hp):
        return make_optimizer(hp.critic_learning_rate, hp.max_grad_norm, hp.critic_weight_decay)

    def init(key, hp: DDPGHParams) -> DDPGState:
        actor_key, critic_key = jax.random.split(key)
        params = DDPGParams(
            actor=policy_net.init(actor_key, example_obs),
            critic=critic_net.init(critic_key, example_obs, jnp.zeros(D)))
        return DDPGState(params=params, target_params=params,
                         actor_opt_state=actor_opt(hp).init(params.actor),
                         critic_opt_state=critic_opt(hp).init(params.critic),
                         replay=buffer.init(), env_steps=jnp.zeros((), jnp.int32),
                         updates=jnp.zeros((), jnp.int32), hparams=hp)

    def view(state: DDPGState) -> ActorView:
        return ActorView(params=state.params.actor, hparams=state.hparams,
                         env_steps=state.env_steps)

    def explore(view: ActorView, noise, obs, key):
        """clip(mu(s) + noise, low, high), or uniform actions during the random steps."""
        random_key, key = jax.random.split(key)
        return explore_action(mu(view.params, obs), noise, random_key, low, high,
                              view.env_steps < view.hparams.random_steps)

    def actor_init(view, n: int):
        return OUState(jnp.zeros((n, D))) if config.exploration == "ou" else ()

    def act(view: ActorView, actor_state, obs, key):
        noise_key, key = jax.random.split(key)
        ou = config.exploration == "ou"
        noise, ou_noise = action_noise(config.exploration, view.hparams, noise_key,
                                       (obs.shape[0], D), scale,
                                       actor_state.noise if ou else None)
        return explore(view, noise, obs, key), OUState(ou_noise) if ou else actor_state

    def actor_observe(actor_state, actions, reward, done):
        if config.exploration != "ou":
            return actor_state
        return OUState(jnp.where(done[:, None], 0.0, actor_state.noise))

    def eval_act(view: ActorView, actor_state, obs, key):
        eps = jax.random.normal(key, (obs.shape[0], D))
        action = mu(view.params, obs) + view.hparams.eval_noise * scale * eps
        return jnp.clip(action, low, high), actor_state

    def observe(state: DDPGState, steps: EnvSteps, actor_state=()):
        replay = buffer.add(state.replay, steps, ReplayParams(discount=state.hparams.discount))
        return state._replace(replay=replay, env_steps=state.env_steps + steps.obs.shape[0])

    def can_update(state: DDPGState):
        return buffer.can_sample(state.replay, state.hparams.learning_starts)

    def critic_loss(critic_params, target_params: DDPGParams, batch: Transition, hp, key):
        """sum_i mean_b (Q_i(s, a) - y)^2 with the (clipped double-Q, smoothed) target."""
        a_t = smooth_target_action(mu(target_params.actor, batch.next_obs), hp, key, low, high,
                                   scale)
        q_t = jnp.min(q(target_params.critic, batch.next_obs, a_t), axis=0)
        y = jax.lax.stop_gradient(batch.reward + batch.discount * q_t)
        q_tm1 = q(critic_params, batch.obs, batch.action)
        return jnp.sum(jnp.mean((q_tm1 - y) ** 2, axis=-1)), jnp.mean(q_tm1[0])

    def update(state: DDPGState, key):
        """One critic step, and every `policy_delay` critic steps one actor step and a
        move of both targets; no change while the replay warms up (masked, no
        `lax.cond`, as `agents.dqn`)."""
        hp = state.hparams
        ready = can_update(state)
        sample_key, noise_key = jax.random.split(key)
        batch, _, _ = buffer.sample(state.replay, sample_key, ReplayParams(discount=hp.discount))
        (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.params.critic, state.target_params, batch, hp, noise_key)
        c_updates, critic_opt_state = critic_opt(hp).update(c_grads, state.critic_opt_state,
                                                           state.params.critic)
        critic = optax.apply_updates(state.params.critic, c_updates)
        num_updates = state.updates + 1
        delay = jnp.maximum(jnp.round(hp.policy_delay), 1.0).astype(jnp.int32)
        actor_step = ready & (jnp.mod(num_updates, delay) == 0)
        # TD3's actor follows the critic just updated (Fujimoto et al. 2018, Algorithm 1).
        a_grads, actions, actor_q = policy_gradient(
            lambda p: mu(p, batch.obs), lambda a: q(critic, batch.obs, a)[0],
            state.params.actor, low, high,
            invert=config.action_bounding == "inverting_gradients")
        a_updates, actor_opt_state = actor_opt(hp).update(a_grads, state.actor_opt_state,
                                                         state.params.actor)
        actor = optax.apply_updates(state.params.actor, a_updates)

        def keep(mask, new, old):
            return jax.tree.map(lambda n, o: jnp.where(mask, n, o), new, old)

        params = DDPGParams(actor=keep(actor_step, actor, state.params.actor),
                            critic=keep(ready, critic, state.params.critic))
        polyak = jax.tree.map(lambda t, p: hp.tau * p + (1.0 - hp.tau) * t,
                              state.target_params, params)
        outside = (actions < low) | (actions > high)
        excess = jnp.maximum(jnp.maximum(actions - high, low - actions), 0.0) / scale
        metrics = {"loss": c_loss, "q_mean": q_mean, "actor_q": actor_q,
                   "policy_out_of_bounds": jnp.mean(outside.astype(jnp.float32)),
                   "policy_excess": jnp.max(excess),
                   "grad_norm": optax.tree.norm(c_grads)}
        metrics = {k: jnp.where(ready, v, 0.0) for k, v in metrics.items()}
        metrics["updated"] = ready.astype(jnp.float32)
        return state._replace(
            params=params, target_params=keep(actor_step, polyak, state.target_params),
            actor_opt_state=keep(actor_step, actor_opt_state, state.actor_opt_state),
            critic_opt_state=keep(ready, critic_opt_state, state.critic_opt_state),
            updates=jnp.where(ready, num_updates, state.updates)), metrics

    return Agent(init=init, view=view, actor=Actor(actor_init, act, actor_observe),
                 eval_actor=Actor(lambda view, n: (), eval_act, lambda s, a, r, d: s),
                 observe=observe, update=update, can_update=can_update,
                 metric_names=("loss", "q_mean", "actor_q", "policy_out_of_bounds",
                               "policy_excess", "grad_norm", "updated"))
