"""A synchronous EnvPool loop: host steps C++ envs, device runs the agent.

Each iteration: one jitted `act` on the batch of observations, one EnvPool
step (host), one jitted `observe` (the transitions cross to the device once),
and every `train_every` iterations `updates_per_train` jitted updates. The
agent functions are the same as on the on-device runner; only the loop
differs. The high-throughput asynchronous pipeline is a separate runner.

Sweeps (`--seeds K`, `--sweep`): the member axis folds into the env batch.
One EnvPool of K * M envs steps all members (member k owns envs
k*M .. k*M+M-1), and `act`, `observe` and `update` are `vmap`s over the
members' stacked agent states: one compiled program and one host loop for
the whole sweep, so K members cost far less than K runs one after another.
The pool is seeded with the first seed (EnvPool seeds env i with seed + i);
each member's agent is seeded with its own.

Evaluation uses separate EnvPool instances with the evaluation settings
(no episodic life, no reward clipping; `envs.envpool_env`), one episode per
env (`eval_episodes` per member), through `runners.evaluation`: on a CPU
backend one jitted program that steps the pool through EnvPool's XLA
interface, else (`eval_loop="python"`) the same episodes from a host loop.

Resume: the learner states, RNG keys and counters are checkpointed;
EnvPool's C++ state cannot be, so a resumed run starts fresh episodes, with
fresh actor states (not bit-exact, unlike the on-device runner).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners import evaluation
from jaxrl57.runners.config import EnvPoolConfig, RunConfig
from jaxrl57.runners.devices import over_members
from jaxrl57.runners.driver import learner_tree, params_finite, stack_hparams


class EnvPoolDriver:
    """K members trained on one EnvPool batch (see the module docstring)."""

    def __init__(self, env_id: str, settings, member_hparams: list[dict], seeds: list[int],
                 env_kwargs: dict | None = None):
        from jaxrl57.envs.envpool_env import make_envpool

        self.run: RunConfig = settings.run_config
        self.pool_config: EnvPoolConfig = settings.envpool
        self.num_members = K = len(seeds)
        M = self.run.num_envs
        env_kwargs = env_kwargs or {}
        # The agent family's training settings (lost life as episode end, reward
        # clipping: `configs`), under the user's --env-arg.
        train_env = {**getattr(settings, "train_env", {}), **env_kwargs}
        self.envs = make_envpool(env_id, K * M, seeds[0], train=True, **train_env)
        self.eval_envs = make_envpool(env_id, K * self.run.eval_episodes, seeds[0] + 1_000_003,
                                      train=False, **env_kwargs)
        family = settings.family
        self.agent = agent = family.make(settings.agent_config, self.envs.spec, M)
        self.metric_names = tuple(n for n in agent.metric_names if n != "updated")
        keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s)))(
            jnp.asarray(seeds, jnp.uint32))
        hp = jax.tree.map(jnp.asarray, stack_hparams(member_hparams, family.hparams_cls))
        self.state = {"agent": jax.jit(jax.vmap(agent.init))(keys[:, 0], hp),
                      "key": keys[:, 1], "row": jnp.zeros((), jnp.int32)}
        # The actors' state is not checkpointed: it belongs to the episodes under
        # way, and a resumed run starts fresh ones.
        split3 = jax.vmap(lambda k: jax.random.split(k, 3))
        # `jax.vmap` over the members, or member 0 alone when K == 1 (cheaper).
        self._per_member = members = functools.partial(over_members, num_members=K)
        # What actors read: the evaluation program's loop-invariant operand, and
        # the async actor's parameters. Jitted: applied eagerly, the member
        # slicing would copy the whole learner state.
        self._view = jax.jit(members(agent.view))
        self._actor_init = jax.jit(members(lambda view: agent.actor.init(view, M)))
        self.actor = self._actor_init(self._view(self.state["agent"]))

        def act(learner, actor, obs, key):
            # Only the actions and the actor's state leave the jitted call:
            # returning the learner state as well would make XLA copy it, replay
            # included, every step.
            keys = split3(key)
            actions, actor = members(
                lambda l, a, o, k: agent.actor.act(agent.view(l), a, o, k))(
                    learner, actor, obs, keys[:, 1])
            return actions, actor, keys[:, 0], keys[:, 2]

        self._act = jax.jit(act, donate_argnums=1)
        self._eval_actor = evaluation.member_actor(agent, members)
        actor = self._eval_actor
        self._eval_actor_jit = evaluation.MemberActor(
            init=jax.jit(actor.init, static_argnums=1), act=jax.jit(actor.act),
            observe=jax.jit(actor.observe))
        # The XLA-interface evaluation program, built on first use.
        self._eval_program = None

        def learner_observe(learner, steps, actor):
            return members(agent.observe)(learner, steps, actor)

        def actor_observe(actor, steps):
            return members(agent.actor.observe)(actor, steps.action, steps.reward,
                                                steps.terminated | steps.truncated)

        def observe(learner, actor, steps):
            return learner_observe(learner, steps, actor), actor_observe(actor, steps)

        self._learner_observe = jax.jit(learner_observe, donate_argnums=0)
        self._actor_observe = jax.jit(actor_observe)
        self._observe = jax.jit(observe, donate_argnums=(0, 1))
        # One jitted update per call, looped from Python (the default), or a
        # phase's updates as one `lax.scan` (`scan_updates`). XLA:CPU runs
        # convolutions inside a while loop far slower than outside one
        # (jax-ml/jax#12868), so on a CPU the scan is unrolled into straight-line
        # code; accelerators keep the loop.
        self._update = jax.jit(
            lambda state, keys: members(agent.update)(state, keys), donate_argnums=0)
        self._split_updates = jax.jit(
            jax.vmap(lambda k: jax.random.split(k, self.run.updates_per_train), out_axes=1))
        unroll = jax.default_backend() == "cpu"
        self._update_scan = jax.jit(
            lambda state, keys: jax.lax.scan(members(agent.update), state, keys,
                                             unroll=unroll),
            donate_argnums=0)
        # The host skips the (masked, but still computed) updates of the warm-up.
        # Replay only grows, so once warm it stays warm: asked until then only,
        # which spares a device-to-host sync per training phase afterwards.
        self._can_update = jax.jit(lambda state: jnp.any(members(agent.can_update)(state)))
        self._warm = False
        self._split2 = jax.jit(jax.vmap(jax.random.split, out_axes=1))  # [K,2] -> 2 x [K,2]
        self.obs = self.envs.reset()

    def _is_warm(self, agent_state) -> bool:
        """Whether any member's replay holds enough to update (cached once true)."""
        if not self._warm:
            self._warm = bool(self._can_update(agent_state))
        return self._warm

    def _train_phase(self, agent_state, train_key, metric_log: list):
        """`updates_per_train` updates of every member; their metrics (device
        arrays, [K] or [updates, K]) are appended to `metric_log`."""
        keys = self._split_updates(train_key)  # [updates, K, 2]
        if self.pool_config.scan_updates:
            agent_state, metrics = self._update_scan(agent_state, keys)
            metric_log.append(metrics)
            return agent_state
        for update_keys in keys:
            agent_state, metrics = self._update(agent_state, update_keys)
            metric_log.append(metrics)
        return agent_state

    def _members(self, x):
        """[K * n, ...] host array -> [K, n, ...]."""
        return x.reshape((self.num_members, -1) + x.shape[1:])

    def run_row(self) -> list[dict]:
        run = self.run
        agent_state, actor, key = self.state["agent"], self.actor, self.state["key"]
        row = int(self.state["row"])
        metric_log = []  # device arrays; read once at the end of the row
        for i in range(run.iterations_per_row):
            obs = self._members(self.obs)
            actions, actor, key, train_key = self._act(agent_state, actor, obs, key)
            actions = np.asarray(actions)
            out = self.envs.step(actions.reshape((-1,) + actions.shape[2:]))
            m = self._members
            steps = EnvSteps(obs, actions, m(out.reward), m(out.terminated), m(out.truncated),
                             m(out.final_obs))
            agent_state, actor = self._observe(agent_state, actor, steps)
            self.obs = out.obs
            if (row * run.iterations_per_row + i) % run.train_every == 0 and self._is_warm(
                    agent_state):
                agent_state = self._train_phase(agent_state, train_key, metric_log)
        key, eval_key = self._split2(key)
        row += 1
        self.state = {"agent": agent_state, "key": key, "row": jnp.int32(row)}
        self.actor = actor
        return self._row_results(row, self.envs.pop_episode_stats(), metric_log, eval_key)

    def _row_results(self, row: int, stats, metric_log: list, eval_key) -> list[dict]:
        """The K rows of the log after row `row`: the episodes of `stats` by member
        (env ids), the mean of the logged update metrics, an evaluation if due."""
        run, K = self.run, self.num_members
        agent_state = self.state["agent"]
        member_of_episode = stats.env_ids // run.num_envs
        is_eval_row = row % self.pool_config.eval_every_rows == 0 or row == run.num_rows
        eval_returns = self.evaluate(eval_key) if is_eval_row else np.full(K, np.nan)
        updates = np.asarray(agent_state.updates)
        logged = jax.device_get(metric_log)
        results = []
        for m in range(K):
            mine = member_of_episode == m
            returns, lengths = stats.returns[mine], stats.lengths[mine]
            result = {
                "env_steps": row * run.steps_per_row,
                "updates": int(updates[m]),
                "episode_return": float(np.mean(returns)) if len(returns) else np.nan,
                "episode_length": float(np.mean(lengths)) if len(lengths) else np.nan,
                "episodes": int(len(returns)),
                "eval_return": float(eval_returns[m]),
            }
            done = sum(float(np.sum(lg["updated"][..., m])) for lg in logged)
            for k in self.metric_names:
                total = sum(float(np.sum(lg[k][..., m])) for lg in logged)
                result[k] = total / done if done else np.nan
            results.append(result)
        return results

    def evaluate(self, key) -> np.ndarray:
        """Per member [K], the mean return of the first episode of each of its eval
        envs (`runners.evaluation`): one XLA program on a CPU backend
        (`eval_loop` auto or xla), else the host loop."""
        horizon = evaluation.eval_horizon(self.eval_envs.spec.max_episode_steps,
                                          self.run.eval_max_steps)
        view = self._view(self.state["agent"])
        loop = self.pool_config.eval_loop
        if loop == "xla" or (loop == "auto" and jax.default_backend() == "cpu"):
            if self._eval_program is None:
                self._eval_program = evaluation.make_xla_evaluate(
                    self.eval_envs.pool, self._eval_actor, self._split2, self.num_members,
                    self.run.eval_episodes, horizon)
            return self._eval_program(view, key)
        return evaluation.host_evaluate(self.eval_envs, self._eval_actor_jit, view, key,
                                        self._split2, self.num_members, horizon)

    def all_finite(self) -> np.ndarray:
        """[K] bool: params, target params and optimizer state of each member are finite."""
        return np.asarray(params_finite(learner_tree(self.state["agent"])))

    def state_template(self):
        return self.state

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = jax.tree.map(jnp.asarray, state)
        self.actor = self._actor_init(self._view(self.state["agent"]))
        self._warm = False
