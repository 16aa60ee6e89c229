"""The command line shared by the Atari experiment scripts: preset, game, settings, `--smoke`.

Each script lists the paper's settings it runs with (`SETTINGS`, passed as `--set`;
`tests/test_experiments.py` checks that they are exactly the preset's, so the list
cannot drift from what runs). `--smoke` runs 2000 agent steps with a 10k replay,
learning from step 500, 2 log rows and one evaluation episode capped at 500 steps: a
check that the pipeline runs end to end on a CPU, not a result. Extra arguments are
appended, so they win (`--env` and `--set` too).
"""

import sys

from jaxrl57.cli import main

SMOKE = ["--steps", "2000", "--set", "learning_starts=500", "--set", "replay_capacity=10000",
         "--set", "eval_episodes=1", "--set", "num_rows=2", "--set", "eval_max_steps=500"]


def set_args(settings: dict[str, str]) -> list[str]:
    return [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]


def run(agent: str, env: str, settings: dict[str, str], smoke_args: list[str] = SMOKE) -> int:
    extra = sys.argv[1:]
    smoke = "--smoke" in extra
    extra = [a for a in extra if a != "--smoke"]
    return main(["train", agent, "--env", env] + set_args(settings)
                + (smoke_args if smoke else []) + extra)
