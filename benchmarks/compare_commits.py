"""An older commit against the working tree, figure by figure, in one run on this machine.

    python benchmarks/compare_commits.py --old REV [--rounds 2]
        [--parts defaults,throughput,pipeline] [--json benchmarks/results/compare_commits.json]

Each side runs its own benchmark scripts with its own package (`git archive REV`
into a temporary folder for the old side, this checkout for the new one), each
benchmark in a fresh process, the two sides alternating (old, new, then new,
old, ...) so that drift of the machine's speed falls on both:

* defaults: `benchmarks/defaults_solve.py --parts a,b` once per side: the
  final greedy evaluation of `jaxrl57 train --seeds 16` and of `jaxrl57 train
  --seed S`, S = 0..7 (the table of issue 11; deterministic on one machine, so
  the two sides must agree exactly), and the single runs' wall times,
  start-up and compilation included (compile cache off).
* throughput: `benchmarks/throughput.py --only ac`, `--rounds` times per
  side: on-device env steps/s on jax:CartPole-v1 and the 8-vs-1 sweep ratio.
* pipeline: `benchmarks/envpool_pipeline.py --quick`, `--rounds` times per
  side, on Breakout-v5: the acting loop's steps/s over raw EnvPool's (MLP
  policy, host loop and XLA), the batch-32 Nature-CNN update time, and
  training's fraction of the learner bound (async pipeline and sync loop).

The table gives each figure's median per side, the spread (min-max over the
rounds) and new/old. The machine is shared and noisy: a ratio inside both
sides' spreads is no difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _common import command_line, write_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, part, path into the benchmark's JSON, higher is better)
FIGURES = [
    ("default CartPole, --seeds 16: members >= 475", "defaults",
     ("a_cartpole_seeds", "solved"), True),
    ("default CartPole, --seed 0..7: runs >= 475", "defaults",
     ("b_cartpole_single", "solved"), True),
    ("default CartPole, --seed 0..7: max wall [s]", "defaults",
     ("b_cartpole_single", "max_process_s"), False),
    ("default CartPole, --seeds 16: wall [s]", "defaults",
     ("a_cartpole_seeds", "process_s"), False),
    ("on-device runner, jax:CartPole-v1 [env steps/s]", "throughput", ("on_device", "sps"), True),
    ("sweep: one row of 8 seeds / 1 seed", "throughput", ("sweep", "ratio"), False),
    ("Breakout acting, MLP host loop / raw EnvPool", "pipeline",
     ("acting_mlp", "ratio_to_raw"), True),
    ("Breakout acting, MLP XLA loop / raw EnvPool", "pipeline",
     ("acting_mlp_xla", "ratio_to_raw"), True),
    ("Nature-CNN batch-32 update [ms]", "pipeline", ("learner", "t_update_ms"), False),
    ("Breakout training async / learner bound", "pipeline",
     ("train_async", "fraction_of_adjacent_bound_median"), True),
    ("Breakout training sync / learner bound", "pipeline",
     ("train_sync", "fraction_of_adjacent_bound_median"), True),
]

COMMANDS = {
    "defaults": ["benchmarks/defaults_solve.py", "--parts", "a,b"],
    "throughput": ["benchmarks/throughput.py", "--only", "ac"],
    "pipeline": ["benchmarks/envpool_pipeline.py", "--quick"],
}


def run_part(tree: str, part: str, out_json: str) -> dict:
    """One benchmark of `tree` in its own process, with `tree` first on the path."""
    env = dict(os.environ, PYTHONPATH=tree)
    cmd = [sys.executable, *COMMANDS[part], "--json", out_json]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {tree} exited {proc.returncode}:\n"
                         f"{proc.stderr[-3000:]}")
    with open(out_json) as f:
        result = json.load(f)
    if part == "pipeline" and "learner" in result:
        result["learner"]["t_update_ms"] = 1e3 * result["learner"]["t_update_s"]
    return result


def _get(result: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="the older commit (any git revision)")
    p.add_argument("--rounds", type=int, default=2,
                   help="repetitions per side of the throughput and pipeline parts")
    p.add_argument("--parts", default="defaults,throughput,pipeline")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "compare_commits.json"))
    a = p.parse_args()
    parts = [x for x in a.parts.split(",") if x]
    old_rev = subprocess.run(["git", "rev-parse", "--short", a.old], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    new_rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    print(f"command: {command_line()}\nold {old_rev}, new {new_rev} (this checkout)")
    runs: dict[str, dict[str, list]] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory(prefix="jaxrl57-old-") as old_tree, \
            tempfile.TemporaryDirectory(prefix="jaxrl57-cmp-") as scratch:
        archive = subprocess.run(["git", "archive", a.old], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive, check=True)
        trees = {"old": old_tree, "new": ROOT}
        for part in parts:
            rounds = 1 if part == "defaults" else a.rounds
            for r in range(rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for side in order:
                    out = os.path.join(scratch, f"{part}-{side}-{r}.json")
                    print(f"  {part} round {r + 1}/{rounds}: {side}", flush=True)
                    runs[side].setdefault(part, []).append(run_part(trees[side], part, out))

    rows = []
    print(f"\n{'figure':<50} {'old':>9} {'new':>9} {'new/old':>8}  spread old | new")
    print("-" * 104)
    for label, part, path, higher in FIGURES:
        if part not in parts:
            continue
        values = {side: [v for v in (_get(res, path) for res in runs[side][part])
                         if v is not None] for side in ("old", "new")}
        if not values["old"] or not values["new"]:
            continue
        med = {side: statistics.median(v) for side, v in values.items()}
        ratio = med["new"] / med["old"] if med["old"] else float("nan")
        spread = " | ".join(f"{min(v):.4g}-{max(v):.4g}" for v in values.values())
        print(f"{label:<50} {med['old']:>9.4g} {med['new']:>9.4g} {ratio:>8.3f}  {spread}")
        rows.append({"figure": label, "higher_is_better": higher, "old": values["old"],
                     "new": values["new"], "median_old": med["old"], "median_new": med["new"],
                     "new_over_old": ratio})
    if "defaults" in parts:
        finals = {side: (_get(runs[side]["defaults"][0], ("a_cartpole_seeds",
                                                          "final_eval_return")),
                         [x["final_eval_return"][0] for x in
                          _get(runs[side]["defaults"][0], ("b_cartpole_single", "runs"))])
                  for side in ("old", "new")}
        same = finals["old"] == finals["new"]
        print(f"\nfinal evaluations of the defaults identical on both sides: {same}")
        for side in ("old", "new"):
            print(f"  {side}: --seeds 16 {finals[side][0]}\n       --seed 0..7 {finals[side][1]}")
        rows.append({"figure": "default finals identical", "value": same,
                     "finals": {k: {"seeds16": v[0], "singles": v[1]}
                                for k, v in finals.items()}})
    write_results({"command": command_line(), "old": old_rev, "new": new_rev,
                   "rounds": a.rounds, "figures": rows, "raw": runs}, a.json)


if __name__ == "__main__":
    main()
