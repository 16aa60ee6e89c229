"""EnvPool's XLA interface (`jaxrl57.envs.envpool_xla`) and the evaluation built on it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import configs

pytest.importorskip("envpool")
pytestmark = [pytest.mark.envpool,
              pytest.mark.filterwarnings("ignore:.*precision lowered by casting")]

from jaxrl57.build import make_driver  # noqa: E402
from jaxrl57.envs import envpool_xla  # noqa: E402
from jaxrl57.envs.envpool_env import make_envpool  # noqa: E402
from jaxrl57.runners.evaluation import first_episode_returns  # noqa: E402


def _host_first_episodes(env_id, num_envs, seed, policy, horizon, **kw):
    """Reference: the adapter's host loop, counting each env's first episode."""
    envs = make_envpool(env_id, num_envs, seed, train=False, **kw)
    obs = envs.reset()
    returns, lengths = np.zeros(num_envs), np.zeros(num_envs, np.int64)
    alive = np.ones(num_envs, bool)
    for t in range(horizon):
        out = envs.step(policy(obs, t))
        returns += np.where(alive, out.reward, 0.0)
        lengths += alive
        alive &= ~(out.terminated | out.truncated)
        obs = out.obs
        if not alive.any():
            break
    envs.close()
    return returns, lengths


def _xla_first_episodes(env_id, num_envs, seed, policy, horizon, **kw):
    envs = make_envpool(env_id, num_envs, seed, train=False, **kw)
    fns = envpool_xla.xla_functions(envs.pool)

    def act(t, obs, key):
        return policy(obs, t), t + 1, key

    @jax.jit
    def program(handle):
        return first_episode_returns(fns, handle, act, None, jnp.int32(0),
                                     jax.random.PRNGKey(0), horizon)

    envpool_xla.reset(envs.pool)
    _, returns, lengths = program(fns.handle)
    # The program left the pool idle: it can be looped again from a reset.
    envpool_xla.reset(envs.pool)
    _, again, _ = program(fns.handle)
    envs.close()
    return np.asarray(returns), np.asarray(lengths), np.asarray(again)


def test_first_episode_returns_match_the_host_adapter_loop():
    # A policy that depends on the observation and the time step: pole angle
    # sign, flipped every 7 steps, so episodes end at different times per env.
    def policy(obs, t):
        flip = (t // 7) % 2
        return ((obs[:, 2] > 0).astype(jnp.int32) + flip) % 2

    def host_policy(obs, t):
        return np.asarray(policy(jnp.asarray(obs), t))

    want_r, want_len = _host_first_episodes("CartPole-v1", 5, 3, host_policy, 500)
    got_r, got_len, again = _xla_first_episodes("CartPole-v1", 5, 3, policy, 500)
    np.testing.assert_array_equal(got_len, want_len)
    np.testing.assert_allclose(got_r, want_r)
    assert len(set(want_len.tolist())) > 1  # the envs ended at different steps
    assert np.all(again > 0)


def test_horizon_caps_the_episodes():
    def still(obs, t):
        return jnp.zeros(obs.shape[0], jnp.int32)

    got_r, got_len, _ = _xla_first_episodes("Pong-v5", 2, 0, still, 40)
    np.testing.assert_array_equal(got_len, [40, 40])
    assert got_r.dtype == np.float32


def _eval_driver(agent, env_id, seeds, loop, **extra):
    base = {"num_envs": "4", "eval_episodes": "3", "num_rows": "2", "eval_loop": loop,
            "replay_capacity": "2000", "learning_starts": "500", "hidden_sizes": "16",
            **extra}
    s = configs.resolve(agent, env_id, base, steps=2000)
    return make_driver(env_id, s, [s.hparams] * len(seeds), seeds)


@pytest.mark.parametrize("agent,env_id,seeds,extra", [
    ("dqn", "CartPole-v1", [0, 1], {}),
    ("r2d2", "CartPole-v1", [0], {"burn_in": "2", "trace_length": "5", "period": "4"}),
    ("dqn", "Breakout-v5", [0], {"eval_max_steps": "300", "eval_epsilon": "0.2",
                                 "hidden_sizes": "512"}),
])
def test_xla_evaluation_plays_the_host_loops_episodes(agent, env_id, seeds, extra):
    """Same keys, same actions, same episodes: on fresh pools the first evaluation
    returns what the host loop returns, per member (recurrent actors included)."""
    key = jax.random.split(jax.random.PRNGKey(5), len(seeds))
    host = _eval_driver(agent, env_id, seeds, "python", **extra).evaluate(key)
    xla = _eval_driver(agent, env_id, seeds, "xla", **extra).evaluate(key)
    assert xla.shape == host.shape == (len(seeds),)
    assert np.all(host > 0)  # points were scored: a comparison of zeros proves little
    np.testing.assert_allclose(xla, host, rtol=1e-6)


def test_eval_loop_is_validated():
    with pytest.raises(configs.ConfigError, match="eval_loop"):
        configs.resolve("dqn", "CartPole-v1", {"eval_loop": "gpu"}, steps=1000)


def _pole_policy(obs):
    return (obs[:, 2] > 0).astype(jnp.int32)


def _run_batches(num_envs, batch_size, num_batches):
    import envpool

    pool = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=num_envs,
                        batch_size=batch_size, num_threads=2, seed=11)
    fns = envpool_xla.xla_functions(pool)
    assert (fns.num_envs, fns.batch_size) == (num_envs, batch_size)

    def act(count, obs, env_id, key):
        return _pole_policy(obs), count + obs.shape[0], key

    @jax.jit
    def program(handle):
        return envpool_xla.run_batches(fns, handle, act, jnp.int32(0), jax.random.PRNGKey(0),
                                       num_batches)

    outs = []
    for _ in range(2):  # the pool is left idle: a reset and a second program run
        envpool_xla.reset(pool)
        _, acted, _, reward_sum, steps = program(fns.handle)
        outs.append((int(acted), np.asarray(reward_sum), np.asarray(steps)))
    pool.close()
    return outs


def test_run_batches_sync_equals_stepping_the_pool_from_python():
    import envpool

    outs = _run_batches(4, 4, 60)
    pool = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=4, num_threads=2,
                        seed=11)
    obs, _ = pool.reset()
    want = np.zeros(4)
    for _ in range(60):
        obs, reward, *_ = pool.step(np.asarray(_pole_policy(jnp.asarray(obs))))
        want += reward
    acted, reward_sum, steps = outs[0]
    assert acted == 240
    np.testing.assert_array_equal(steps, [60] * 4)
    np.testing.assert_allclose(reward_sum, want)


def test_run_batches_async_acts_on_whichever_envs_are_ready():
    for acted, reward_sum, steps in _run_batches(8, 4, 50):
        assert acted == 200 and steps.sum() == 200  # exactly the batches asked for
        assert np.all(steps > 0)  # every env came back and was acted on
        # CartPole pays 1 a step; reset steps pay 0; the drain adds the last steps.
        assert np.all(reward_sum <= steps + 1) and reward_sum.sum() >= 150


def test_run_batches_rejects_a_batch_that_does_not_divide_the_pool():
    with pytest.raises(ValueError, match="divide"):
        fns = envpool_xla.XlaFunctions(None, None, None, num_envs=6, batch_size=4)
        envpool_xla.run_batches(fns, None, None, None, None, 1)


def test_auto_evaluates_through_the_xla_program_on_a_cpu_backend():
    assert jax.default_backend() == "cpu"
    d = _eval_driver("dqn", "CartPole-v1", [0], "auto")
    assert d.parts._eval_program is None
    returns = d.evaluate(jax.random.split(jax.random.PRNGKey(0), 1))
    assert d.parts._eval_program is not None and returns.shape == (1,) and returns[0] > 0
    host = _eval_driver("dqn", "CartPole-v1", [0], "python")
    host.evaluate(jax.random.split(jax.random.PRNGKey(0), 1))
    assert host.parts._eval_program is None
