"""The asynchronous EnvPool pipeline: an actor thread steps the envs while the learner updates.

The Sebulba design of Hessel et al. 2021 ("Podracer architectures for scalable
reinforcement learning", sec. 3.2) on one host: an actor thread acts on a batch of
observations (one jitted call), steps the C++ envs with the actions (EnvPool's own
threads do the stepping, the GIL is released) and puts the batch of transitions in a
bounded queue; the learner (the thread that calls `run_row`) takes batches from the
queue, writes them into replay with `agent.observe` and runs the updates they are due.
The two overlap: while the learner's update runs on the accelerator (JAX releases the
GIL while it executes), the actor acts and steps the next batches.

Composition. `ActorLoop` is the actor side (thread, parameter store, queue);
`PipelineDriver` is the learner side, built from the same `MemberAgent` (the agent's
jitted functions, the training phase, evaluation, the log row) as the synchronous loop
of `runners.envpool_loop`; it replaces that loop's act-and-step with the queue.

Ownership. The learner state holds the replay, so only the learner owns it. The actor
thread owns the actor state (per env: a recurrent agent's core state and previous
action and reward) and acts on a copy of `agent.view(learner state)` (params,
hyperparameters, env-step counter; no replay) that the learner publishes every
`actor_refresh` batches it consumes. Each batch carries the actor state `act`
returned with it, which the learner's `observe` stores what it needs from. The copy is
a new buffer (a jitted `jnp.copy`), so the learner can keep donating its state to
`update` while the actor still reads the old parameters. The agent's functions are
those of the other runners; only who calls them, and when, changes.

Policy lag, fixed. Sebulba's actors take whatever parameters are newest, which makes a
run depend on thread timing. Here the actor acts on env-step batch `t` with the
parameters published after the learner consumed batch `t - actor_lag` (rounded down to
a multiple of `actor_refresh`; the initial ones for `t < actor_lag`), waiting for them if
need be. The lag is then the same in every run, and a run is reproducible from its seed
like the synchronous loop's. `actor_lag = 1` leaves nothing to overlap (the actor would
wait for the learner's last update before every batch); `actor_lag = 2` (default) lets
the actor act and step batch `t` while the learner updates on batch `t - 1`. The epsilon
of epsilon-greedy reads the env-step counter of the same copy, so it lags by as much:
this is the policy lag of every actor-learner split (IMPALA, Espeholt et al. 2018;
Sebulba), nothing else of the agent's math changes.

Replay ratio. The learner counts the env-step batches it consumes, not wall time:
batch `i` (all `num_envs` envs stepped once) is observed, then, when
`i % train_every == 0` and the replay is warm, `updates_per_train` updates run, the
schedule of the synchronous loop (`runners.envpool_loop`). Updates per env step are
therefore exactly `updates_per_train / (train_every * num_envs)` however fast the actor
is; a fast actor waits on the bounded queue. Once `agent.can_update` has been true the
learner stops asking (it would wait on the device for every phase); a warm replay stays
warm, and `update` masks itself in any case.

EnvPool mode. The actor uses the adapter of `envs.envpool_env` unchanged: EnvPool in
sync mode with `batch_size == num_envs` (each `send`/`recv` steps every env once, and
the adapter's reset step after an episode end gives clean transitions with `final_obs`
and true episode statistics). Every batch therefore holds exactly one transition per
env, in env-id order, which is what the n-step window of `agent.observe` needs (it is
per env position). EnvPool's async mode (`batch_size < num_envs`) was not taken: its
`recv` returns whichever envs finished first, so feeding `observe` would need per-env
queues re-assembled into full batches, and fast envs can run ahead of slow ones without
bound (Atari resets cost up to 30 no-op frames); the overlap it buys (acting on one
half while the other steps) matters only when acting costs as much as stepping, while
what bounds training here is the learner (`benchmarks/envpool_pipeline.py`).

Host/device boundary: each observation crosses to the device once (`device_put` in the
actor); acting, and the learner's `observe`, use that device copy. Episode statistics
travel with the batch they ended in, so a row's statistics are those of the env steps
the row consumed.

Threads: an exception in the actor ends it and is raised again in the learner (as the
`__cause__` of a `RuntimeError`); an exception in the learner stops the actor. `close()`
stops and joins it; the thread is a daemon, so an interpreter exit never waits on it.

Resume: as for the synchronous loop, the agent state, RNG key and row are checkpointed
and a resumed run starts fresh episodes; batches the actor had queued but the learner
had not consumed are dropped (they were never counted as env steps).
"""

from __future__ import annotations

import queue
import threading

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.agents.base import Agent
from jaxrl57.envs.envpool_env import EpisodeStats
from jaxrl57.replay.base import EnvSteps
from jaxrl57.runners.config import EnvPoolConfig, RunConfig
from jaxrl57.runners.envpool_loop import EnvPoolRun, MemberAgent

_POLL_S = 0.05  # how often a blocked thread looks at the other thread's health


class _ParamStore:
    """The actor's parameters by version (learner batches consumed), shared by the threads."""

    def __init__(self, initial):
        self._cond = threading.Condition()
        self._views = {0: initial}

    def publish(self, version: int, view, keep_from: int) -> None:
        with self._cond:
            self._views[version] = view
            for v in [v for v in self._views if v < keep_from]:
                del self._views[v]
            self._cond.notify_all()

    def get(self, version: int, stop: threading.Event):
        """The view of `version`, waiting for it; None once `stop` is set."""
        with self._cond:
            while version not in self._views:
                if stop.is_set():
                    return None
                self._cond.wait(_POLL_S)
            return self._views[version]


class ActorError(RuntimeError):
    """The actor thread failed; the original exception is the `__cause__`."""


class ActorLoop:
    """The actor side: a thread that acts on the published views, steps `envs` and
    queues the batches (module docstring). `start(view, key)` begins from fresh
    episodes; `publish` hands it the learner's newer views; `next_batch` is the
    learner's end of the queue; `stop` ends the thread."""

    def __init__(self, parts: MemberAgent, envs, pool_config: EnvPoolConfig):
        self.parts, self.envs, self.pool_config = parts, envs, pool_config
        self._queue: queue.Queue = queue.Queue(maxsize=pool_config.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._params: _ParamStore | None = None  # the views, by version

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, view, key) -> None:
        self._stop.clear()
        self._error = None
        self._queue = queue.Queue(maxsize=self.pool_config.queue_size)
        self._params = _ParamStore(view)
        self._thread = threading.Thread(target=self._main, args=(key,),
                                        name="jaxrl57-actor", daemon=True)
        self._thread.start()

    def publish(self, version: int, view) -> None:
        """The view after the learner consumed `version` batches; the actor's next
        batches need it or later ones."""
        every = self.pool_config.actor_refresh
        oldest = max(version - self.pool_config.actor_lag, 0)
        self._params.publish(version, view, oldest // every * every)

    def _main(self, key) -> None:
        try:
            for item in self.batches(key):
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=_POLL_S)
                        break
                    except queue.Full:
                        pass
                if self._stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the learner, which raises it
            self._error = e

    def batches(self, key, follow_learner: bool = True, view=None):
        """The actor's loop as a generator (fresh episodes): one item per step of all
        envs, `((EnvSteps, actor state as `act` returned it), EpisodeStats)`, the
        arrays on the device. Acts on batch `t` with the view of learner batch
        `t - actor_lag` (waiting for it), or, without `follow_learner`, always with
        the first one (`view`, acting alone, as a benchmark does)."""
        p, envs = self.parts, self.envs
        if view is not None or self._params is None:
            self._params = _ParamStore(view)
        lag, every = self.pool_config.actor_lag, self.pool_config.actor_refresh
        obs = jax.device_put(p.by_member(envs.reset()))
        envs.pop_episode_stats()
        actor = p.actor_init(self._params.get(0, self._stop))
        t = 0
        while True:
            version = 0 if t < lag or not follow_learner else (t - lag) // every * every
            params = self._params.get(version, self._stop)
            if params is None:  # stopped while waiting for the learner
                return
            actions, actor = p.act_on_view(params, actor, obs, key, t)
            host_actions = np.asarray(actions)
            out = envs.step(host_actions.reshape((-1,) + host_actions.shape[2:]))
            m = p.by_member
            next_obs = jax.device_put(m(out.obs))
            # The adapter returns `obs` itself as `final_obs` when no env ended.
            final_obs = (next_obs if out.final_obs is out.obs
                         else jax.device_put(m(out.final_obs)))
            reward, terminated, truncated = jax.device_put(
                (m(out.reward), m(out.terminated), m(out.truncated)))
            steps = EnvSteps(obs, actions, reward, terminated, truncated, final_obs)
            yield (steps, actor), envs.pop_episode_stats()
            actor = p.actor_observe(actor, steps)
            obs = next_obs
            t += 1

    def next_batch(self):
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                alive = self._thread is not None and self._thread.is_alive()
                # Read after `alive`: the actor records its error before it ends.
                if self._error is not None:
                    raise ActorError(f"the actor thread failed: {self._error!r}") \
                        from self._error
                if not alive:
                    raise ActorError("the actor thread ended without a batch") from None

    def stop(self) -> None:
        """Stops the thread and waits for it; queued batches are dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None


class PipelineDriver(EnvPoolRun):
    """One member trained by the asynchronous actor/learner pipeline (module
    docstring): an `ActorLoop` composed with the learner step of `MemberAgent`.
    Same interface as `runners.envpool_loop.EnvPoolDriver`, plus `close()`."""

    def __init__(self, agent: Agent, envs, eval_envs, run: RunConfig,
                 pool_config: EnvPoolConfig, hparams, seeds: list[int]):
        if len(seeds) != 1:
            raise ValueError("the async pipeline trains one member; use pipeline=sync for "
                             "--seeds/--sweep")
        super().__init__(agent, envs, eval_envs, run, pool_config, hparams, seeds)
        self.actor = ActorLoop(self.parts, envs, pool_config)
        self._consumed = 0  # batches consumed since the actor started: the view's version
        self.updates_done = 0  # updates run by this driver (for tests and benchmarks)
        self.batches_consumed = 0

    def run_row(self) -> list[dict]:
        if not self.actor.running:
            # Apart from the learner's stream.
            key = jax.vmap(lambda k: jax.random.fold_in(k, 0x5EB))(self.state["key"])
            self.actor.start(self.parts.view_copy(self.state["agent"]), key)
            self._consumed = 0
        try:
            return self._learn_row()
        except BaseException:
            self.close()
            raise

    def _learn_row(self) -> list[dict]:
        p, run = self.parts, self.run
        learner, key = self.state["agent"], self.state["key"]
        row = int(self.state["row"])
        metric_log = []
        all_stats = []
        for i in range(run.iterations_per_row):
            (steps, actor), stats = self.actor.next_batch()
            all_stats.append(stats)
            key, train_key = p.split2(key)
            learner = p.learner_observe(learner, steps, actor)
            learner, done = p.learn(learner, row * run.iterations_per_row + i, train_key,
                                    metric_log)
            self.updates_done += done
            self.batches_consumed += 1
            self._consumed += 1
            if self._consumed % self.pool_config.actor_refresh == 0:
                self.actor.publish(self._consumed, p.view_copy(learner))
        key, eval_key = p.split2(key)
        row += 1
        self.state = {"agent": learner, "key": key, "row": jnp.int32(row)}
        stats = EpisodeStats(*(np.concatenate(parts) for parts in zip(*all_stats, strict=True)))
        return p.row_results(row, learner, stats, metric_log, eval_key)

    def start_episodes(self) -> None:
        # The actor's queued batches belong to the episodes under way: drop them.
        # The next row restarts the thread, which begins fresh episodes.
        self.close()

    def close(self) -> None:
        """Stops the actor thread and waits for it."""
        self.actor.stop()
