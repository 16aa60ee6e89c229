"""A synchronous EnvPool loop: host steps C++ envs, device runs the agent.

Each iteration: one jitted `act` on the batch of observations, one EnvPool
step (host), one jitted `observe` (the transitions cross to the device once),
and every `train_every` iterations one jitted training phase of
`updates_per_train` updates (`lax.scan`). The agent functions are the same as
on the on-device runner; only the loop differs. The high-throughput
asynchronous pipeline is a separate runner.

Evaluation uses separate EnvPool instances with the evaluation settings
(no episodic life, no reward clipping; `envs.envpool_env`), one episode per
env, capped at the env's `max_episode_steps`.

Resume: the agent state, RNG key and counters are checkpointed; EnvPool's C++
state cannot be, so a resumed run starts fresh episodes (not bit-exact, unlike
the on-device runner).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.runners.on_device import RunConfig


class EnvPoolDriver:
    """One member trained on EnvPool envs (see module docstring)."""

    def __init__(self, env_id: str, settings, member_hparams: list[dict], seeds: list[int],
                 env_kwargs: dict | None = None):
        from jaxrl57.envs.envpool_env import make_envpool

        if len(seeds) != 1:
            raise ValueError("the synchronous EnvPool loop trains one member")
        self.run: RunConfig = settings.run_config
        env_kwargs = env_kwargs or {}
        self.envs = make_envpool(env_id, self.run.num_envs, seeds[0], train=True, **env_kwargs)
        self.eval_envs = make_envpool(env_id, self.run.eval_episodes, seeds[0] + 1_000_003,
                                      train=False, **env_kwargs)
        family = settings.family
        self.agent = family.make(settings.agent_config, self.envs.spec, self.run.num_envs)
        self.metric_names = tuple(n for n in self.agent.metric_names if n != "updated")
        init_key, key = jax.random.split(jax.random.PRNGKey(seeds[0]))
        hp = family.hparams_cls.create(**member_hparams[0])
        self.state = {"agent": jax.jit(self.agent.init)(init_key, hp), "key": key,
                      "row": jnp.zeros((), jnp.int32)}
        # Only the actions leave the jitted call: returning the agent state as
        # well makes XLA copy it, replay included (259 ms a step for Atari).
        # DQN-family `act` leaves the state unchanged; recurrent agents keep
        # their actor state apart from the learner state.
        if self.agent.recurrent:
            # Recurrent actors change the state in `act`; donating it lets XLA
            # write the result into the input's buffers.
            self._act_state = jax.jit(self.agent.act, donate_argnums=0)
        else:
            self._act = jax.jit(lambda state, obs, key: self.agent.act(state, obs, key)[0])
        self._eval_actor = self.agent.evaluation_actor()
        self._eval_init = jax.jit(self._eval_actor.init, static_argnums=1)
        self._eval_act = jax.jit(self._eval_actor.act)
        self._eval_observe = jax.jit(self._eval_actor.observe)
        self._observe = jax.jit(self.agent.observe, donate_argnums=0)
        # One jitted update per call, looped from Python: a lax.scan over
        # updates carries the replay through a while loop, which XLA copied
        # (376 ms against 57 ms for one Nature-CNN update with a 10k replay).
        self._update = jax.jit(self.agent.update, donate_argnums=0)
        # The host skips the (masked, but still computed) updates of the warm-up.
        self._can_update = jax.jit(self.agent.can_update)
        self.obs = self.envs.reset()

    def run_row(self) -> list[dict]:
        run = self.run
        agent_state, key = self.state["agent"], self.state["key"]
        row = int(self.state["row"])
        metric_log = []  # device arrays; read once at the end of the row
        for i in range(run.iterations_per_row):
            key, act_key, train_key = jax.random.split(key, 3)
            if self.agent.recurrent:
                actions, agent_state = self._act_state(agent_state, self.obs, act_key)
            else:
                actions = self._act(agent_state, self.obs, act_key)
            actions = np.asarray(actions)
            out = self.envs.step(actions)
            agent_state = self._observe(agent_state, self.obs, actions, out.reward,
                                        out.terminated, out.truncated, out.final_obs)
            self.obs = out.obs
            if ((row * run.iterations_per_row + i) % run.train_every == 0
                    and bool(self._can_update(agent_state))):
                for update_key in jax.random.split(train_key, run.updates_per_train):
                    agent_state, metrics = self._update(agent_state, update_key)
                    metric_log.append(metrics)
        key, eval_key = jax.random.split(key)
        row += 1
        self.state = {"agent": agent_state, "key": key, "row": jnp.int32(row)}
        stats = self.envs.pop_episode_stats()
        is_eval_row = row % run.eval_every_rows == 0 or row == run.num_rows
        result = {
            "env_steps": row * run.steps_per_row,
            "updates": int(agent_state.updates),
            "episode_return": float(np.mean(stats.returns)) if len(stats.returns) else np.nan,
            "episode_length": float(np.mean(stats.lengths)) if len(stats.lengths) else np.nan,
            "episodes": len(stats.returns),
            "eval_return": self.evaluate(eval_key) if is_eval_row else np.nan,
        }
        if metric_log:
            logged = jax.device_get(metric_log)
            done = sum(float(m["updated"]) for m in logged)
            for k in self.metric_names:
                total = sum(float(m[k]) for m in logged)
                result[k] = total / done if done else np.nan
        else:
            result.update({k: np.nan for k in self.metric_names})
        return [result]

    def evaluate(self, key) -> float:
        """Mean return of the first episode of each eval env (unclipped rewards, whole
        game: the eval envs have no episodic life), capped at `max_episode_steps`."""
        envs = self.eval_envs
        obs = envs.reset()
        returns = np.zeros(envs.num_envs)
        alive = np.ones(envs.num_envs, bool)
        horizon = envs.spec.max_episode_steps
        if self.run.eval_max_steps > 0:
            horizon = min(horizon, self.run.eval_max_steps)
        agent_state = self.state["agent"]
        actor = self._eval_init(agent_state, envs.num_envs)
        for _ in range(horizon):
            key, act_key = jax.random.split(key)
            actions, actor = self._eval_act(agent_state, actor, obs, act_key)
            out = envs.step(np.asarray(actions))
            actor = self._eval_observe(actor, actions, out.reward,
                                       out.terminated | out.truncated)
            returns += np.where(alive, out.reward, 0.0)
            alive &= ~(out.terminated | out.truncated)
            obs = out.obs
            if not alive.any():
                break
        envs.pop_episode_stats()
        return float(np.mean(returns))

    def state_template(self):
        return self.state

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = jax.tree.map(jnp.asarray, state)
