"""Never Give Up (Badia et al. 2020a): R2D2 with an intrinsic reward and a
family of policies, as one agent of `jaxrl57.agents.base`.

The pieces, on R2D2's (`agents.r2d2`: recurrent Q-network, sequence replay
with stored state and burn-in, prioritised by `losses.r2d2_priority`):

* **Intrinsic reward** (`jaxrl57.intrinsic`, NGU sec. 2): at every step the
  actor embeds the observation with the inverse-dynamics embedding f
  (`networks.intrinsic.InverseDynamics`), scores it against the episode's
  earlier embeddings (`intrinsic.episodic_memory_step`: NGU Algorithm 1, the
  memory emptied at every episode start), and multiplies that by RND's
  lifelong modulator alpha in [1, L] (`intrinsic.lifelong_modulator` on the
  predictor's error over the observation normalised by running statistics,
  which a uniformly random policy initialises for `obs_norm_steps` env steps
  before any learning, as RND's code does).
  The reward r_i of step t is that of its observation x_t, as Algorithm 1
  computes r_t^i from f(x_t) against f(x_0..x_{t-1}); the action that reached
  x_t receives it through the bootstrap of the step before.
* **A family of policies** (sec. 3): N pairs (beta_j, gamma_j)
  (`exploration.ngu_betas`, `exploration.ngu_discounts`); policy j learns
  from the mixed reward r_e + beta_j r_i with discount gamma_j, and the
  Q-network takes the one-hot j as an input (a UVFA), with the previous
  action and the previous extrinsic and intrinsic rewards. An actor env
  draws j uniformly at every episode start (the paper spreads the N
  policies evenly over its actors; here every env of every actor samples
  them in equal shares); evaluation follows j = 0 (beta 0, the largest
  discount), the exploitative policy, greedily.
* **Learner**: transformed Retrace (lambda 0.95, `losses.retrace_loss`) on
  the mixed reward of each step's own j, the target policy greedy in the
  online Q and the behaviour probabilities the actors recorded (their
  epsilon-greedy with the Ape-X ladder of epsilons); the embedding trained by
  the inverse-dynamics cross-entropy and RND's predictor by its squared
  error, on the same replayed sequences, each with its own Adam.

Episode ends are stored as R2D2 stores them (the final observation as a step
of its own, discount 0 after a termination only); Retrace's trace is cut at
the final observation (lambda 0 there), so the step into it bootstraps on
E_pi Q(x_T) at a time limit and on nothing at a termination.

Agent57 (the `agent57` preset) is this agent with `split_values` (extrinsic
and intrinsic value networks), `meta_controller="bandit"` (a sliding-window
UCB per env choosing j) and Agent57's discount family.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from jaxrl57 import bandit, exploration, intrinsic, losses
from jaxrl57.agents.base import Actor, ActorView, Agent, hparams_from_values
from jaxrl57.agents.r2d2 import (
    DEFAULT_HPARAMS as R2D2_DEFAULT_HPARAMS,
)
from jaxrl57.agents.r2d2 import (
    R2D2HParams,
    RecurrentReplayConfig,
    finish_update,
    make_network,
    make_optimizer,
)
from jaxrl57.envs.base import EnvSpec
from jaxrl57.networks import make_torso
from jaxrl57.networks.intrinsic import InverseDynamics, RNDNetwork
from jaxrl57.networks.recurrent import initial_carry
from jaxrl57.replay.buffer import EnvSteps, ReplayParams, make_sequence_buffer


@dataclasses.dataclass(frozen=True)
class NGUConfig(RecurrentReplayConfig):
    """Static settings (shapes and program structure)."""

    num_policies: int = 32
    """N, the (beta_j, gamma_j) pairs of the family (Badia et al. 2020a, Table 6: 32)."""
    memory_capacity: int = 30_000
    """Embeddings the episodic memory of one env holds (Table 6: 30,000)."""
    num_neighbors: int = 10
    """k of the episodic kNN (Table 6: 10)."""
    embedding_size: int = 32
    """Size of the inverse-dynamics embedding f (Table 6: 32)."""
    rnd_output_size: int = 128
    """Output size of RND's target and predictor (Table 6: 128)."""
    intrinsic_torso: str = "mlp"
    """Torso of the embedding and RND networks: mlp (intrinsic_hidden), nature_cnn or
    small_cnn."""
    intrinsic_hidden: tuple[int, ...] = (64,)
    """Layer widths of their MLP torso."""
    intrinsic_reward: str = "ngu"
    """ngu: episodic novelty times the lifelong modulator (NGU eq. 1); episodic: the modulator
    held at 1 (no RND); lifelong: the clipped modulator alone (no episodic memory), for
    ablations."""
    relabel_policy: bool = False
    """Train each replayed sequence as the policy of an index drawn uniformly, not the one that
    acted (Retrace's traces correct for the behaviour), so that the exploitative policy learns
    from what the exploratory ones found; the papers train the acting policy's index."""
    split_values: bool = False
    """Agent57: extrinsic and intrinsic value networks, each trained on its own reward, acting on
    h(h^-1(Q_e) + beta_j h^-1(Q_i)) (Badia et al. 2020b, sec. 4); NGU: one network on the mixed
    reward."""
    intrinsic_episodic: bool = True
    """With split_values: the intrinsic value ends at a termination, as the extrinsic one does
    (one episode end for both, as NGU's single network has); False bootstraps it through, a
    non-episodic intrinsic return (Burda et al. 2019, sec. 2.3), so that an exploratory policy
    does not lose its future intrinsic reward by ending an episode at a goal."""
    meta_controller: str = "uniform"
    """How an env picks its policy index at each episode start: uniform (NGU), or bandit (Agent57:
    each env's sliding-window UCB on its episodes' extrinsic returns)."""
    bandit_window: int = 90
    """Episodes each env's bandit remembers (Agent57, Table 3: 90; sec. 4 describes 160)."""
    evaluator_window: int = 3_600
    """Episodes, over all envs, whose returns per policy the evaluator's greedy choice reads
    (Agent57, sec. 4: 3,600)."""
    discount_family: str = "ngu"
    """ngu (horizons spaced geometrically from discount to discount_min) or agent57 (discount,
    discount_mid and discount_min as its gamma_0, gamma_1 and gamma_2)."""

    def validate(self) -> None:
        super().validate()
        if not self.intrinsic_episodic and not self.split_values:
            raise ValueError("intrinsic_episodic=false needs split_values: one network on the "
                             "mixed reward has one discount for both rewards")
        if self.relabel_policy and self.burn_in < 1:
            raise ValueError("relabel_policy needs burn_in >= 1: a replayed sequence's stored "
                             "state was computed under the index that acted")
        if self.intrinsic_reward not in ("ngu", "episodic", "lifelong"):
            raise ValueError(f"intrinsic_reward must be ngu, episodic or lifelong, not "
                             f"{self.intrinsic_reward!r}")
        if self.meta_controller not in ("uniform", "bandit"):
            raise ValueError(f"meta_controller must be uniform or bandit, not "
                             f"{self.meta_controller!r}")
        if self.discount_family not in ("ngu", "agent57"):
            raise ValueError(f"discount_family must be ngu or agent57, not "
                             f"{self.discount_family!r}")
        if self.discount_family == "agent57" and self.num_policies < 10:
            raise ValueError(f"Agent57's discount family needs num_policies >= 10 (the paper "
                             f"uses 32), got {self.num_policies}")
        for name in ("bandit_window", "evaluator_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_policies", "memory_capacity", "num_neighbors", "embedding_size",
                     "rnd_output_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.intrinsic_torso not in ("mlp", "nature_cnn", "small_cnn"):
            raise ValueError(f"intrinsic_torso must be mlp, nature_cnn or small_cnn, not "
                             f"{self.intrinsic_torso!r}")
        if any(size < 1 for size in self.intrinsic_hidden):
            raise ValueError(f"intrinsic_hidden must be layer sizes >= 1, got "
                             f"{self.intrinsic_hidden}")


@flax.struct.dataclass
class NGUHParams(R2D2HParams):
    """Traced settings: R2D2's (`discount` is gamma_0, the exploitative policy's),
    and NGU's."""

    discount_min: jax.Array
    """gamma_{N-1}, the most exploratory policy's discount (Table 6: 0.99)."""
    intrinsic_beta: jax.Array
    """beta of the most exploratory policy; beta_j follows NGU's sigmoid family (Table 6: 0.3)."""
    retrace_lambda: jax.Array
    """Retrace's trace coefficient lambda (Table 6: 0.95)."""
    intrinsic_learning_rate: jax.Array
    """Adam's step size for the embedding and RND's predictor (Table 6: 5e-4)."""
    kernel_epsilon: jax.Array
    """Episodic kernel's epsilon (Algorithm 1; Table 6: 1e-4)."""
    cluster_distance: jax.Array
    """Normalised distances below this count as zero (Table 6: 0.008)."""
    pseudo_count: jax.Array
    """c in the similarity sqrt(sum K) + c (Table 6: 1e-3)."""
    max_similarity: jax.Array
    """A similarity above this gives no episodic reward (Table 6: 8)."""
    max_modulator: jax.Array
    """L, the lifelong modulator's upper clip (Table 6: 5)."""
    discount_mid: jax.Array
    """Agent57's gamma_1, the discount its family passes through (Agent57 appendix: 0.997)."""
    bandit_beta: jax.Array
    """Weight of the bandit's confidence bonus (Agent57, Table 3: 1)."""
    bandit_epsilon: jax.Array
    """Probability of a uniformly random policy index at an episode start (Agent57: 0.5)."""
    novelty_window: jax.Array
    """Samples the running statistics of novelty weigh, older ones fading: RND's errors (per env
    step) and each env's mean neighbour distance d_m^2 (per distance). Both drift as the
    networks learn; against all-time statistics every later state would look familiar."""
    obs_norm_steps: jax.Array
    """Env steps (over all envs) of a uniformly random policy that initialise RND's observation
    normalisation before any learning (Burda et al. 2019, sec. 2.4); meanwhile the lifelong
    modulator is held at 1 and the error statistics wait, since errors against a normaliser of
    a few observations say nothing about novelty."""

    @classmethod
    def create(cls, **values: Any) -> NGUHParams:
        return hparams_from_values(cls, DEFAULT_HPARAMS, values)


# Badia et al. 2020a, Table 6 (the R2D2 values it shares stay R2D2's). NGU gives
# no warm-up for RND's normaliser; RND's code steps a random agent 128 x 50 times
# in each env (`collect_random_statistics`), here for R2D2's 8 Atari envs.
DEFAULT_HPARAMS: dict[str, float] = dict(
    R2D2_DEFAULT_HPARAMS, discount=0.997, discount_min=0.99, intrinsic_beta=0.3,
    retrace_lambda=0.95, intrinsic_learning_rate=5e-4, kernel_epsilon=1e-4,
    cluster_distance=0.008, pseudo_count=1e-3, max_similarity=8.0, max_modulator=5.0,
    discount_mid=0.997, bandit_beta=1.0, bandit_epsilon=0.5, novelty_window=100_000,
    obs_norm_steps=128 * 50 * 8)


class NGUState(NamedTuple):
    """The learner's state. `params` holds what is trained (q, embedding, rnd);
    RND's fixed target and the running statistics sit beside it."""

    params: Any
    target_params: Any
    opt_state: Any
    rnd_target: Any
    obs_stats: intrinsic.RunningStats
    error_stats: intrinsic.RunningStats
    arm_returns: Any  # bandit.UCBState over all envs' episodes (meta_controller bandit), or ()
    replay: Any
    env_steps: jax.Array
    updates: jax.Array
    hparams: NGUHParams


class NGUActorState(NamedTuple):
    """An actor's state per env (leaves [E, ...])."""

    carry: Any  # core state before the current observation
    next_carry: Any  # after acting on it (set by `act`)
    prev_action: jax.Array  # int32
    prev_reward: jax.Array  # [E, 2]: the previous extrinsic and intrinsic reward
    reset: jax.Array  # bool: the current observation begins an episode
    policy: jax.Array  # int32 j, drawn at each episode start
    memory: intrinsic.EpisodicMemory
    intrinsic_reward: jax.Array  # r_i of the current observation (set by `act`)
    behaviour_prob: jax.Array  # mu(a_t | x_t) of the action taken (set by `act`)
    rnd_error: jax.Array  # RND's error on the current observation (set by `act`)
    episode_return: jax.Array  # the extrinsic return of the episode so far
    bandit: Any  # each env's bandit.UCBState (meta_controller bandit), or ()


def family_tables(hp: NGUHParams, num_policies: int, discount_family: str = "ngu"
                  ) -> tuple[jax.Array, jax.Array]:
    """(beta_j [N], gamma_j [N]) of the policy family (NGU and Agent57 appendices)."""
    betas = exploration.ngu_betas(num_policies, hp.intrinsic_beta)
    if discount_family == "agent57":
        return betas, exploration.agent57_discounts(num_policies, hp.discount, hp.discount_mid,
                                                    hp.discount_min)
    return betas, exploration.ngu_discounts(num_policies, hp.discount_min, hp.discount)


def make_ngu(config: NGUConfig, spec: EnvSpec, num_envs: int) -> Agent:
    """Builds NGU for `num_envs` lockstep environments of `spec`."""
    config.validate()
    if not spec.discrete:
        raise ValueError(f"NGU needs a discrete action space; {spec.name} has continuous "
                         f"actions")
    N, A, E = config.num_policies, spec.num_actions, num_envs
    q_network = make_network(config, spec)
    heads = ("extrinsic", "intrinsic") if config.split_values else ("mixed",)
    use_bandit = config.meta_controller == "bandit"
    torso = make_torso(config.intrinsic_torso, spec.obs_shape, config.intrinsic_hidden)
    embedding = InverseDynamics(A, torso, embedding_size=config.embedding_size)
    rnd = RNDNetwork(torso.clone(), output_size=config.rnd_output_size)
    obs_example = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    adam = lambda lr: optax.adam(lr, eps=1e-4)  # noqa: E731

    def q_inputs(prev_reward, policy):
        return dict(prev_reward=prev_reward, context=jax.nn.one_hot(policy, N))

    def init_q(key):
        """{head: params}: one network on the mixed reward, or Agent57's two."""
        T1 = (1, 1)
        init_one = lambda k: q_network.init(  # noqa: E731
            k, jnp.broadcast_to(obs_example, T1 + obs_example.shape), jnp.zeros(T1, jnp.int32),
            reset=jnp.ones(T1, bool), **q_inputs(jnp.zeros(T1 + (2,)), jnp.zeros(T1, jnp.int32)))
        return {h: init_one(k) for h, k in zip(heads, jax.random.split(key, len(heads)),
                                                strict=True)}

    def carry_for(params, n):
        inputs = q_inputs(jnp.zeros((1, n, 2)), jnp.zeros((1, n), jnp.int32))
        return {h: initial_carry(q_network, params[h], obs_example, n, **inputs) for h in heads}

    def unroll_q(params, obs, prev_action, prev_reward, reset, policy, carry, betas):
        """(Q acted on [T, B, A], {head: Q [T, B, A]}, carry) over inputs [T, B, ...]:
        Agent57 combines its heads as h(h^-1(Q_e) + beta_j h^-1(Q_i))."""
        out, new_carry = {}, {}
        for h in heads:
            out[h], new_carry[h] = q_network.apply(
                params[h], obs, prev_action, reset=reset, carry=carry[h],
                **q_inputs(prev_reward, policy))
        if not config.split_values:
            return out["mixed"], out, new_carry
        q = losses.agent57_q(out["extrinsic"], out["intrinsic"], betas[policy][..., None],
                             config.rescale_eps)
        return q, out, new_carry

    example_step = dict(
        obs=obs_example, action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
        intrinsic_reward=jnp.zeros(()), discount=jnp.zeros(()), mask=jnp.zeros(()),
        reset=jnp.zeros((), bool), final=jnp.zeros((), bool),
        prev_action=jnp.zeros((), jnp.int32), prev_reward=jnp.zeros((2,)),
        policy=jnp.zeros((), jnp.int32), behaviour_prob=jnp.zeros(()))
    carry_shapes = jax.eval_shape(lambda: carry_for(init_q(jax.random.PRNGKey(0)), E))
    buffer = make_sequence_buffer(
        example_step, jax.tree.map(lambda c: jnp.zeros(c.shape[1:], c.dtype), carry_shapes), E,
        config.replay_capacity, config.seq_len, config.period, config.batch_size)

    def replay_params(hp: NGUHParams) -> ReplayParams:
        return ReplayParams(discount=hp.discount, priority_alpha=hp.priority_alpha,
                            priority_beta=hp.priority_beta)

    def optimizers(hp: NGUHParams) -> dict[str, optax.GradientTransformation]:
        return dict(q=make_optimizer(hp), embedding=adam(hp.intrinsic_learning_rate),
                    rnd=adam(hp.intrinsic_learning_rate))

    def init(key, hp: NGUHParams) -> NGUState:
        q_key, emb_key, rnd_key, target_key = jax.random.split(key, 4)
        batch = obs_example[None]
        params = dict(q=init_q(q_key), embedding=embedding.init(emb_key, batch, batch),
                      rnd=rnd.init(rnd_key, batch))
        opts = optimizers(hp)
        arm_returns = (bandit.ucb_init(N, config.evaluator_window, beta=0.0, epsilon=0.0)
                       if use_bandit else ())
        return NGUState(
            params=params, target_params=params["q"],
            opt_state={name: opts[name].init(p) for name, p in params.items()},
            rnd_target=rnd.init(target_key, batch),
            obs_stats=intrinsic.running_stats_init(spec.obs_shape),
            error_stats=intrinsic.running_stats_init(), arm_returns=arm_returns,
            replay=buffer.init(), env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32), hparams=hp)

    def view(state: NGUState) -> ActorView:
        published = dict(state.params, rnd_target=state.rnd_target, obs_stats=state.obs_stats,
                         error_stats=state.error_stats, arm_returns=state.arm_returns)
        return ActorView(params=published, hparams=state.hparams, env_steps=state.env_steps)

    def rnd_errors(params, rnd_target, obs_stats, obs):
        x = intrinsic.normalize_observation(obs_stats, obs)
        return intrinsic.rnd_error(rnd.apply(params, x), rnd.apply(rnd_target, x))

    def actor_init(view: ActorView, n: int) -> NGUActorState:
        carry = carry_for(view.params["q"], n)
        memory = jax.vmap(lambda _: intrinsic.episodic_memory_init(
            config.memory_capacity, config.embedding_size))(jnp.arange(n))
        hp = view.hparams
        bandits = (jax.vmap(lambda _: bandit.ucb_init(
            N, config.bandit_window, beta=hp.bandit_beta, epsilon=hp.bandit_epsilon))(
            jnp.arange(n)) if use_bandit else ())
        zeros = jnp.zeros(n)
        return NGUActorState(carry=carry, next_carry=carry, prev_action=jnp.zeros(n, jnp.int32),
                             prev_reward=jnp.zeros((n, 2)), reset=jnp.ones(n, bool),
                             policy=jnp.zeros(n, jnp.int32), memory=memory,
                             intrinsic_reward=zeros, behaviour_prob=zeros, rnd_error=zeros,
                             episode_return=zeros, bandit=bandits)

    def choose_policies(view: ActorView, actor: NGUActorState, key, evaluation: bool):
        """Each env's j [n] for its current episode, chosen where one begins: by
        each env's bandit (Agent57) or uniformly (NGU); the evaluator follows j = 0
        (NGU) or the arm of the best recent return over all envs (Agent57, greedy in
        the arms)."""
        n = actor.reset.shape[0]
        if evaluation:
            drawn = jnp.full(n, bandit.greedy_arm(view.params["arm_returns"]) if use_bandit
                             else 0, jnp.int32)
        elif use_bandit:
            drawn = jax.vmap(bandit.ucb_select)(actor.bandit, jax.random.split(key, n))
        else:
            drawn = jax.random.randint(key, (n,), 0, N, jnp.int32)
        return jnp.where(actor.reset, drawn, actor.policy)

    def warming_up(view: ActorView) -> jax.Array:
        """Whether RND's observation normaliser is still being initialised."""
        return view.env_steps < view.hparams.obs_norm_steps

    def intrinsic_rewards(view: ActorView, memory, obs, hp: NGUHParams):
        """(r_i [n], memory, RND error [n]) of the observations `obs` [n, ...]."""
        p = view.params
        emb = embedding.apply(p["embedding"], obs, method="embed")
        step = functools.partial(
            intrinsic.episodic_memory_step, num_neighbors=config.num_neighbors,
            kernel_epsilon=hp.kernel_epsilon, cluster_distance=hp.cluster_distance,
            pseudo_count=hp.pseudo_count, max_similarity=hp.max_similarity,
            distance_window=hp.novelty_window)
        episodic, memory = jax.vmap(step)(memory, emb)
        error = rnd_errors(p["rnd"], p["rnd_target"], p["obs_stats"], obs)
        alpha = jnp.where(warming_up(view), 1.0,
                          intrinsic.lifelong_modulator(error, p["error_stats"]))
        if config.intrinsic_reward == "episodic":
            alpha = jnp.ones_like(alpha)
        elif config.intrinsic_reward == "lifelong":
            episodic = jnp.ones_like(episodic)
        return intrinsic.ngu_intrinsic_reward(episodic, alpha, hp.max_modulator), memory, error

    def make_act(evaluation: bool):
        def act(view: ActorView, actor: NGUActorState, obs, key):
            hp = view.hparams
            n = obs.shape[0]
            policy_key, act_key = jax.random.split(key)
            policy = choose_policies(view, actor, policy_key, evaluation)
            memory = intrinsic.episodic_memory_reset(actor.memory, actor.reset)
            r_i, memory, error = intrinsic_rewards(view, memory, obs, hp)
            betas, _ = family_tables(hp, N, config.discount_family)
            q, _, next_carry = unroll_q(view.params["q"], obs[None], actor.prev_action[None],
                                        actor.prev_reward[None], actor.reset[None],
                                        policy[None], actor.carry, betas)
            q = q[0]
            if evaluation:
                epsilons = hp.eval_epsilon
            else:  # RND's random agent while the normaliser warms up
                epsilons = jnp.where(warming_up(view), 1.0,
                                     exploration.apex_epsilons(n, hp.epsilon, hp.epsilon_alpha))
            action = exploration.epsilon_greedy(act_key, q, epsilons)
            probs = exploration.epsilon_greedy_probs(q, epsilons)
            mu = jnp.take_along_axis(probs, action[:, None], axis=-1)[:, 0]
            return action, actor._replace(next_carry=next_carry, policy=policy, memory=memory,
                                          intrinsic_reward=r_i, behaviour_prob=mu,
                                          rnd_error=error)

        return act

    def actor_observe(actor: NGUActorState, action, reward, done):
        """What the next step is fed; the zero state and no previous action or
        rewards where an episode ended."""
        zero = lambda x: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)),  # noqa: E731
                                   jnp.zeros_like(x), x)
        reward = reward.astype(jnp.float32)
        rewards = jnp.stack([reward, actor.intrinsic_reward], axis=-1)
        episode_return = actor.episode_return + reward
        bandits = actor.bandit
        if use_bandit:  # the episode's undiscounted extrinsic return rewards its arm
            updated = jax.vmap(bandit.ucb_update)(bandits, actor.policy, episode_return)
            bandits = jax.tree.map(
                lambda u, b: jnp.where(done.reshape(done.shape + (1,) * (u.ndim - 1)), u, b),
                updated, bandits)
        return actor._replace(carry=jax.tree.map(zero, actor.next_carry),
                              prev_action=zero(action.astype(jnp.int32)),
                              prev_reward=zero(rewards), reset=done,
                              episode_return=zero(episode_return), bandit=bandits)

    def observe(state: NGUState, steps: EnvSteps, actor: NGUActorState):
        """Stores each env's step with its intrinsic reward, policy index and
        behaviour probability, the final observation where an episode ended, and
        updates the running statistics RND reads."""
        ended = steps.terminated | steps.truncated
        action, reward = steps.action.astype(jnp.int32), steps.reward.astype(jnp.float32)
        no = jnp.zeros(E, bool)
        step = dict(obs=steps.obs, action=action, reward=reward,
                    intrinsic_reward=actor.intrinsic_reward,
                    discount=1.0 - steps.terminated.astype(jnp.float32), mask=jnp.ones(E),
                    reset=actor.reset, final=no, prev_action=actor.prev_action,
                    prev_reward=actor.prev_reward, policy=actor.policy,
                    behaviour_prob=actor.behaviour_prob)
        params = replay_params(state.hparams)
        replay = buffer.add(state.replay, step, actor.carry, params)
        zeros = jnp.zeros(E)
        final = dict(obs=steps.next_obs.astype(steps.obs.dtype), action=jnp.zeros_like(action),
                     reward=zeros, intrinsic_reward=zeros, discount=zeros, mask=zeros,
                     reset=no, final=jnp.ones(E, bool), prev_action=action,
                     prev_reward=jnp.stack([reward, actor.intrinsic_reward], axis=-1),
                     policy=actor.policy, behaviour_prob=zeros)
        replay = buffer.add(replay, final, actor.next_carry, params, active=ended)
        arm_returns = state.arm_returns
        if use_bandit:  # the evaluator's record: each ended episode's arm and return
            returns = actor.episode_return + reward

            def record(i, arms):
                new = bandit.ucb_update(arms, actor.policy[i], returns[i])
                return jax.tree.map(lambda n, o: jnp.where(ended[i], n, o), new, arms)

            arm_returns = jax.lax.fori_loop(0, E, record, arm_returns)
        return state._replace(
            replay=replay, env_steps=state.env_steps + steps.obs.shape[0],
            arm_returns=arm_returns,
            obs_stats=intrinsic.running_stats_update(state.obs_stats, steps.obs),
            error_stats=intrinsic.running_stats_update(
                state.error_stats, actor.rnd_error,
                mask=jnp.full(E, state.env_steps >= state.hparams.obs_norm_steps),
                max_count=state.hparams.novelty_window))

    def can_update(state: NGUState):
        return (buffer.can_sample(state.replay, state.hparams.learning_starts)
                & (state.env_steps >= state.hparams.obs_norm_steps))

    burn = config.burn_in

    def q_loss(q_params, target_params, steps, start_carry, weights, hp: NGUHParams):
        """Retrace on each step's policy (see the module docstring): one network on
        the mixed reward r_e + beta_j r_i, or Agent57's two, each on its own reward,
        with the target policy greedy in the combined values; `steps` time-major
        [seq_len, B, ...]."""
        betas, gammas = family_tables(hp, N, config.discount_family)

        def unroll(p, sl, carry):
            return unroll_q(p, steps["obs"][sl], steps["prev_action"][sl],
                            steps["prev_reward"][sl], steps["reset"][sl], steps["policy"][sl],
                            carry, betas)

        online_carry, target_carry = start_carry, start_carry
        if burn:
            head = slice(0, burn)
            online_carry = jax.lax.stop_gradient(unroll(q_params, head, start_carry)[2])
            target_carry = unroll(target_params, head, start_carry)[2]
        rest = slice(burn, None)
        q_online, online, _ = unroll(q_params, rest, online_carry)  # [trace + 1, B, A]
        _, target, _ = unroll(target_params, rest, target_carry)
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        now = lambda k: batch_major(steps[k][burn:-1])  # noqa: E731
        after = lambda k: batch_major(steps[k][burn + 1:])  # noqa: E731
        policy = now("policy")
        rewards = {"mixed": now("reward") + betas[policy] * now("intrinsic_reward"),
                   "extrinsic": now("reward"), "intrinsic": now("intrinsic_reward")}
        pi = exploration.epsilon_greedy_probs(jax.lax.stop_gradient(q_online[1:]), 0.0)
        lam = hp.retrace_lambda * (1.0 - after("final").astype(jnp.float32))
        loss, tds, priorities = 0.0, [], []
        for h in heads:
            through = h == "intrinsic" and not config.intrinsic_episodic
            discount = gammas[policy] * (1.0 if through else now("discount"))
            head_loss, td, priority = losses.retrace_loss(
                batch_major(online[h][:-1]), now("action"), rewards[h],
                discount, batch_major(target[h][1:]), after("action"),
                batch_major(pi), after("behaviour_prob"), lambda_=lam, eta=hp.priority_eta,
                mask_t=now("mask"), weights=weights, rescale_eps=config.rescale_eps)
            loss, tds, priorities = loss + head_loss, tds + [td], priorities + [priority]
        td_abs = sum(jnp.sum(jnp.abs(td)) for td in tds) / (
            len(heads) * jnp.maximum(jnp.sum(now("mask")), 1.0))
        # Agent57's two heads: a sequence's priority is the mean of theirs.
        return loss, (sum(priorities) / len(heads), jnp.mean(q_online), td_abs)

    def embedding_loss(params, steps):
        """Inverse dynamics on the consecutive pairs of the sequences that stay in
        one episode (an episode's final observation included), averaged over them."""
        valid = steps["mask"][:-1] * (1.0 - steps["reset"][1:].astype(jnp.float32))
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        logits = embedding.apply(params, flat(steps["obs"][:-1]), flat(steps["obs"][1:]))
        mean = intrinsic.inverse_dynamics_loss(logits, flat(steps["action"][:-1]), flat(valid))
        return mean * valid.size / jnp.maximum(jnp.sum(valid), 1.0)

    def rnd_loss(params, rnd_target, obs_stats, steps):
        seen = jnp.maximum(steps["mask"], steps["final"].astype(jnp.float32))
        flat_obs = steps["obs"].reshape((-1,) + steps["obs"].shape[2:])
        errors = rnd_errors(params, rnd_target, obs_stats, flat_obs)
        return jnp.sum(errors * seen.reshape(-1)) / jnp.maximum(jnp.sum(seen), 1.0)

    def update(state: NGUState, key):
        """One learner step on `batch_size` sequences: the Q-network, the embedding
        and RND's predictor; a masked no-op until `can_update`."""
        hp = state.hparams
        ready = can_update(state)
        sample_key, relabel_key = jax.random.split(key)
        steps, start_carry, indices, weights = buffer.sample(state.replay, sample_key,
                                                             replay_params(hp))
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)
        if config.relabel_policy:  # one index per sequence, for all its steps
            drawn = jax.random.randint(relabel_key, steps["policy"].shape[1:], 0, N, jnp.int32)
            q_steps = dict(steps, policy=jnp.broadcast_to(drawn, steps["policy"].shape))
        else:
            q_steps = steps
        (loss, (priority, q_mean, td_abs)), q_grads = jax.value_and_grad(q_loss, has_aux=True)(
            state.params["q"], state.target_params, q_steps, start_carry, weights, hp)
        emb_loss, emb_grads = jax.value_and_grad(embedding_loss)(state.params["embedding"],
                                                                 steps)
        pred_loss, rnd_grads = jax.value_and_grad(rnd_loss)(
            state.params["rnd"], state.rnd_target, state.obs_stats, steps)
        grads = dict(q=q_grads, embedding=emb_grads, rnd=rnd_grads)
        opts = optimizers(hp)
        params, opt_state = {}, {}
        for name, opt in opts.items():
            updates, opt_state[name] = opt.update(grads[name], state.opt_state[name],
                                                  state.params[name])
            params[name] = optax.apply_updates(state.params[name], updates)
        replay = buffer.set_priorities(state.replay, indices, priority, replay_params(hp),
                                       ready)
        metrics = {"loss": loss, "q_mean": q_mean, "td_abs": td_abs,
                   "grad_norm": optax.tree.norm(q_grads), "embedding_loss": emb_loss,
                   "rnd_loss": pred_loss}
        return finish_update(state, ready, params, params["q"], opt_state, replay, metrics)

    return Agent(init=init, view=view,
                 actor=Actor(init=actor_init, act=make_act(False), observe=actor_observe),
                 eval_actor=Actor(init=actor_init, act=make_act(True), observe=actor_observe),
                 observe=observe, update=update, can_update=can_update,
                 metric_names=("loss", "q_mean", "td_abs", "grad_norm", "embedding_loss",
                               "rnd_loss", "updated"))
