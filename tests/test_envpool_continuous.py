"""Continuous (Box) actions through the EnvPool path: MuJoCo specs, the adapter's
casts, DDPG/TD3 on the EnvPool loops, episode ends in replay, evaluation."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import configs

pytest.importorskip("envpool")
pytestmark = [pytest.mark.envpool,
              pytest.mark.filterwarnings("ignore:.*precision lowered by casting")]

from jaxrl57.build import EVAL_SEED_OFFSET, make_driver  # noqa: E402
from jaxrl57.cli import main  # noqa: E402
from jaxrl57.envs import envpool_xla  # noqa: E402
from jaxrl57.envs.envpool_env import envpool_spec, make_envpool  # noqa: E402
from jaxrl57.runners.evaluation import first_episode_returns, host_evaluate  # noqa: E402

# Two rows of 2 envs x 50 steps; random actions for the first 40 transitions,
# updates from the 60th.
SMALL = {"num_envs": "2", "num_rows": "2", "total_steps": "200", "eval_episodes": "1",
         "eval_max_steps": "20", "learning_starts": "60", "random_steps": "40",
         "batch_size": "16", "hidden_sizes": "16", "replay_capacity": "1000"}


def _driver(env_id, overrides, agent="td3", env_kwargs=None, seed=0):
    s = configs.resolve(agent, env_id, overrides)
    return make_driver(env_id, s, [s.hparams], [seed], env_kwargs=env_kwargs)


def _record_pool_steps(envs):
    """Wraps the EnvPool object of the adapter `envs`; returns the list its `step`
    calls append `(actions, env_id)` to, as EnvPool received them."""
    sent = []
    step = envs.pool.step

    def recording(actions, env_id=None):
        sent.append((np.array(actions), env_id))
        return step(actions) if env_id is None else step(actions, env_id)

    envs.pool.step = recording
    return sent


def _storage(driver):
    """Member 0's replay storage (a `Transition` with leaves [capacity, ...])."""
    return jax.tree.map(lambda x: np.asarray(x[0]), driver.state["agent"].replay.store.storage)


def test_mujoco_spec_is_continuous_with_float32_observations():
    for env_id, dim, obs_dim in (("HalfCheetah-v4", 6, 17), ("Hopper-v4", 3, 11),
                                 ("Walker2d-v4", 6, 17)):
        spec = envpool_spec(env_id)
        assert not spec.discrete and spec.num_actions is None
        assert spec.action_low == (-1.0,) * dim and spec.action_high == (1.0,) * dim
        assert spec.obs_shape == (obs_dim,) and spec.obs_dtype == np.float32
        assert spec.max_episode_steps == 1000
    envs = make_envpool("HalfCheetah-v4", 3, 0)
    assert envs.spec == envpool_spec("HalfCheetah-v4")
    assert envs.pool.observation_space.dtype == np.float64  # what EnvPool itself returns
    obs = envs.reset()
    out = envs.step(np.zeros((3, 6), np.float32))
    for o in (obs, out.obs, out.final_obs):
        assert o.dtype == np.float32 and o.shape == (3, 17)
    assert out.reward.dtype == np.float32 and np.all(out.reward != 0)
    envs.close()


def test_td3_trains_through_the_envpool_loop_and_replays_the_actions_envpool_got():
    d = _driver("HalfCheetah-v4", SMALL)
    sent = _record_pool_steps(d.envs)
    eval_sent = _record_pool_steps(d.eval_envs)
    assert not d.parts.eval_in_xla  # MuJoCo pools evaluate with the host loop
    rows = [d.run_row()[0] for _ in range(2)]
    assert rows[0]["env_steps"] == 100 and rows[1]["env_steps"] == 200
    assert rows[1]["updates"] > rows[0]["updates"] > 0 and np.isfinite(rows[1]["loss"])
    assert np.isfinite(rows[1]["eval_return"]) and rows[1]["eval_return"] != 0

    # What reached EnvPool: its action dtype (float64 for MuJoCo), [2, 6], in the
    # bounds; HalfCheetah never ends in 100 steps, so no reset steps.
    assert len(sent) == 100 and all(env_id is None for _, env_id in sent)
    actions = np.stack([a for a, _ in sent])
    assert actions.dtype == np.float64 and actions.shape == (100, 2, 6)
    assert np.all(np.abs(actions) <= 1.0) and np.std(actions) > 0.1
    # The evaluation pool's one env, one 20-step episode per row, through the host loop.
    assert len(eval_sent) == 40
    assert all(a.dtype == np.float64 and a.shape == (1, 6) and np.all(np.abs(a) <= 1)
               for a, _ in eval_sent)

    # Replay holds float32 [6] actions, exactly the ones sent, env by env.
    storage = _storage(d)
    assert storage.action.dtype == np.float32 and storage.action.shape == (1000, 6)
    assert int(np.asarray(d.state["agent"].replay.store.size)[0]) == 200
    np.testing.assert_array_equal(storage.action[:200], actions.reshape(200, 6))
    assert storage.obs.dtype == np.float32 and storage.obs.shape == (1000, 17)


def test_the_async_pipeline_acts_with_float_actions():
    overrides = dict(SMALL, pipeline="async", num_rows="1", total_steps="100",
                     learning_starts="500")  # acting and replay only: updates are tested above
    d = _driver("Walker2d-v4", overrides)
    try:
        row = d.run_row()[0]
    finally:
        d.close()
    assert row["env_steps"] == 100 and np.isfinite(row["eval_return"])
    storage = _storage(d)
    assert storage.action.shape == (1000, 6) and np.all(np.abs(storage.action[:100]) <= 1)
    assert np.std(storage.action[:100]) > 0.1 and not storage.action[100:].any()


def test_termination_stores_discount_zero_and_truncation_bootstraps():
    """Hopper-v4 with a 10-step limit: env 0 driven by -1 on every joint falls
    (unhealthy: `terminated`) after a few steps, env 1 with zero torque stands until
    the limit (`truncated`). The driver's replay must store discount 0 at the
    terminations only, and the final observation (not the reset one) as the next
    observation of a truncated step."""
    overrides = dict(SMALL, num_rows="1", total_steps="100", learning_starts="500")
    d = _driver("Hopper-v4", overrides, env_kwargs={"max_episode_steps": 10})
    step, outs = d.envs.step, []

    def fixed_actions(actions):
        # The env is driven by fixed torques; what is tested is how the ends are stored.
        out = step(np.array([[-1.0] * 3, [0.0] * 3]))
        outs.append(out)
        return out

    d.envs.step = fixed_actions
    row = d.run_row()[0]
    terminated = np.stack([o.terminated for o in outs])  # [50, 2]
    truncated = np.stack([o.truncated for o in outs])
    assert terminated[:, 0].sum() >= 5 and not terminated[:, 1].any()
    assert truncated[:, 1].sum() == 5 and not (terminated & truncated).any()
    assert row["episodes"] == int(terminated.sum() + truncated.sum())

    storage = _storage(d)
    discount = storage.discount[:100].reshape(50, 2)
    np.testing.assert_array_equal(discount == 0, terminated)
    np.testing.assert_allclose(discount[~terminated], 0.99, rtol=1e-6)
    next_obs = storage.next_obs[:100].reshape(50, 2, 11)
    for t, e in zip(*np.nonzero(truncated), strict=True):
        np.testing.assert_array_equal(next_obs[t, e], outs[t].final_obs[e])
        assert not np.array_equal(next_obs[t, e], outs[t].obs[e])  # not the reset obs
    ongoing = ~(terminated | truncated)
    for t, e in zip(*np.nonzero(ongoing[:-1]), strict=True):
        np.testing.assert_array_equal(next_obs[t, e], outs[t].obs[e])


def test_xla_interface_refuses_64_bit_pools_without_x64():
    """Without x64, EnvPool would declare MuJoCo's float64 buffers as float32 and its
    C++ side would write past them; the adapter refuses instead of crashing."""
    envs = make_envpool("HalfCheetah-v4", 2, 0)
    assert envpool_xla.wide_arrays(envs.pool)[:2] == ["action", "obs"]
    assert not envpool_xla.xla_supported(envs.pool)
    with pytest.raises(ValueError, match="jax_enable_x64"):
        envpool_xla.xla_functions(envs.pool)
    envs.close()
    pendulum = make_envpool("Pendulum-v1", 2, 0)  # continuous, 32-bit
    assert envpool_xla.xla_supported(pendulum.pool)
    assert envpool_xla.xla_functions(pendulum.pool).action_dtype == np.float32
    pendulum.close()


def test_with_x64_the_xla_loop_plays_the_host_loops_mujoco_episodes():
    """Under x64 the XLA interface takes MuJoCo: float32 actions are sent as float64,
    float64 observations come back as float32, and the first episodes are the host
    adapter's."""
    horizon, w = 30, np.linspace(-1.0, 1.0, 17 * 6).reshape(17, 6).astype(np.float32)

    def policy(obs):
        return jnp.tanh(obs @ w)

    envs = make_envpool("HalfCheetah-v4", 3, 4, train=False)
    obs = envs.reset()
    want = np.zeros(3, np.float32)
    for _ in range(horizon):
        out = envs.step(np.asarray(policy(obs)))
        want += out.reward
        obs = out.obs
    envs.close()

    envs = make_envpool("HalfCheetah-v4", 3, 4, train=False)
    with jax.enable_x64(True):
        fns = envpool_xla.xla_functions(envs.pool)
        assert fns.action_dtype == np.float64

        def act(actor, obs, key):
            assert obs.dtype == jnp.float32
            return policy(obs), actor, key

        program = jax.jit(lambda handle: first_episode_returns(
            fns, handle, act, None, (), jax.random.PRNGKey(0), horizon))
        envpool_xla.reset(envs.pool)
        _, returns, lengths = program(fns.handle)
    envs.close()
    np.testing.assert_array_equal(np.asarray(lengths), [horizon] * 3)
    np.testing.assert_allclose(np.asarray(returns), want, rtol=1e-5)


def test_continuous_xla_evaluation_plays_the_host_loops_episodes():
    """EnvPool's Pendulum-v1 is continuous with float32 arrays: its evaluation runs
    as one XLA program, sending the agent's float32 actions, with the episodes of
    the host loop."""
    key = jax.random.split(jax.random.PRNGKey(3), 1)
    d = _driver("Pendulum-v1", dict(SMALL, eval_episodes="3", eval_max_steps="50"),
                agent="ddpg")
    assert d.parts.eval_in_xla  # eval_loop=auto on a CPU backend
    got = d.evaluate(key)
    # A fresh pool seeded like the driver's: the one just played has moved on.
    fresh = make_envpool("Pendulum-v1", 3, EVAL_SEED_OFFSET, train=False)
    view = d.parts.view(d.state["agent"])
    want = host_evaluate(fresh, d.parts._eval_actor_jit, view, key, d.parts.split2, 1, 50)
    fresh.close()
    assert want.shape == got.shape == (1,) and want[0] < 0
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("argv,needle", [
    (["train", "dqn", "--env", "HalfCheetah-v4"],
     "agent 'dqn' needs discrete actions, but HalfCheetah-v4 has a continuous action space"),
    (["train", "td3", "--env", "Hopper-v4", "--set", "eval_loop=xla"],
     "eval_loop=xla: EnvPool's XLA interface needs jax_enable_x64"),
])
def test_bad_runs_on_mujoco_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        rc = main(argv + ["--no-progress", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxrl57: error: ") and needle in lines[0]
    assert "Traceback" not in out + err


def _resolved_script(extra):
    import importlib.util
    import pathlib

    from jaxrl57.cli import build_parser, request_of

    path = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "td3_mujoco.py"
    spec = importlib.util.spec_from_file_location("experiment_td3_mujoco", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    request = request_of(build_parser().parse_args(script.argv(extra)))
    return script, request, configs.resolve(request.agent, request.env, request.overrides,
                                            steps=request.steps)


def test_td3_mujoco_script_runs_cleanrls_settings_over_the_preset():
    script, request, s = _resolved_script([])
    assert (request.agent, request.env) == ("td3", "HalfCheetah-v4")
    assert s.agent_config.hidden_sizes == (256, 256) and s.agent_config.batch_size == 256
    assert s.agent_config.num_critics == 2 and s.agent_config.replay_capacity == 1_000_000
    assert s.hparams["actor_learning_rate"] == s.hparams["critic_learning_rate"] == 3e-4
    assert s.hparams["learning_starts"] == s.hparams["random_steps"] == 25_000
    assert (s.hparams["target_noise"], s.hparams["target_noise_clip"],
            s.hparams["policy_delay"]) == (0.2, 0.5, 2)
    run = s.run_config
    assert (run.total_steps, run.num_envs, run.train_every, run.updates_per_train) == \
        (1_000_000, 1, 1, 1)
    # Where CleanRL and the paper differ, the preset keeps the paper's values.
    paper = configs.resolve("td3", "HalfCheetah-v4", {})
    assert paper.agent_config.hidden_sizes == (400, 300) and paper.hparams["learning_starts"] == 1e4
    # --smoke and later arguments win over the listed settings.
    _, request, smoke = _resolved_script(["--smoke", "--env", "Hopper-v4"])
    assert request.env == "Hopper-v4" and smoke.run_config.total_steps == 1000
    assert smoke.hparams["learning_starts"] == 500 and smoke.agent_config.batch_size == 256
