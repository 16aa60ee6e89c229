"""The command line shared by the Atari experiment scripts: preset, game, `--smoke`.

`--smoke` runs 2000 agent steps with a 10k replay, learning from step 500, 2 log rows
and one evaluation episode capped at 500 steps: a check that the pipeline runs end to
end on a CPU, not a result. Extra arguments are appended, so they win (`--env` too).
"""

import sys

from jaxrl57.cli import main

SMOKE = ["--steps", "2000", "--set", "learning_starts=500", "--set", "replay_capacity=10000",
         "--set", "eval_episodes=1", "--set", "num_rows=2", "--set", "eval_max_steps=500"]


def run(agent: str, env: str = "Breakout-v5", smoke_args: list[str] = SMOKE) -> int:
    extra = sys.argv[1:]
    smoke = "--smoke" in extra
    extra = [a for a in extra if a != "--smoke"]
    return main(["train", agent, "--env", env] + (smoke_args if smoke else []) + extra)
