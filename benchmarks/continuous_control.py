"""DDPG and TD3 on jax:Pendulum-v1: do they learn on every seed, how do the action
boundings behave, and what does a sweep cost?

    python benchmarks/continuous_control.py [--parts solve,bounding,sweep] [--seeds N]
                                            [--json PATH]

Runs the command line as a user does, one process per command (`python -m
jaxrl57.cli train ...`, the compile cache off so every wall time includes
compiling), and reads each run's summary.json and metrics.csv:

  solve     `jaxrl57 train AGENT --env jax:Pendulum-v1 --seed S` for ddpg and td3,
            S = 0..N-1, each its own process: final greedy evaluation return
            (mean of 100 episodes) against -200, and the process's wall time;
  bounding  `jaxrl57 train ddpg --env jax:Pendulum-v1 --seeds N --set
            action_bounding=B` for B = tanh, inverting_gradients, none: final
            returns, and where the actor's output mu(s) lies against the torque
            bounds after the replay warm-up: per log row, the fraction of mu's
            actions outside the bounds on the replayed batches (mean over the
            row's updates, `policy_out_of_bounds`) and the batch's largest
            distance past a bound in action scales (mean over the row's updates,
            `policy_excess`); the table shows the largest row of each;
  sweep     `--sweep learning_rate=<8 values>` (actor and critic; 8 members, one program)
            against one member, alternating, `--repeats` times: the ratio of
            the runs' wall times.

The actions sent to the env are clipped into the bounds in every mode; these
columns are about the actor's own output, which is what inverting gradients
(Hausknecht & Stone 2016, sec. 4.3.3) is meant to keep inside the bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from _common import command_line, run_train, write_results

SOLVED = -200.0
BOUNDINGS = ("tanh", "inverting_gradients", "none")
SWEEP_RATES = "3e-4,5e-4,7e-4,1e-3,1.5e-3,2e-3,3e-3,5e-3"


def train(args: list[str], out: str) -> dict:
    """Runs `jaxrl57 train ARGS --no-progress --out OUT` in its own process."""
    r = run_train(args, out)
    return {"command": r["command"],
            "final_eval_return": [m["final_eval_return"] for m in r["summary"]["per_member"]],
            "process_s": r["process_s"], "wall_s": r["summary"]["wall_s"], "rows": r["rows"]}


def _bounds_after_warmup(rows: list[dict]) -> dict:
    """The largest per-row out-of-bounds fraction and excess, over rows that updated."""
    learned = [r for r in rows if float(r["updates"] or 0) > 0]
    return {"max_out_of_bounds": max(float(r["policy_out_of_bounds"]) for r in learned),
            "max_excess": max(float(r["policy_excess"]) for r in learned),
            "final_out_of_bounds": [float(r["policy_out_of_bounds"]) for r in learned
                                    if r["env_steps"] == learned[-1]["env_steps"]]}


def _finals(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.1f}" for x in xs) + "]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="solve,bounding,sweep")
    p.add_argument("--seeds", type=int, default=4, help="seeds per agent or bounding")
    p.add_argument("--repeats", type=int, default=2, help="sweep/single pairs in 'sweep'")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "continuous_control.json"))
    a = p.parse_args()
    parts = set(a.parts.split(","))
    if not parts <= {"solve", "bounding", "sweep"}:
        p.error(f"--parts takes solve,bounding,sweep, got {a.parts!r}")
    command = command_line()
    print(f"command: {command}\npython {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: dict = {"command": command, "threshold": SOLVED}
    env = ["--env", "jax:Pendulum-v1"]
    with tempfile.TemporaryDirectory(prefix="continuous_control-") as tmp:
        def out(name):
            return os.path.join(tmp, name)

        if "solve" in parts:
            print(f"\n{'agent':<6} {'seed':>4} {'final eval':>11} {'process s':>10}")
            solve = {}
            for agent in ("ddpg", "td3"):
                runs = []
                for seed in range(a.seeds):
                    r = train([agent, *env, "--seed", str(seed)], out(f"{agent}{seed}"))
                    r.pop("rows")
                    runs.append(r)
                    print(f"{agent:<6} {seed:>4} {r['final_eval_return'][0]:>11.1f} "
                          f"{r['process_s']:>10.1f}", flush=True)
                finals = [r["final_eval_return"][0] for r in runs]
                solve[agent] = {"runs": runs, "solved": sum(x >= SOLVED for x in finals),
                                "max_process_s": max(r["process_s"] for r in runs)}
                print(f"{agent}: {solve[agent]['solved']}/{a.seeds} >= {SOLVED:g}, "
                      f"slowest {solve[agent]['max_process_s']:.1f} s")
            results["solve"] = solve
        if "bounding" in parts:
            print(f"\n{'action_bounding':<20} {'>= -200':>8} {'max out':>8} {'max excess':>11}"
                  f"  final eval")
            bounding = {}
            for b in BOUNDINGS:
                r = train(["ddpg", *env, "--seeds", str(a.seeds),
                           "--set", f"action_bounding={b}"], out(f"bound_{b}"))
                r.update(_bounds_after_warmup(r.pop("rows")))
                r["solved"] = sum(x >= SOLVED for x in r["final_eval_return"])
                bounding[b] = r
                print(f"{b:<20} {r['solved']:>5}/{a.seeds} {r['max_out_of_bounds']:>8.3f} "
                      f"{r['max_excess']:>11.3f}  {_finals(r['final_eval_return'])}", flush=True)
            results["bounding"] = bounding
        if "sweep" in parts:
            pairs = []
            for i in range(a.repeats):
                one = train(["ddpg", *env], out(f"one{i}"))
                eight = train(["ddpg", *env, "--sweep", f"learning_rate={SWEEP_RATES}"],
                              out(f"eight{i}"))
                pairs.append({"one_wall_s": one["wall_s"], "eight_wall_s": eight["wall_s"],
                              "one_process_s": one["process_s"],
                              "eight_process_s": eight["process_s"],
                              "ratio": eight["process_s"] / one["process_s"],
                              "eight_final_eval_return": eight["final_eval_return"]})
                print(f"\nsweep {i}: 1 member {one['process_s']:.1f} s, 8 members "
                      f"{eight['process_s']:.1f} s: ratio {pairs[-1]['ratio']:.2f}; finals "
                      f"{_finals(eight['final_eval_return'])}", flush=True)
            results["sweep"] = {"rates": SWEEP_RATES, "pairs": pairs,
                                "median_ratio": statistics.median(p["ratio"] for p in pairs)}
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
