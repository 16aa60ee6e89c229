"""Bad input and impossible settings end with exit status 2 and one `jaxrl57: error:`
line, before anything is compiled or allocated: loop settings that the derived
schedules divide by, layer sizes, non-finite hyperparameters, a state too large
for the machine, env arguments of the wrong type or range."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from jaxrl57 import configs, envs
from jaxrl57.cli import main
from jaxrl57.runners import footprint

CATCH = ["train", "dqn", "--env", "jax:Catch", "--steps", "1000", "--no-progress"]
CARTPOLE = ["train", "dqn", "--steps", "1000", "--no-progress"]
R2D2 = ["train", "r2d2", "--env", "jax:Catch", "--steps", "1000", "--no-progress"]


def _set(*pairs):
    return [a for p in pairs for a in ("--set", p)]


CASES = {
    # loop settings the derived schedule lengths divide by
    "num_envs0": (CARTPOLE + _set("num_envs=0"), ["num_envs must be >= 1, got 0"]),
    "num_rows0": (CARTPOLE + _set("num_rows=0"), ["num_rows must be >= 1, got 0"]),
    "r2d2_num_envs0": (R2D2 + _set("num_envs=0"), ["num_envs must be >= 1"]),
    "eval_episodes0": (CATCH + _set("eval_episodes=0"), ["eval_episodes must be >= 1"]),
    # layer sizes
    "hidden_sizes0": (CARTPOLE + _set("hidden_sizes=0"), ["hidden_sizes", ">= 1", "(0,)"]),
    "hidden_sizes_64x0": (CARTPOLE + _set("hidden_sizes=64x0"), ["hidden_sizes", "(64, 0)"]),
    "dueling_no_layer": (["train", "dueling", "--no-progress"] + _set("hidden_sizes=,"),
                         ["hidden_sizes needs at least one layer", "dueling"]),
    "r2d2_core_size0": (R2D2 + _set("core_size=0"), ["core_size must be >= 1, got 0"]),
    "r2d2_head_hidden0": (R2D2 + _set("head_hidden=0"), ["head_hidden", ">= 1"]),
    "r2d2_hidden_sizes0": (R2D2 + _set("hidden_sizes=0"), ["hidden_sizes", ">= 1"]),
    # a state too large for the machine: 44 bytes per CartPole transition
    "replay_1e12": (CARTPOLE + _set("replay_capacity=1e12"),
                    ["replay_capacity=1000000000000 needs 88.0 TB, twice the 44.0 TB of "
                     "1 member's state (replay 44.0 TB) as a training step holds it, but ",
                     "of memory are available"]),
    "r2d2_replay_1e9": (R2D2 + _set("replay_capacity=1e9"),
                        ["replay_capacity=1000000000 needs", "TB"]),
    "steps_int32": (CARTPOLE + ["--steps", "3000000000"], ["total_steps must be below 2**31"]),
    # 1000 steps of 8 envs make 125 batches: 200 rows would stretch the run
    "rows_past_steps": (CARTPOLE + _set("num_rows=200"), ["num_rows (200) exceeds", "= 125"]),
    # non-finite traced hyperparameters, by --set and by --sweep
    "lr_nan": (CARTPOLE + _set("learning_rate=nan"),
               ["learning_rate must be a finite number, got nan"]),
    "lr_inf": (CARTPOLE + _set("learning_rate=inf"),
               ["learning_rate must be a finite number, got inf"]),
    "discount_nan": (CATCH + _set("discount=nan"), ["discount must be a finite number"]),
    "sweep_lr_nan": (CATCH + ["--sweep", "learning_rate=1e-3,nan"],
                     ["learning_rate must be a finite number, got nan"]),
    "sweep_eps_inf": (CATCH + ["--sweep", "epsilon_end=0.1,-inf"],
                      ["epsilon_end must be a finite number, got -inf"]),
    "r2d2_lr_inf": (R2D2 + _set("learning_rate=inf"), ["learning_rate must be a finite"]),
    "kappa_nan": (["train", "qr_dqn", "--no-progress"] + _set("quantile_kappa=nan"),
                  ["quantile_kappa must be finite"]),
    # values that used to run to the end doing something odd
    "target_period0": (CATCH + _set("target_period=0"), ["target_period must be >= 1, got 0"]),
    "target_period_frac": (CATCH + _set("target_period=2.5"),
                           ["target_period must be a whole number", "2.5"]),
    "r2d2_target_period0": (R2D2 + _set("target_period=0"), ["target_period must be >= 1"]),
    "learning_starts_neg": (CATCH + _set("learning_starts=-5"),
                            ["learning_starts must be >= 0, got -5"]),
    "n_step0": (CATCH + _set("n_step=0"), ["n_step must be >= 1, got 0"]),
    "epsilon_decay0": (CATCH + _set("epsilon_decay_steps=0"),
                       ["epsilon_decay_steps must be > 0, got 0"]),
    "huber_delta0": (CATCH + _set("huber_delta=0"), ["huber_delta must be > 0, got 0"]),
    "c51_one_atom": (["train", "c51", "--env", "jax:Catch", "--no-progress"]
                     + _set("num_atoms=1"), ["num_atoms must be >= 2, got 1"]),
    "v_min_ge_v_max": (["train", "c51", "--env", "jax:Catch", "--no-progress"]
                       + _set("v_min=1", "v_max=1"), ["v_min (1) must be below v_max (1)"]),
    "priority_alpha_neg": (["train", "prioritized", "--env", "jax:Catch", "--no-progress"]
                           + _set("priority_alpha=-0.5"),
                           ["priority_alpha must be >= 0, got -0.5"]),
    "lr_final_fraction_neg": (CATCH + _set("lr_final_fraction=-0.1"),
                              ["lr_final_fraction must be >= 0"]),
    "target_tau0": (CATCH + _set("target_tau=0"), ["target_tau must be in (0, 1], got 0"]),
    "rmsprop_decay1": (CATCH + _set("rmsprop_decay=1"), ["rmsprop_decay must be in [0, 1)"]),
    "r2d2_priority_eta": (R2D2 + _set("priority_eta=2"), ["priority_eta must be in [0, 1]"]),
    "r2d2_rescale_eps0": (R2D2 + _set("rescale_eps=0"), ["rescale_eps must be finite and > 0"]),
    # env arguments: type, range, names
    "catch_size_abc": (["train", "--env", "jax:Catch", "--env-arg", "size=abc"],
                       ["bad --env-arg for jax:Catch: size must be an integer >= 2, got 'abc'"]),
    "catch_size_float": (["train", "--env", "jax:Catch", "--env-arg", "size=7.5"],
                         ["size must be an integer >= 2, got 7.5"]),
    "catch_size1": (["train", "--env", "jax:Catch", "--env-arg", "size=1"],
                    ["size must be >= 2, got 1"]),
    "catch_size_bool": (["train", "--env", "jax:Catch", "--env-arg", "size=true"],
                        ["size must be an integer >= 2, got True"]),
    "cave_size": (["train", "--env", "jax:Cave", "--env-arg", "size=8"],
                  ["bad --env-arg for jax:Cave: size must be >= 12, got 8"]),
    "cave_frames": (["train", "--env", "jax:Cave", "--env-arg", "frames=none"],
                    ["frames must be an integer >= 1, got 'none'"]),
    "memory_length": (["train", "r2d2", "--env", "jax:MemoryChain", "--env-arg", "length=0"],
                      ["length must be >= 1, got 0"]),
    "memory_cues": (["train", "r2d2", "--env", "jax:MemoryChain", "--env-arg", "num_cues=two"],
                    ["num_cues must be an integer >= 2, got 'two'"]),
    "catch_unknown_arg": (["train", "--env", "jax:Catch", "--env-arg", "width=5"],
                          ["unknown argument(s) width", "accepted: size"]),
    "cave_unknown_arg": (["train", "--env", "jax:Cave", "--env-arg", "frame=2"],
                         ["unknown argument(s) frame", "accepted: size, frames"]),
    "cartpole_any_arg": (["train", "--env-arg", "length=3"],
                         ["jax:CartPole-v1 takes no arguments"]),
    "env_arg_seed": (["train", "--env", "jax:Catch", "--env-arg", "seed=3"],
                     ["--env-arg seed", "--seed"]),
    "envpool_type": (["train", "--env", "CartPole-v1", "--env-arg", "max_episode_steps=abc"],
                     ["bad --env-arg for CartPole-v1: max_episode_steps must be an integer, "
                      "got 'abc'"]),
    "envpool_range": (["train", "--env", "CartPole-v1", "--env-arg", "max_episode_steps=0"],
                      ["max_episode_steps must be >= 1, got 0"]),
    "envpool_unknown": (["train", "--env", "CartPole-v1", "--env-arg", "gravity=3"],
                        ["unknown argument(s) gravity", "max_episode_steps"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_exits_2_with_one_line(name, capsys, tmp_path):
    argv, needles = CASES[name]
    if name.startswith("envpool"):
        pytest.importorskip("envpool")
    out_dir = tmp_path / "run"
    with warnings.catch_warnings(record=True):  # library warnings are not ours to test here
        warnings.simplefilter("always")
        rc = main(argv + ["--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxrl57: error: ") and len(lines[0]) > len("jaxrl57: error: ")
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    # Rejected before the run folder (and so before any driver or program) exists.
    assert not os.path.exists(out_dir)


def test_replay_too_large_is_the_only_output_out_of_process(tmp_path):
    """Out of process: nothing from JAX or XLA (allocation errors, warnings) on stderr."""
    code = "import sys; from jaxrl57.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *CARTPOLE, "--out", str(tmp_path / "r"),
                           "--set", "replay_capacity=1e12"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "jaxrl57: error: replay_capacity=1000000000000 needs 88.0 TB"), proc.stderr


def test_infinity_where_it_means_something():
    """max_grad_norm=inf (no clipping: Nature DQN's own preset) and
    priority_beta_steps=inf (beta never anneals) are accepted."""
    s = configs.resolve("prioritized", "jax:Catch",
                        {"max_grad_norm": "inf", "priority_beta_steps": "inf"})
    assert s.hparams["max_grad_norm"] == float("inf")
    assert s.hparams["priority_beta_steps"] == float("inf")
    assert configs.resolve("dqn", "Breakout-v5", {}).hparams["max_grad_norm"] == float("inf")
    with pytest.raises(configs.ConfigError, match="max_grad_norm must be a finite"):
        configs.resolve("dqn", "jax:Catch", {"max_grad_norm": "nan"})


def test_every_preset_resolves_on_every_family():
    """The checks reject no preset's own values (drqn needs a conv torso, as before)."""
    for agent in configs.AGENTS:
        for env_id in ("jax:CartPole-v1", "jax:Catch", "jax:Cave", "jax:MemoryChain",
                       "Breakout-v5", "Acrobot-v1"):
            if agent == "drqn" and env_id not in ("jax:Cave", "Breakout-v5"):
                continue
            configs.resolve(agent, env_id, {})


def test_state_bytes_counts_the_replay_exactly():
    """A CartPole transition stored whole: obs and next_obs 4 float32 each (32 B),
    action int32, reward and discount float32 (12 B): 44 bytes a slot; nothing else
    in the state depends on the capacity."""
    spec = envs.env_spec("jax:CartPole-v1")
    small = footprint.state_bytes(
        configs.resolve("dqn", "jax:CartPole-v1", {"replay_capacity": "1000"}), spec)
    large = footprint.state_bytes(
        configs.resolve("dqn", "jax:CartPole-v1", {"replay_capacity": "3000"}), spec)
    assert large[1] - small[1] == 44 * 2000
    assert large[0] - large[1] == small[0] - small[1]
    # params of 4 -> 64 -> 64 -> 2: 4610 floats, in params, target, Adam mu and nu
    assert small[0] - small[1] >= 4 * 4610 * 4


def test_check_fits_counts_members_and_names_both_figures():
    settings = configs.resolve("dqn", "jax:CartPole-v1", {"replay_capacity": "100000"})
    spec = envs.env_spec("jax:CartPole-v1")
    one, replay = footprint.state_bytes(settings, spec)
    assert replay > one / 2
    assert footprint.check_fits(settings, spec, 3, available=(6 * one, "memory")) == 6 * one
    with pytest.raises(ValueError) as e:
        footprint.check_fits(settings, spec, 3, available=(6 * one - 1, "memory"))
    assert str(e.value) == (
        f"replay_capacity=100000 needs {footprint.format_bytes(6 * one)}, twice the "
        f"{footprint.format_bytes(3 * one)} of 3 members' state "
        f"(replay {footprint.format_bytes(3 * replay)}) as a training step holds it, but "
        f"{footprint.format_bytes(6 * one - 1)} of memory are available")
    # unknown free memory: no check
    assert footprint.check_fits(settings, spec, 1, available=(None, "memory")) == 2 * one


@pytest.mark.parametrize("n,text", [(512, "512 B"), (20_100_000_000, "20.1 GB"),
                                    (1.2e12, "1.2 TB"), (999_949, "999.9 kB")])
def test_format_bytes(n, text):
    assert footprint.format_bytes(n) == text


@pytest.mark.parametrize("env_id,kwargs,message", [
    ("jax:Catch", {"size": "abc"}, r"^size must be an integer >= 2, got 'abc'$"),
    ("jax:Catch", {"size": 1}, r"^size must be >= 2, got 1$"),
    ("jax:Cave", {"frames": 0}, r"^frames must be >= 1, got 0$"),
    ("jax:Cave", {"size": 24.0}, r"^size must be an integer >= 12, got 24.0$"),
    ("jax:MemoryChain", {"length": "3"}, r"^length must be an integer >= 1, got '3'$"),
    ("jax:MaskedCartPole-v1", {"size": 3}, r"takes no arguments"),
])
def test_env_makers_check_their_arguments(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        envs.env_spec(env_id, **kwargs)


def test_env_makers_take_numpy_integers():
    import numpy as np

    assert envs.env_spec("jax:Catch", size=np.int64(5)).obs_shape == (5, 5, 1)
    assert envs.env_spec("jax:Cave", size=12, frames=np.int32(2)).obs_shape == (12, 12, 2)


def test_a_short_run_takes_fewer_rows_than_the_family_default():
    """Atari R2D2 logs 200 rows; 2,000 steps of 8 envs acting 4 steps between
    updates are 62.5 phases, so 63 phases (2,016 steps) are run, in the most rows
    that split them evenly (21 of 3 phases), not in 200 rows (6,400 steps)."""
    s = configs.resolve("r2d2", "Breakout-v5", {}, steps=2_000)
    assert s.run_config.num_rows == 21
    assert s.run_config.num_rows * s.run_config.steps_per_row == 2_016
    assert configs.resolve("r2d2", "Breakout-v5", {}).run_config.num_rows == 200
