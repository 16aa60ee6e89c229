"""Do the defaults of `jaxrl57 train` solve on every seed, and how long does a run take?

    python benchmarks/defaults_solve.py [--quick] [--parts a,b,c,d] [--repeats N]
                                        [--json PATH]

Runs the command line as a user does, one process per command (`python -m
jaxrl57.cli`), and reads each run's summary.json:

  (a) `jaxrl57 train --seeds 16`: final greedy eval per member, how many >= 475;
  (b) `jaxrl57 train --seed S` for S = 0..7, each its own process (the
      single-member program): final eval and wall time, start-up included;
  (c) `jaxrl57 train dqn --env jax:Catch --seeds 8`: final eval, how many >= 0.9;
  (d) the persistent compilation cache: `jaxrl57 train` twice on a fresh cache
      folder (the first run compiles and writes it, the second reads it), and
      once with the cache off (`--repeats` trials, each on a fresh folder);
  (e) `jaxrl57 train --seed 16 --seeds 32`: 32 more seeds, so that (a)'s count
      is not read as a property of its 16 seeds alone.

Issue 11 asks for all members >= the threshold in (a)-(c) and each run of (b)
within 20 s wall, start-up included. Runs (a)-(c) have the compile cache off, so
their wall times include compiling, whatever the state of the user's cache.
Wall times are of the whole process (`process_s`); `wall_s` is the run's own
figure from summary.json (from the interpreter's import of jaxrl57 to the end).
`--quick` runs fewer seeds, a smoke of the script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import command_line, write_results

CARTPOLE_SOLVED = 475.0
CATCH_SOLVED = 0.9


def _env(cache_dir: str | None) -> dict[str, str]:
    """The environment of one run: the jaxrl57 cache at `cache_dir`, or off."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "JAXRL57_CACHE_DIR", "JAXRL57_NO_COMPILE_CACHE"))}
    if cache_dir is None:
        env["JAXRL57_NO_COMPILE_CACHE"] = "1"
    else:
        env["JAXRL57_CACHE_DIR"] = cache_dir
    return env


def train(args: list[str], out: str, cache_dir: str | None = None) -> dict:
    """Runs `jaxrl57 train ARGS --no-progress --out OUT` in its own process."""
    cmd = [sys.executable, "-m", "jaxrl57.cli", "train", *args, "--no-progress", "--out", out]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(cache_dir))
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    finals = [m["final_eval_return"] for m in summary["per_member"]]
    return {"command": " ".join(["jaxrl57", "train", *args, "--no-progress"]),
            "final_eval_return": finals, "process_s": process_s,
            "wall_s": summary["wall_s"], "env_steps": summary["env_steps"]}


def _finals(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in xs) + "]"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="4 seeds in (a), seeds 0-1 in (b), 2 seeds in (c): a smoke")
    p.add_argument("--parts", default="a,b,c,d", help="which of a,b,c,d,e to run")
    p.add_argument("--repeats", type=int, default=1,
                   help="trials of (d), each with a fresh cache folder (default 1)")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "defaults_solve.json"))
    a = p.parse_args()
    parts = set(a.parts.split(","))
    if not parts <= set("abcde"):
        p.error(f"--parts takes a,b,c,d,e, got {a.parts!r}")
    sweep_seeds, single_seeds, catch_seeds = (4, 2, 2) if a.quick else (16, 8, 8)
    command = command_line()
    print(f"command: {command}\npython {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: dict = {"command": command, "quick": a.quick}
    with tempfile.TemporaryDirectory(prefix="defaults_solve-") as tmp:
        def out(name):
            return os.path.join(tmp, name)

        print(f"{'run':<44} {'>= thr':>7} {'process s':>10} {'wall s':>7}  final eval")

        def row(label, r, threshold=None):
            n = len(r["final_eval_return"])
            ok = (f"{sum(x >= threshold for x in r['final_eval_return'])}/{n}"
                  if threshold is not None else "")
            print(f"{label:<44} {ok:>7} {r['process_s']:>10.1f} {r['wall_s']:>7.1f}  "
                  f"{_finals(r['final_eval_return'])}", flush=True)

        if "a" in parts:
            r = train(["--seeds", str(sweep_seeds)], out("a"))
            r["solved"] = sum(x >= CARTPOLE_SOLVED for x in r["final_eval_return"])
            results["a_cartpole_seeds"] = r
            row(f"(a) train --seeds {sweep_seeds}", r, CARTPOLE_SOLVED)
        if "b" in parts:
            runs = []
            for seed in range(single_seeds):
                r = train(["--seed", str(seed)], out(f"b{seed}"))
                r["seed"] = seed
                runs.append(r)
                row(f"(b) train --seed {seed}", r, CARTPOLE_SOLVED)
            results["b_cartpole_single"] = {
                "runs": runs,
                "solved": sum(r["final_eval_return"][0] >= CARTPOLE_SOLVED for r in runs),
                "max_process_s": max(r["process_s"] for r in runs)}
        if "c" in parts:
            r = train(["dqn", "--env", "jax:Catch", "--seeds", str(catch_seeds)], out("c"))
            r["solved"] = sum(x >= CATCH_SOLVED for x in r["final_eval_return"])
            results["c_catch_seeds"] = r
            row(f"(c) train dqn --env jax:Catch --seeds {catch_seeds}", r, CATCH_SOLVED)
        if "e" in parts:
            fresh = 8 if a.quick else 32
            r = train(["--seed", "16", "--seeds", str(fresh)], out("e"))
            r["solved"] = sum(x >= CARTPOLE_SOLVED for x in r["final_eval_return"])
            results["e_cartpole_fresh_seeds"] = r
            row(f"(e) train --seed 16 --seeds {fresh}", r, CARTPOLE_SOLVED)
        if "d" in parts:
            trials = []
            for i in range(a.repeats):
                # A fresh cache folder per trial: "cold" compiles and fills it.
                cache = out(f"cache{i}")
                d = {"off": train([], out(f"d{i}_off"), None),
                     "cold": train([], out(f"d{i}_cold"), cache),
                     "warm": train([], out(f"d{i}_warm"), cache)}
                d["cache_entries"] = len(os.listdir(cache))
                d["cache_bytes"] = sum(os.path.getsize(os.path.join(cache, f))
                                       for f in os.listdir(cache))
                # The cache must not change what is computed.
                d["same_result"] = (d["off"]["final_eval_return"]
                                    == d["cold"]["final_eval_return"]
                                    == d["warm"]["final_eval_return"])
                trials.append(d)
                for k in ("off", "cold", "warm"):
                    row(f"(d) train, compile cache {k}", d[k])
                print(f"    cache: {d['cache_entries']} entries, {d['cache_bytes'] / 1e6:.1f} "
                      f"MB; same final eval in all three: {d['same_result']}")
            median = {k: statistics.median(t[k]["process_s"] for t in trials)
                      for k in ("off", "cold", "warm")}
            results["d_compile_cache"] = {"trials": trials, "median_process_s": median}
            print("    median process s: " + ", ".join(f"{k} {v:.1f}" for k, v in median.items()))
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
