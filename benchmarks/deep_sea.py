"""DeepSea (bsuite's hard-exploration chain): which agents find the treasure,
and after how many episodes?

    python benchmarks/deep_sea.py [--agents dqn,r2d2,ngu,agent57] [--sizes 10,20]
                                  [--seeds 4] [--episodes 10000] [--rows 20] [--json PATH]

For every agent and size, one process per seed runs `jaxrl57 train AGENT --env
jax:DeepSea --env-arg size=N --env-arg mapping_seed=S --seed S --steps
episodes*N` (the compile cache off: the wall includes compiling), so each seed
also draws its own meaning of the actions per cell. A seed counts as solved
when a greedy evaluation (the agent's evaluation policy, `num_rows` times over
the run) returns >= 0.9 (the optimum is 0.99, every episode that misses the
treasure returns <= 0); "episodes" is the training episodes before the first
such row. Epsilon-greedy needs about 2^N episodes to see the treasure once.
"bsuite" is bsuite's criterion (`deep_sea/analysis.py`): the first episode at
which the running share of training episodes that found the treasure reaches
10 % (bad episodes below 90 %); it is read from the rows' mean training
returns, whose mean is the treasure share minus the mean cost of moving right
(at most 0.01), so each row's return is a lower bound on its share, and the
criterion as reported here is met no earlier than the exact one.
Prints the table (agent x size x seed) and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from _common import command_line, run_train, write_results

SOLVED = 0.9


def _solve_point(rows: list[dict], size: int) -> tuple[float | None, float]:
    """(training episodes before the first row at >= SOLVED, or None; final eval)."""
    first = next((float(r["env_steps"]) / size for r in rows
                  if float(r["eval_return"]) >= SOLVED), None)
    return first, float(rows[-1]["eval_return"])


def _bsuite_point(rows: list[dict], share: float = 0.1) -> float | None:
    """Training episodes before the running treasure share (its lower bound, the
    rows' mean returns) first reaches `share`, or None."""
    found = episodes = 0.0
    for r in rows:
        n = float(r["episodes"])
        found += max(float(r["episode_return"] or 0.0), 0.0) * n
        episodes += n
        if episodes and found / episodes >= share:
            return episodes
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="dqn,r2d2,ngu,agent57")
    p.add_argument("--sizes", default="10,20")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--episodes", type=int, default=10_000, help="training episodes per run")
    p.add_argument("--rows", type=int, default=20, help="evaluations over a run")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="passed to every run")
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "deep_sea.json"))
    a = p.parse_args()
    agents, sizes = a.agents.split(","), [int(s) for s in a.sizes.split(",")]
    command = command_line()
    print(f"command: {command}\npython {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: dict = {"command": command, "threshold": SOLVED, "episodes": a.episodes,
                     "runs": []}
    print(f"\n{'agent':<6} {'size':>4} {'seed':>4} {'solved':>6} {'episodes':>9} "
          f"{'bsuite':>7} {'final eval':>10} {'process s':>9}")
    with tempfile.TemporaryDirectory(prefix="deep_sea-") as tmp:
        for agent in agents:
            for size in sizes:
                for seed in range(a.seeds):
                    extra = [x for s in a.set for x in ("--set", s)]
                    r = run_train([agent, "--env", "jax:DeepSea", "--env-arg", f"size={size}",
                                   "--env-arg", f"mapping_seed={seed}", "--seed", str(seed),
                                   "--steps", str(a.episodes * size),
                                   "--set", f"num_rows={a.rows}", *extra],
                                  os.path.join(tmp, f"{agent}-{size}-{seed}"))
                    first, final = _solve_point(r["rows"], size)
                    bsuite = _bsuite_point(r["rows"])
                    record = {"agent": agent, "size": size, "seed": seed,
                              "solved": first is not None, "episodes_to_solve": first,
                              "bsuite_episodes": bsuite,
                              "final_eval_return": final, "process_s": r["process_s"],
                              "command": r["command"],
                              "eval_per_row": [float(x["eval_return"]) for x in r["rows"]],
                              "train_return_per_row": [float(x["episode_return"] or "nan")
                                                       for x in r["rows"]]}
                    results["runs"].append(record)
                    shown = "-" if first is None else f"{first:.0f}"
                    shown_bsuite = "-" if bsuite is None else f"{bsuite:.0f}"
                    print(f"{agent:<6} {size:>4} {seed:>4} {str(first is not None):>6} "
                          f"{shown:>9} {shown_bsuite:>7} {final:>10.3f} "
                          f"{r['process_s']:>9.1f}", flush=True)
    print()
    for agent in agents:
        for size in sizes:
            runs = [r for r in results["runs"] if r["agent"] == agent and r["size"] == size]
            print(f"{agent} size {size}: {sum(r['solved'] for r in runs)}/{len(runs)} solved, "
                  f"{sum(r['bsuite_episodes'] is not None for r in runs)}/{len(runs)} by "
                  f"bsuite's criterion")
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
