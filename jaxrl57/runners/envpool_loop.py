"""The EnvPool runners' shared core, and the synchronous loop (host envs, device agent).

`MemberAgent` holds the agent's functions for K members on one EnvPool batch,
jitted once: acting, observing, the training phase, evaluation and the log
row. Both EnvPool drivers are built on it: `EnvPoolDriver` (below) alternates
acting and learning in one thread, `runners.pipeline.PipelineDriver` runs the
actor in a thread of its own.

The synchronous loop. Each iteration: one jitted `act` on the batch of
observations, one EnvPool step (host), one jitted `observe` of learner and
actor (the transitions cross to the device once), and every `train_every`
iterations `updates_per_train` jitted updates. The agent functions are the
same as on the on-device runner; only the loop differs.

Sweeps (`--seeds K`, `--sweep`): the member axis folds into the env batch.
One EnvPool of K * M envs steps all members (member k owns envs
k*M .. k*M+M-1), and `act`, `observe` and `update` are `vmap`s over the
members' stacked states: one compiled program and one host loop for the whole
sweep, so K members cost far less than K runs one after another. The pool is
seeded with the first seed (EnvPool seeds env i with seed + i); each member's
agent is seeded with its own.

Evaluation uses separate EnvPool instances with the evaluation settings
(no episodic life, no reward clipping; `envs.envpool_env`), one episode per
env (`eval_episodes` per member), through `runners.evaluation`: on a CPU
backend one jitted program that steps the pool through EnvPool's XLA
interface, else (`eval_loop="python"`) the same episodes from a host loop.
`auto` also takes the host loop for a pool with 64-bit arrays (MuJoCo),
which the XLA interface passes only with `jax_enable_x64`
(`envs.envpool_xla`); asking for `xla` there is a ValueError.

Nothing here depends on the action space: actions are whatever the agent's
`act` returns (int32 [K, M] or float32 [K, M, D]), flattened to the pool's
batch and cast to the pool's action dtype by the adapter.

Resume: the learner states, RNG keys and counters are checkpointed;
EnvPool's C++ state cannot be, so a resumed run starts fresh episodes, with
fresh actor states (not bit-exact, unlike the on-device runner).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.agents.base import Agent
from jaxrl57.envs import envpool_xla
from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners import evaluation
from jaxrl57.runners.config import EnvPoolConfig, RunConfig
from jaxrl57.runners.devices import over_members
from jaxrl57.runners.driver import learner_tree, params_finite
from jaxrl57.runners.rows import log_row


class MemberAgent:
    """`agent`'s functions over K members of M envs each, jitted once.

    Learner states carry a leading member axis [K, ...], actor states and env
    data [K, M, ...]; RNG keys are [K, 2], one stream per member.
    """

    def __init__(self, agent: Agent, run: RunConfig, pool_config: EnvPoolConfig,
                 num_members: int, eval_envs):
        self.agent, self.run, self.pool_config = agent, run, pool_config
        self.num_members = K = num_members
        M = run.num_envs
        self.eval_envs = eval_envs
        self.metric_names = tuple(n for n in agent.metric_names if n != "updated")
        # `jax.vmap` over the members, or member 0 alone when K == 1 (cheaper).
        self.per_member = members = functools.partial(over_members, num_members=K)
        self.split2 = jax.jit(jax.vmap(jax.random.split, out_axes=1))  # [K,2] -> 2 x [K,2]
        split3 = jax.vmap(lambda k: jax.random.split(k, 3))
        self.init = jax.jit(jax.vmap(agent.init))
        # What actors read: the evaluation program's loop-invariant operand, and
        # the async actor's parameters. Jitted: applied eagerly, the member
        # slicing would copy the whole learner state.
        self.view = jax.jit(members(agent.view))
        # A copy, not a view, for an actor in another thread: the learner
        # donates its state to `update`.
        self.view_copy = jax.jit(lambda s: jax.tree.map(jnp.copy, members(agent.view)(s)))
        self.actor_init = jax.jit(members(lambda view: agent.actor.init(view, M)))

        def act(learner, actor, obs, key):
            # Only the actions and the actor's state leave the jitted call:
            # returning the learner state as well would make XLA copy it, replay
            # included, every step.
            keys = split3(key)
            actions, actor = members(
                lambda s, a, o, k: agent.actor.act(agent.view(s), a, o, k))(
                    learner, actor, obs, keys[:, 1])
            return actions, actor, keys[:, 0], keys[:, 2]

        def act_on_view(view, actor, obs, key, t):
            return members(lambda v, a, o, k: agent.actor.act(v, a, o, jax.random.fold_in(k, t)))(
                view, actor, obs, key)

        self.act = jax.jit(act, donate_argnums=1)
        self.act_on_view = jax.jit(act_on_view)

        def learner_observe(learner, steps, actor):
            return members(agent.observe)(learner, steps, actor)

        def actor_observe(actor, steps):
            return members(agent.actor.observe)(actor, steps.action, steps.reward,
                                                steps.terminated | steps.truncated)

        self.learner_observe = jax.jit(learner_observe, donate_argnums=0)
        self.actor_observe = jax.jit(actor_observe)
        self.observe = jax.jit(
            lambda learner, actor, steps: (learner_observe(learner, steps, actor),
                                           actor_observe(actor, steps)),
            donate_argnums=(0, 1))
        # One jitted update per call, looped from Python (the default), or a
        # phase's updates as one `lax.scan` (`scan_updates`). XLA:CPU runs
        # convolutions inside a while loop far slower than outside one
        # (jax-ml/jax#12868), so on a CPU the scan is unrolled into straight-line
        # code; accelerators keep the loop.
        self.update = jax.jit(lambda state, keys: members(agent.update)(state, keys),
                               donate_argnums=0)
        self._split_updates = jax.jit(
            jax.vmap(lambda k: jax.random.split(k, run.updates_per_train), out_axes=1))
        unroll = jax.default_backend() == "cpu"
        self._update_scan = jax.jit(
            lambda state, keys: jax.lax.scan(members(agent.update), state, keys, unroll=unroll),
            donate_argnums=0)
        # The host skips the (masked, but still computed) updates of the warm-up.
        # Replay only grows, so once warm it stays warm: asked until then only,
        # which spares a device-to-host sync per training phase afterwards.
        self._can_update = jax.jit(lambda state: jnp.any(members(agent.can_update)(state)))
        self._warm = False
        eval_actor = evaluation.member_actor(agent, members)
        self._eval_actor = eval_actor
        self._eval_actor_jit = evaluation.MemberActor(
            init=jax.jit(eval_actor.init, static_argnums=1), act=jax.jit(eval_actor.act),
            observe=jax.jit(eval_actor.observe))
        self._eval_program = None  # the XLA-interface evaluation, built on first use
        self.eval_in_xla = self._eval_in_xla(pool_config.eval_loop, eval_envs.pool)

    @staticmethod
    def _eval_in_xla(loop: str, pool) -> bool:
        """Whether evaluation runs as one XLA program (`evaluate`); ValueError for
        `eval_loop=xla` on a pool the XLA interface cannot take."""
        supported = envpool_xla.xla_supported(pool)
        if loop == "xla" and not supported:
            raise ValueError(f"eval_loop=xla: EnvPool's XLA interface needs jax_enable_x64 for "
                             f"this env's 64-bit arrays "
                             f"({', '.join(envpool_xla.wide_arrays(pool))}); use "
                             f"eval_loop=python or auto")
        return loop == "xla" or (loop == "auto" and supported
                                 and jax.default_backend() == "cpu")

    def by_member(self, x):
        """[K * n, ...] host array -> [K, n, ...]."""
        return x.reshape((self.num_members, -1) + x.shape[1:])

    def forget_warm(self) -> None:
        """After a new learner state (a restored checkpoint): ask `can_update` again."""
        self._warm = False

    def learn(self, learner, batch_index: int, train_key, metric_log: list):
        """The learner's part after env-batch `batch_index` of the run was observed:
        every `train_every` batches, once the replay is warm, `updates_per_train`
        updates of every member, whose metrics (device arrays, [K] or [updates,
        K]) are appended to `metric_log`. Returns (learner, updates run)."""
        if batch_index % self.run.train_every or not self._is_warm(learner):
            return learner, 0
        keys = self._split_updates(train_key)  # [updates, K, 2]
        if self.pool_config.scan_updates:
            learner, metrics = self._update_scan(learner, keys)
            metric_log.append(metrics)
        else:
            for update_keys in keys:
                learner, metrics = self.update(learner, update_keys)
                metric_log.append(metrics)
        return learner, self.run.updates_per_train

    def _is_warm(self, learner) -> bool:
        if not self._warm:
            self._warm = bool(self._can_update(learner))
        return self._warm

    def evaluate(self, learner, key) -> np.ndarray:
        """Per member [K], the mean return of the first episode of each of its eval
        envs (`runners.evaluation`): one XLA program (`eval_loop` xla, or auto on
        a CPU backend with a pool the XLA interface takes), else the host loop."""
        horizon = evaluation.eval_horizon(self.eval_envs.spec.max_episode_steps,
                                          self.run.eval_max_steps)
        view = self.view(learner)
        if self.eval_in_xla:
            if self._eval_program is None:
                self._eval_program = evaluation.make_xla_evaluate(
                    self.eval_envs.pool, self._eval_actor, self.split2, self.num_members,
                    self.run.eval_episodes, horizon)
            return self._eval_program(view, key)
        return evaluation.host_evaluate(self.eval_envs, self._eval_actor_jit, view, key,
                                        self.split2, self.num_members, horizon)

    def row_results(self, row: int, learner, stats, metric_log: list, eval_key) -> list[dict]:
        """The K rows of the log after row `row`: the episodes of `stats` by member
        (env ids), the mean of the logged update metrics, an evaluation if due."""
        run, K = self.run, self.num_members
        member_of_episode = stats.env_ids // run.num_envs
        is_eval_row = row % self.pool_config.eval_every_rows == 0 or row == run.num_rows
        eval_returns = self.evaluate(learner, eval_key) if is_eval_row else np.full(K, np.nan)
        updates = np.asarray(learner.updates)
        logged = jax.device_get(metric_log)
        results = []
        for m in range(K):
            mine = member_of_episode == m
            returns, lengths = stats.returns[mine], stats.lengths[mine]
            metric_sums = {k: sum(float(np.sum(lg[k][..., m])) for lg in logged)
                           for k in self.metric_names}
            values = log_row(
                np, env_steps=row * run.steps_per_row, updates=updates[m],
                return_sum=np.sum(returns), length_sum=np.sum(lengths),
                episodes=len(returns), eval_return=eval_returns[m], metric_sums=metric_sums,
                updates_done=sum(float(np.sum(lg["updated"][..., m])) for lg in logged))
            results.append({k: int(v) if k in ("env_steps", "updates", "episodes") else float(v)
                            for k, v in values.items()})
        return results

    def all_finite(self, learner) -> np.ndarray:
        """[K] bool: params, target params and optimizer state of each member are finite."""
        return np.asarray(params_finite(learner_tree(learner)))


class EnvPoolRun:
    """What both EnvPool drivers are: K members' agent functions (`parts`) and the
    checkpointed state of the run (`state`: learner states, RNG keys, rows done),
    with the driver protocol of `runners.driver` around them. The loops that
    advance it differ: this module's `EnvPoolDriver`, `runners.pipeline`'s
    `PipelineDriver`. `envs` holds K * num_envs training envs, `eval_envs` K *
    eval_episodes evaluation envs, `hparams` the members' stacked traced
    hyperparameters."""

    def __init__(self, agent: Agent, envs, eval_envs, run: RunConfig,
                 pool_config: EnvPoolConfig, hparams, seeds: list[int]):
        self.agent, self.run, self.pool_config = agent, run, pool_config
        self.envs, self.eval_envs = envs, eval_envs
        self.num_members = len(seeds)
        self.parts = MemberAgent(agent, run, pool_config, self.num_members, eval_envs)
        self.metric_names = self.parts.metric_names
        keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s)))(
            jnp.asarray(seeds, jnp.uint32))
        self.state = {"agent": self.parts.init(keys[:, 0], jax.tree.map(jnp.asarray, hparams)),
                      "key": keys[:, 1], "row": jnp.zeros((), jnp.int32)}

    def start_episodes(self) -> None:
        """Drops the episodes under way; the next row starts fresh ones."""
        raise NotImplementedError

    def evaluate(self, key) -> np.ndarray:
        return self.parts.evaluate(self.state["agent"], key)

    def all_finite(self) -> np.ndarray:
        return self.parts.all_finite(self.state["agent"])

    def state_template(self):
        return self.state

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        """A restored checkpoint. EnvPool's C++ state cannot be saved, so the run
        goes on with fresh episodes."""
        self.state = jax.tree.map(jnp.asarray, state)
        self.parts.forget_warm()
        self.start_episodes()


class EnvPoolDriver(EnvPoolRun):
    """K members trained on one EnvPool batch by the synchronous loop (module
    docstring)."""

    def __init__(self, agent: Agent, envs, eval_envs, run: RunConfig,
                 pool_config: EnvPoolConfig, hparams, seeds: list[int]):
        super().__init__(agent, envs, eval_envs, run, pool_config, hparams, seeds)
        self.start_episodes()

    def start_episodes(self) -> None:
        # The actors' state is not checkpointed: it belongs to the episodes under way.
        self.actor = self.parts.actor_init(self.parts.view(self.state["agent"]))
        self.obs = self.envs.reset()
        self.envs.pop_episode_stats()

    def run_row(self) -> list[dict]:
        p, run = self.parts, self.run
        learner, actor, key = self.state["agent"], self.actor, self.state["key"]
        row = int(self.state["row"])
        metric_log = []  # device arrays; read once at the end of the row
        for i in range(run.iterations_per_row):
            obs = p.by_member(self.obs)
            actions, actor, key, train_key = p.act(learner, actor, obs, key)
            actions = np.asarray(actions)
            out = self.envs.step(actions.reshape((-1,) + actions.shape[2:]))
            steps = EnvSteps(obs, actions, p.by_member(out.reward), p.by_member(out.terminated),
                             p.by_member(out.truncated), p.by_member(out.final_obs))
            learner, actor = p.observe(learner, actor, steps)
            self.obs = out.obs
            learner, _ = p.learn(learner, row * run.iterations_per_row + i, train_key,
                                 metric_log)
        key, eval_key = p.split2(key)
        row += 1
        self.state = {"agent": learner, "key": key, "row": jnp.int32(row)}
        self.actor = actor
        return p.row_results(row, learner, self.envs.pop_episode_stats(), metric_log, eval_key)
