"""The `experiments/` scripts list the settings they run with; those lists must be
exactly what the presets give, so what a reader sees is what runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import sys

import pytest

from jaxrl57 import configs

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
SCRIPTS = ["dqn_atari", "rainbow_atari", "apex_atari", "r2d2_atari", "cartpole_dqn",
           "ddpg_pendulum", "ngu_atari", "agent57_atari"]


def _load(name: str):
    sys.path.insert(0, str(EXPERIMENTS))  # the Atari scripts import `_atari`
    try:
        spec = importlib.util.spec_from_file_location(f"experiment_{name}",
                                                      EXPERIMENTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXPERIMENTS))


def _everything(s: configs.Settings) -> dict:
    return dict(agent=dataclasses.asdict(s.agent_config), hparams=s.hparams,
                run=dataclasses.asdict(s.run_config), envpool=dataclasses.asdict(s.envpool),
                train_env=s.train_env)


@pytest.mark.parametrize("name", SCRIPTS)
def test_listed_settings_are_the_presets(name):
    script = _load(name)
    assert len(script.SETTINGS) >= 10  # a list worth reading, not a token one
    listed = configs.resolve(script.AGENT, script.ENV, dict(script.SETTINGS))
    assert _everything(listed) == _everything(configs.resolve(script.AGENT, script.ENV, {}))


def test_a_changed_listed_setting_is_noticed():
    # The comparison above can fail: a listed value that differs from the preset does.
    script = _load("dqn_atari")
    changed = dict(script.SETTINGS, learning_rate="0.0001")
    assert _everything(configs.resolve(script.AGENT, script.ENV, changed)) != \
        _everything(configs.resolve(script.AGENT, script.ENV, {}))
