"""The DQN family as one agent: DQN, Double DQN, dueling, n-step, prioritized replay.

* DQN: Mnih et al. 2015, "Human-level control through deep RL" (Nature):
  Q-learning with a target network, Huber-clipped TD error, centered RMSProp.
* Double DQN: van Hasselt et al. 2016, eq. 4 (online net selects, target evaluates).
* Dueling: Wang et al. 2016, eq. 9 (`networks.DuelingHead`).
* Prioritized replay: Schaul et al. 2016 (proportional variant, IS weights
  with beta annealed to 1).
* n-step returns: Sutton 1988; as used by Hessel et al. 2018 (Rainbow).
* Distributional values (`distribution`): C51 (Bellemare et al. 2017, a
  categorical return distribution on fixed atoms), QR-DQN (Dabney et al.
  2018a, fixed quantile fractions), IQN (Dabney et al. 2018b, sampled
  fractions). Actions are greedy in the distribution's mean; with
  `prioritized`, C51 transitions are prioritised by the KL divergence of the
  loss (Hessel et al. 2018, sec. 3: cross-entropy minus the entropy of the
  projected target, `losses.categorical_kl_priority`), quantile ones by the
  per-example quantile loss.
* Noisy nets (`noisy`): factorised-Gaussian head layers (Fortunato et al.
  2018) with a fresh noise key for each forward pass; acting is greedy in the
  noisy values (no epsilon-greedy) and evaluation uses the mean weights. With
  double Q, the online pass that selects the next action draws its own noise,
  independent of the online pass at s_tm1 (Fortunato et al. 2018, sec. 3.1:
  the NoisyNet-Dueling target selects b*(y) with its own noise eps'').
* Rainbow (Hessel et al. 2018): C51 + double + dueling + noisy + n-step +
  prioritized, the `rainbow` preset.
* Ape-X (Horgan et al. 2018): double + dueling + 3-step + prioritized, with
  a fixed epsilon per actor, `epsilon_i = 0.4 ** (1 + 7 i / (N - 1))`
  (`epsilon_ladder`; here the actors are the N envs of the batch), the
  `apex` preset. New transitions enter at the largest priority seen and the
  learner writes back |n-step TD error| after each update (the paper's
  actors compute the first priority from their own Q-values: a second
  forward pass per step that this single-process agent does without).

Replay (`replay.buffer`, one bundle of pure functions the agent calls and
whose state it never reads). Storage (`replay_storage`): `transitions` keeps
each n-step transition whole (`obs` and `next_obs`), built by `replay.nstep`
before it is stored; `frames` (for stacked Atari frames `[S, H, W]`) keeps each frame
once per env (`replay.frames`: 1M Atari transitions in about 7 GB instead of
56) and computes the n-step returns with the same formula when sampling.
Both feed the same loss with the same batch layout.

The agent follows `jaxrl57.agents.base.Agent`: a stateless actor (epsilon-greedy,
or greedy in the noisy values) on the published view, and the learner below. Shapes are fixed by the
static `DQNConfig`; every numeric setting that does not change a shape is a
traced array in `DQNHParams`, so `jax.vmap(agent.init)(keys, hparams)`
gives a population whose members differ in learning rate, discount, ...

Target network: every `target_period` gradient UPDATES (not env steps) the
target moves to `tau * online + (1 - tau) * target`. `tau = 1` is the
periodic copy of Nature DQN; `target_period = 1` with a small `tau` is Polyak
averaging. Both are traced, so both can be swept. The papers count the
period in agent steps or frames; the Atari presets convert at their one
update per 4 agent steps (16 frames), e.g. Nature's 10,000 agent steps are
2,500 updates.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57 import exploration, losses
from jaxrl57.agents.base import (
    ActorView,
    Agent,
    annealed_learning_rate,
    hparams_from_values,
    stateless_actor,
)
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks import make_q_network
from jaxrl57.networks.distributional import expected_q, sample_taus
from jaxrl57.replay import Transition, frame_rows_per_env
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_transition_buffer


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Static settings: they fix shapes or program structure (not sweepable by vmap)."""

    torso: str = "mlp"
    """Feature network: mlp (hidden_sizes), nature_cnn (Mnih et al. 2015) or small_cnn."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Layer widths of the MLP torso."""
    dueling: bool = False
    """Value and advantage streams (Wang et al. 2016, eq. 9)."""
    double: bool = False
    """Double Q-learning target: the online network selects the next action, the target network
    evaluates it (van Hasselt et al. 2016, eq. 4)."""
    n_step: int = 1
    """Steps of the bootstrapped return (Sutton & Barto 2018, sec. 7.1)."""
    prioritized: bool = False
    """Proportional prioritized replay (Schaul et al. 2016, sec. 3.3)."""
    replay_capacity: int = 100_000
    """Transitions kept in replay."""
    batch_size: int = 32
    """Transitions per gradient update."""
    optimizer: str = "adam"
    """adam, or rmsprop (centered, as Nature DQN)."""
    distribution: str = "none"
    """none (Q-values), or a return distribution: c51, qr or iqn."""
    num_atoms: int = 51
    """C51 atoms, QR-DQN quantiles, or IQN fractions N = N' per update."""
    num_act_taus: int = 32
    """IQN: fractions K averaged to act."""
    quantile_kappa: float = 1.0
    """QR-DQN and IQN quantile Huber threshold (static: rlax branches on it)."""
    noisy: bool = False
    """Factorised Gaussian noisy layers explore instead of epsilon (Fortunato et al. 2018)."""
    noisy_sigma0: float = 0.5
    """Initial noise scale sigma_0 of the noisy layers."""
    epsilon_ladder: bool = False
    """Ape-X: env i explores with apex_epsilon ** (1 + apex_alpha i / (N - 1)), fixed, instead of
    the annealed epsilon shared by all envs."""
    replay_storage: str = "transitions"
    """transitions (whole n-step transitions) or frames (stacked uint8 frames stored once, n-step
    returns built when sampling)."""

    def validate(self) -> None:
        """Raises ValueError for impossible settings."""
        for name in ("batch_size", "replay_capacity", "n_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size > self.replay_capacity:
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than replay_capacity "
                f"({self.replay_capacity})")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be adam or rmsprop, not {self.optimizer!r}")
        if self.torso not in ("mlp", "nature_cnn", "small_cnn"):
            raise ValueError(f"torso must be mlp, nature_cnn or small_cnn, not {self.torso!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                             f"not {self.distribution!r}")
        if self.distribution != "none" and self.num_atoms < 2:
            raise ValueError(f"num_atoms must be >= 2, got {self.num_atoms}")
        if self.distribution in ("qr", "iqn") and self.dueling:
            raise ValueError(f"dueling is not available with distribution={self.distribution}")
        if self.num_act_taus < 1:
            raise ValueError(f"num_act_taus must be >= 1, got {self.num_act_taus}")
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be layer sizes >= 1, got {self.hidden_sizes}")
        if self.torso == "mlp" and not self.hidden_sizes and (
                self.dueling or self.distribution == "iqn"):
            # Their MLP heads take the width of the torso's last layer.
            raise ValueError("hidden_sizes needs at least one layer with dueling or "
                             "distribution=iqn")
        # rlax's quantile Huber loss is the plain quantile loss at kappa 0.
        if not 0.0 <= self.quantile_kappa < float("inf"):
            raise ValueError(f"quantile_kappa must be finite and >= 0, got {self.quantile_kappa}")
        if not 0.0 <= self.noisy_sigma0 < float("inf"):
            raise ValueError(f"noisy_sigma0 must be finite and >= 0, got {self.noisy_sigma0}")
        if self.epsilon_ladder and self.noisy:
            raise ValueError("epsilon_ladder and noisy both set the exploration: choose one")
        if self.replay_storage not in REPLAY_STORAGES:
            raise ValueError(f"replay_storage must be one of {', '.join(REPLAY_STORAGES)}, "
                             f"not {self.replay_storage!r}")


DISTRIBUTIONS = ("none", "c51", "qr", "iqn")
REPLAY_STORAGES = ("transitions", "frames")


@flax.struct.dataclass
class DQNHParams:
    """Traced settings (float32 scalars, or [K] when stacked for a sweep)."""

    learning_rate: jax.Array
    """Optimizer step size at the first update."""
    lr_final_fraction: jax.Array
    """The step size anneals linearly to this fraction of learning_rate ..."""
    lr_decay_updates: jax.Array
    """... over this many updates (derived from the run unless set; fraction 1: constant)."""
    discount: jax.Array
    """Discount gamma."""
    epsilon_start: jax.Array
    """Exploration epsilon before the decay."""
    epsilon_end: jax.Array
    """Exploration epsilon after the decay."""
    epsilon_decay_steps: jax.Array
    """Env steps of the linear epsilon decay."""
    epsilon_decay_start: jax.Array
    """Env steps at epsilon_start before the decay begins."""
    eval_epsilon: jax.Array
    """Epsilon of evaluation episodes."""
    learning_starts: jax.Array
    """Transitions in replay before the first update."""
    target_period: jax.Array
    """Gradient updates (not env steps) between moves of the target network."""
    target_tau: jax.Array
    """A move sets target = tau * online + (1 - tau) * target (1: a copy)."""
    huber_delta: jax.Array
    """Huber threshold of the TD loss (large: the squared loss)."""
    max_grad_norm: jax.Array
    """Global gradient-norm clip (inf: none)."""
    optimizer_eps: jax.Array
    """Adam's eps, or centered RMSProp's eps inside the square root."""
    rmsprop_decay: jax.Array
    """Decay of RMSProp's first and second moments."""
    priority_alpha: jax.Array
    """Priority exponent alpha (Schaul et al. 2016, eq. 1)."""
    priority_beta_start: jax.Array
    """Importance-sampling exponent beta at the first update ..."""
    priority_beta_steps: jax.Array
    """... annealed to 1 over this many updates (derived from the run unless set; inf: fixed)."""
    v_min: jax.Array
    """Lower end of the C51 support."""
    v_max: jax.Array
    """Upper end of the C51 support."""
    apex_epsilon: jax.Array
    """Ape-X epsilon ladder's base (epsilon_ladder; Horgan et al. 2018, sec. 4.1)."""
    apex_alpha: jax.Array
    """Ape-X epsilon ladder's exponent."""

    @classmethod
    def create(cls, **values: Any) -> DQNHParams:
        """Defaults (Adam, small-task scale) overridden by `values`."""
        return hparams_from_values(cls, DEFAULT_HPARAMS, values)


DEFAULT_HPARAMS: dict[str, float] = dict(
    learning_rate=1e-3, lr_final_fraction=1.0, lr_decay_updates=1.0, discount=0.99,
    epsilon_start=1.0, epsilon_end=0.05, epsilon_decay_steps=10_000, epsilon_decay_start=0.0,
    eval_epsilon=0.0, learning_starts=1_000, target_period=500,
    target_tau=1.0, huber_delta=1.0, max_grad_norm=10.0, optimizer_eps=1e-8,
    rmsprop_decay=0.95, priority_alpha=0.6, priority_beta_start=0.4,
    priority_beta_steps=100_000, v_min=-10.0, v_max=10.0, apex_epsilon=0.4, apex_alpha=7.0,
)


class DQNState(NamedTuple):
    params: Any
    target_params: Any
    opt_state: Any
    replay: Any  # the state of `replay.buffer.make_transition_buffer`'s bundle
    env_steps: jax.Array  # int32, total env steps observed
    updates: jax.Array  # int32, gradient updates done
    hparams: DQNHParams


def make_optimizer(config: DQNConfig, hp: DQNHParams) -> optax.GradientTransformation:
    """Gradient clipping then Adam, or the centered RMSProp of Nature DQN.

    Nature DQN's RMSProp (Graves 2013, eq. 38-41; `NeuralQLearner.lua` of the
    released code): decay 0.95 for both moments and the step
    `lr * g / sqrt(E[g^2] - E[g]^2 + 0.01)`, eps inside the square root as in
    optax's centered rmsprop. That 0.01 is for gradients of a loss SUMMED over
    the batch of 32; the losses here average over the batch, so the gradients
    are 32 times smaller and their squares 32^2 times: `optimizer_eps = 0.01 /
    32**2` gives the same step (dqn_zoo's value; tested). Adam's eps sits
    outside the square root, so there a batch-mean loss divides it by the
    batch size once (Bellemare et al. 2017: 0.01 / 32).
    """
    clip = optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=hp.max_grad_norm)
    learning_rate = annealed_learning_rate(hp)
    if config.optimizer == "adam":
        opt = optax.adam(learning_rate=learning_rate, eps=hp.optimizer_eps)
    else:
        opt = optax.rmsprop(learning_rate=learning_rate, decay=hp.rmsprop_decay,
                            eps=hp.optimizer_eps, centered=True)
    return optax.chain(clip, opt)


def priority_beta(hp: DQNHParams, updates):
    """The importance-sampling exponent at the update that follows `updates` updates.

    Schaul et al. 2016, sec. 3.4: beta anneals linearly from `priority_beta_start`
    to 1, reached at the end of learning; here 1 is reached once `updates`
    equals `priority_beta_steps`, which `jaxrl57.configs.resolve` derives from
    the run's number of updates (Ape-X keeps it infinite: a fixed beta).
    """
    progress = jnp.minimum(1.0, updates / hp.priority_beta_steps)
    return hp.priority_beta_start + (1.0 - hp.priority_beta_start) * progress


def online_passes(forward, params, obs_tm1, obs_t, key, taus=None, *,
                  independent_noise: bool = False):
    """The online network's outputs at s_tm1 and, for double Q, at s_t: [B or 2B, ...].

    `forward(params, obs, key, taus)` is the agent's network call and `obs_t`
    is None without double Q. One pass over the concatenated batch is cheaper;
    with noisy layers that pass shares one noise sample between the value
    learned at s_tm1 and the selection of the next action, so with
    `independent_noise` the selection pass draws its own (Fortunato et al.
    2018, sec. 3.1: the NoisyNet-Dueling loss selects b*(y) under noise eps''
    independent of the eps of Q(x, a)). `taus` [B or 2B, N]: IQN's fractions.
    """
    if obs_t is None:
        return forward(params, obs_tm1, key, taus)
    B = obs_tm1.shape[0]
    if not independent_noise:
        return forward(params, jnp.concatenate([obs_tm1, obs_t]), key, taus)
    taus_tm1, taus_t = (None, None) if taus is None else (taus[:B], taus[B:])
    select_key = jax.random.fold_in(key, 1)
    return jnp.concatenate([forward(params, obs_tm1, key, taus_tm1),
                            forward(params, obs_t, select_key, taus_t)])


def make_dqn(config: DQNConfig, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds the DQN-family agent for `num_envs` lockstep environments of `spec`."""
    config.validate()
    if not spec.discrete:
        raise ValueError(f"DQN needs a discrete action space; {spec.name} has continuous actions")
    network = make_q_network(spec.num_actions, spec.obs_shape, torso=config.torso,
                             hidden_sizes=config.hidden_sizes, dueling=config.dueling,
                             distribution=config.distribution, num_atoms=config.num_atoms,
                             noisy=config.noisy, sigma0=config.noisy_sigma0)
    dist = config.distribution
    frames = config.replay_storage == "frames"
    if frames:
        if len(spec.obs_shape) != 3 or np.dtype(spec.obs_dtype) != np.uint8:
            raise ValueError(f"replay_storage=frames needs stacked uint8 frames [S, H, W]; "
                             f"{spec.name} has {np.dtype(spec.obs_dtype).name} observations "
                             f"of shape {spec.obs_shape}")
        rows = frame_rows_per_env(config.replay_capacity, num_envs)
        if rows < spec.obs_shape[0] + config.n_step + 2:
            raise ValueError(f"replay_capacity {config.replay_capacity} over {num_envs} envs "
                             f"is too small for replay_storage=frames")
    example_obs = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    buffer = make_transition_buffer(example_obs, num_envs, config.replay_capacity,
                                    config.batch_size, n_step=config.n_step,
                                    prioritized=config.prioritized, frames=frames)

    def replay_params(hp: DQNHParams, updates=None) -> ReplayParams:
        """The buffer's traced settings; beta (read only when sampling) needs `updates`."""
        beta = priority_beta(hp, updates) if config.prioritized and updates is not None else 1.0
        return ReplayParams(discount=hp.discount, priority_alpha=hp.priority_alpha,
                            priority_beta=beta)

    def forward(params, obs, key, taus=None, deterministic=False):
        """The network's raw output; `key` feeds the noisy layers' "noise" stream."""
        head_args = () if taus is None else (taus,)
        if not config.noisy:
            return network.apply(params, obs, *head_args)
        rngs = None if deterministic else {"noise": key}
        return network.apply(params, obs, *head_args, deterministic=deterministic, rngs=rngs)

    def atoms(hp: DQNHParams):
        return jnp.linspace(hp.v_min, hp.v_max, config.num_atoms)

    def q_values(params, obs, key, hp: DQNHParams, deterministic=False):
        """Greedy values [B, A]: the mean of the return distribution."""
        noise_key, tau_key = jax.random.split(key)
        if dist == "iqn":
            taus = sample_taus(tau_key, config.num_act_taus, obs.shape[:1])
            return jnp.mean(forward(params, obs, noise_key, taus, deterministic), axis=-2)
        out = forward(params, obs, noise_key, deterministic=deterministic)
        if dist == "c51":
            return expected_q(out, atoms(hp))
        if dist == "qr":
            return jnp.mean(out, axis=-2)
        return out

    def init(key, hp: DQNHParams) -> DQNState:
        params_key, noise_key = jax.random.split(key)
        init_args = (sample_taus(noise_key, config.num_act_taus),) if dist == "iqn" else ()
        params = network.init({"params": params_key, "noise": noise_key}, example_obs,
                              *init_args)
        opt_state = make_optimizer(config, hp).init(params)
        return DQNState(
            params=params, target_params=params, opt_state=opt_state, replay=buffer.init(),
            env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32), hparams=hp)

    def view(state: DQNState) -> ActorView:
        return ActorView(params=state.params, hparams=state.hparams, env_steps=state.env_steps)

    def epsilon(view: ActorView):
        """The exploration epsilon: a scalar, or [num_envs] with the ladder."""
        hp = view.hparams
        if config.epsilon_ladder:
            return exploration.apex_epsilons(num_envs, hp.apex_epsilon, hp.apex_alpha)
        return exploration.linear_epsilon(view.env_steps, hp.epsilon_start, hp.epsilon_end,
                                          hp.epsilon_decay_steps, hp.epsilon_decay_start)

    def policy(view: ActorView, obs, key):
        q_key, key = jax.random.split(key)
        q = q_values(view.params, obs, q_key, view.hparams)
        if config.noisy:  # the noise explores (Fortunato et al. 2018, Algorithm 1)
            return jnp.argmax(q, axis=-1).astype(jnp.int32)
        return exploration.epsilon_greedy(key, q, epsilon(view))

    def eval_policy(view: ActorView, obs, key):
        q_key, key = jax.random.split(key)
        q = q_values(view.params, obs, q_key, view.hparams, deterministic=True)
        return exploration.epsilon_greedy(key, q, view.hparams.eval_epsilon)

    def observe(state: DQNState, steps: EnvSteps, actor_state=()):
        replay = buffer.add(state.replay, steps, replay_params(state.hparams))
        return state._replace(replay=replay, env_steps=state.env_steps + steps.obs.shape[0])

    def can_update(state: DQNState):
        return buffer.can_sample(state.replay, state.hparams.learning_starts)

    def loss_fn(params, target_params, batch: Transition, weights, hp: DQNHParams, key):
        """Returns (loss, (per-example priority source, mean online Q))."""
        online_key, target_key, tau_key, tau_t_key = jax.random.split(key, 4)
        B = batch.action.shape[0]
        a, r, d = batch.action, batch.reward, batch.discount
        num_online = 2 * B if config.double else B
        taus = (sample_taus(tau_key, config.num_atoms, (num_online,)) if dist == "iqn"
                else None)
        online = online_passes(forward, params, batch.obs,
                               batch.next_obs if config.double else None, online_key, taus,
                               independent_noise=config.noisy)
        if dist == "iqn":
            target = forward(target_params, batch.next_obs, target_key,
                             sample_taus(tau_t_key, config.num_atoms, (B,)))
        else:
            target = forward(target_params, batch.next_obs, target_key)
        out_tm1 = online[:B]
        if dist == "c51":
            z = atoms(hp)
            q_tm1 = expected_q(out_tm1, z)
            q_select = expected_q(online[B:], z) if config.double else None
            if config.double:
                loss, per = losses.categorical_double_dqn_loss(
                    out_tm1, a, r, d, target, q_select, z, weights=weights)
            else:
                loss, per = losses.categorical_dqn_loss(out_tm1, a, r, d, target, z,
                                                        weights=weights)
            if config.prioritized:
                per = losses.categorical_kl_priority(per, r, d, target, z, q_select)
        elif dist in ("qr", "iqn"):
            q_tm1 = jnp.mean(out_tm1, axis=-2)
            q_select = jnp.mean(online[B:], axis=-2) if config.double else None
            if dist == "qr":
                loss, per = losses.quantile_dqn_loss(
                    out_tm1, a, r, d, target, q_select,
                    taus=losses.quantile_midpoints(config.num_atoms),
                    huber_delta=config.quantile_kappa, weights=weights)
            else:
                loss, per = losses.iqn_loss(out_tm1, taus[:B], a, r, d, target, q_select,
                                            huber_delta=config.quantile_kappa, weights=weights)
        else:
            q_tm1 = out_tm1
            if config.double:
                loss, td = losses.double_dqn_loss(q_tm1, a, r, d, target, online[B:],
                                                  huber_delta=hp.huber_delta, weights=weights)
            else:
                loss, td = losses.dqn_loss(q_tm1, a, r, d, target,
                                           huber_delta=hp.huber_delta, weights=weights)
            per = jnp.abs(td)
        return loss, (per, jnp.mean(q_tm1))

    def update(state: DQNState, key):
        """One gradient step, or no change while replay is warming up.

        The warm-up test masks the result instead of branching (`lax.cond`
        would copy the replay it carries; under `vmap` it is a select anyway).
        `metrics["updated"]` is 1.0 when the step counted.
        """
        hp = state.hparams
        ready = can_update(state)
        if config.noisy or dist == "iqn":
            key, loss_key = jax.random.split(key)
        else:  # the loss draws nothing: plain DQN keeps its sampling stream
            loss_key = key
        params_of_replay = replay_params(hp, state.updates)
        batch, indices, weights = buffer.sample(state.replay, key, params_of_replay)
        (loss, (priority, q_mean)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch, weights, hp, loss_key)
        updates, opt_state = make_optimizer(config, hp).update(grads, state.opt_state,
                                                                state.params)
        params = optax.apply_updates(state.params, updates)
        num_updates = state.updates + 1
        move = jnp.mod(num_updates, jnp.maximum(hp.target_period, 1).astype(jnp.int32)) == 0
        target_params = jax.tree.map(
            lambda t, p: jnp.where(move, hp.target_tau * p + (1.0 - hp.target_tau) * t, t),
            state.target_params, params)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ready, n, o), new, old)
        replay = buffer.set_priorities(state.replay, indices, priority, params_of_replay, ready)
        # td_abs: |TD error| for Q-value heads, the per-example loss otherwise.
        metrics = {"loss": loss, "q_mean": q_mean, "td_abs": jnp.mean(priority),
                   "grad_norm": optax.tree.norm(grads)}
        metrics = {k: jnp.where(ready, v, 0.0) for k, v in metrics.items()}
        metrics["updated"] = ready.astype(jnp.float32)
        new_state = state._replace(
            params=keep(params, state.params), target_params=keep(target_params,
                                                                  state.target_params),
            opt_state=keep(opt_state, state.opt_state), replay=replay,
            updates=jnp.where(ready, num_updates, state.updates))
        return new_state, metrics

    return Agent(init=init, view=view, actor=stateless_actor(policy),
                 eval_actor=stateless_actor(eval_policy), observe=observe, update=update,
                 can_update=can_update,
                 metric_names=("loss", "q_mean", "td_abs", "grad_norm", "updated"))
