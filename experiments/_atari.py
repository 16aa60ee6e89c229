"""The command line shared by the Atari experiment scripts: preset, game, `--smoke`.

Each script lists the paper's settings it runs with (`SETTINGS`), to be read: the
preset already holds them, and `tests/test_experiments.py` checks that the list is
exactly what the preset resolves to, so it cannot drift from what runs. They are not
passed again as `--set`, which would also put them into the run's recorded overrides
and `jaxrl57 report`'s labels. `--smoke` runs 2000 agent steps with a 10k replay,
learning from step 500, 2 log rows and one evaluation episode capped at 500 steps: a
check that the pipeline runs end to end on a CPU, not a result. Extra arguments are
appended, so they win (`--env` for another Atari game, `--set`).
"""

import sys

from jaxrl57.cli import main

SMOKE = ["--steps", "2000", "--set", "learning_starts=500", "--set", "replay_capacity=10000",
         "--set", "eval_episodes=1", "--set", "num_rows=2", "--set", "eval_max_steps=500"]


def run(agent: str, env: str, smoke_args: list[str] = SMOKE) -> int:
    extra = sys.argv[1:]
    smoke = "--smoke" in extra
    extra = [a for a in extra if a != "--smoke"]
    return main(["train", agent, "--env", env] + (smoke_args if smoke else []) + extra)
