"""How fast each preset learns the small JAX tasks, seeds in one program.

    python benchmarks/presets_learning.py [--presets dqn,c51,...] [--envs jax:CartPole-v1,...]
                                          [--seeds 4] [--steps N] [--set NAME=VALUE ...]
                                          [--json PATH]

For every (preset, env), trains `--seeds` seeds as one vmapped program (`JaxDriver`, the
driver of `jaxrl57 train`) with the env family's defaults, and reports per seed the
final greedy evaluation return and the env steps at which the evaluation first reached
the solve threshold (CartPole-v1: 475, Catch: 0.9; None if never), plus the wall time.
Issue 4 asks that each preset reach the threshold and that `rainbow` not need more env
steps than `dqn` on CartPole. Issue 3 asks that `r2d2` clearly beat `dqn` on the memory
tasks with the same budget (`--steps`): masked CartPole (threshold 400) and MemoryChain
(0.9; a memoryless policy's best expected return is 0).
"""

from __future__ import annotations

from _common import command_line, write_results

from jaxrl57.runners.devices import expose_host_cores

expose_host_cores()  # as the command line does, before JAX starts

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from jaxrl57 import configs  # noqa: E402
from jaxrl57.build import make_driver  # noqa: E402

THRESHOLDS = {"jax:CartPole-v1": 475.0, "jax:Catch": 0.9, "jax:MaskedCartPole-v1": 400.0,
              "jax:MemoryChain": 0.9}


def run(preset: str, env_id: str, seeds: int, overrides: dict[str, str],
        steps: int | None = None) -> dict:
    s = configs.resolve(preset, env_id, overrides, steps=steps)
    t0 = time.perf_counter()
    driver = make_driver(env_id, s, [s.hparams] * seeds, list(range(seeds)))
    rows = [driver.run_row() for _ in range(s.run_config.num_rows)]
    wall = time.perf_counter() - t0
    threshold = THRESHOLDS[env_id]
    per_seed = []
    for m in range(seeds):
        evals = [r[m]["eval_return"] for r in rows]
        solved = next((r[m]["env_steps"] for r in rows if r[m]["eval_return"] >= threshold),
                      None)
        per_seed.append({"seed": m, "final_eval_return": evals[-1], "evals": evals,
                         "first_solved_env_steps": solved})
    solved_steps = [p["first_solved_env_steps"] for p in per_seed]
    return {"preset": preset, "env": env_id, "threshold": threshold, "wall_s": wall,
            "env_steps": s.run_config.num_rows * s.run_config.steps_per_row,
            "per_seed": per_seed,
            "final_solved": sum(p["final_eval_return"] >= threshold for p in per_seed),
            "median_first_solved": (statistics.median(solved_steps)
                                    if all(x is not None for x in solved_steps) else None)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="dqn,c51,qr_dqn,iqn,rainbow")
    p.add_argument("--envs", default="jax:CartPole-v1,jax:Catch")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=None,
                   help="env steps per seed (default: the env family's)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "presets_learning.json"))
    a = p.parse_args()
    overrides = dict(item.split("=", 1) for item in a.set)
    command = command_line()
    print(f"command: {command}\njax {jax.__version__}, devices {jax.devices()}")
    results = {"command": command, "jax": jax.__version__, "runs": []}
    print(f"{'preset':<10} {'env':<16} {'final >= thr':>12} {'median steps to thr':>20} "
          f"{'wall s':>8}  final eval per seed")
    for env_id in a.envs.split(","):
        for preset in a.presets.split(","):
            r = run(preset, env_id, a.seeds, overrides, a.steps)
            results["runs"].append(r)
            finals = [round(x["final_eval_return"], 2) for x in r["per_seed"]]
            print(f"{preset:<10} {env_id:<16} {r['final_solved']:>9}/{a.seeds:<2} "
                  f"{str(r['median_first_solved']):>20} {r['wall_s']:>8.1f}  {finals}",
                  flush=True)
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
