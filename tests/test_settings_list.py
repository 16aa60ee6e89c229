"""`jaxrl57 train AGENT --env ENV --list-settings` and the settings' documentation."""

from __future__ import annotations

import dataclasses
import os

import pytest

from jaxrl57 import configs
from jaxrl57.agents import FAMILIES
from jaxrl57.cli import main
from jaxrl57.runners.config import EnvPoolConfig, RunConfig


@pytest.mark.parametrize("cls", [*(f.config_cls for f in FAMILIES.values()),
                                 *(f.hparams_cls for f in FAMILIES.values()), RunConfig,
                                 EnvPoolConfig],
                         ids=lambda c: c.__name__)
def test_every_setting_has_a_docstring(cls):
    docs = configs.field_docs(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert [n for n in names if not docs.get(n)] == []


def test_field_docs_reads_the_string_under_each_field():
    @dataclasses.dataclass
    class Example:
        a: int = 1
        """First."""
        b: int = 2
        c: float = 3.0
        """Third, over
        two lines."""

    assert configs.field_docs(Example) == {"a": "First.", "c": "Third, over two lines."}


def test_list_settings_prints_values_kinds_and_docs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "dqn", "--env", "jax:Catch", "--set", "learning_rate=3e-4",
                 "--set", "hidden_sizes=32,16", "--steps", "5000", "--list-settings"]) == 0
    out = capsys.readouterr().out
    sections = out.split("\n\n")
    assert [s.splitlines()[1 if i == 0 else 0].split(" (")[0] for i, s in enumerate(sections)] \
        == ["agent config", "hyperparameters", "loop", "EnvPool loops"]
    agent, traced, loop, pool = ({line.split()[0]: line.split(None, 2)[1:]
                            for line in s.splitlines() if line.startswith("  ")}
                           for s in sections)
    assert agent["hidden_sizes"][0] == "32,16"
    assert traced["learning_rate"] == ["0.0003", "Optimizer step size at the first update."]
    assert loop["total_steps"][0] == "5000" and pool["pipeline"][0] == "sync"
    s = configs.resolve("dqn", "jax:Catch", {"learning_rate": "3e-4", "hidden_sizes": "32,16"},
                        steps=5000)
    assert set(traced) == set(s.hparams) and set(agent) == {
        f.name for f in dataclasses.fields(s.agent_config)}
    assert not os.path.exists(tmp_path / "runs")  # nothing was trained


def test_list_settings_shows_the_training_env_settings(capsys):
    assert main(["train", "r2d2", "--env", "Breakout-v5", "--env-arg", "reward_clip=true",
                 "--list-settings"]) == 0
    section = capsys.readouterr().out.split("\n\n")[-1].splitlines()
    assert section[0].startswith("training envs")
    values = {line.split()[0]: line.split()[1] for line in section[1:]}
    # R2D2's Atari training envs keep lives and rewards whole; --env-arg wins.
    assert values == {"episodic_life": "False", "reward_clip": "True"}


def test_list_settings_with_bad_input_exits_2(capsys):
    assert main(["train", "dqn", "--set", "nope=1", "--list-settings"]) == 2
    assert "unknown setting 'nope'" in capsys.readouterr().err


def test_list_settings_of_a_run_folder_shows_the_runs_settings(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text(
        '{"command": "train", "agent": "c51", "env": "jax:Catch", "set": ["batch_size=16"]}')
    assert main(["train", "--resume", str(run), "--list-settings"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("c51 on jax:Catch")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()
            if line.startswith("  ")}
    assert rows["batch_size"] == "16" and rows["distribution"] == "c51"
