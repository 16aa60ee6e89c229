"""Our DDPG against CleanRL's `ddpg_continuous_action_jax.py` on Pendulum-v1, wall to -200.

    python benchmarks/ddpg_vs_cleanrl.py --cleanrl-python /tmp/cleanrl-venv/bin/python \\
        --cleanrl-script /tmp/ddpg_continuous_action_jax.py [--seeds 0,1,2,3] \\
        [--cleanrl-steps 25000] [--runs ours,cleanrl] [--compile-cache] [--json PATH]

For each seed, in turn (ours first on even positions of `--seeds`, CleanRL's
first on odd ones, so that machine noise hits both), one process each:

  ours:    `python -m jaxrl57.cli train ddpg --env jax:Pendulum-v1 --seed S
           --no-progress --out DIR` with its defaults (15,000 env steps, 4 envs,
           one update per env step from step 1,000, OU noise; 10 rows, each with
           the mean return of the training episodes that ended in it and a greedy
           evaluation of 100 episodes). The compile cache is off unless
           `--compile-cache`, so compiling counts, as it does for CleanRL's run.
  CleanRL: their script, unmodified, `--env-id Pendulum-v1 --total-timesteps T
           --learning-starts 1000 --seed S` (T = `--cleanrl-steps`) and their
           defaults otherwise: 256x256 actor and critic, Adam 3e-4, batch 256,
           tau 0.005, Gaussian exploration noise 0.1 x action scale, actor and
           targets updated every 2nd step, 1 env, one update per env step, no
           evaluation. CleanRL trains from step 1,000 like ours.

The criterion, for both: the wall time from process launch at which the
training-episode return reaches -200. CleanRL logs each episode; its return
there is the mean of the last 10 episodes (2,000 steps; none before the 10th).
Ours logs per row (1,500 env steps, 4 or 8 episodes across its 4 envs); its
return there is the first row whose `episode_return` (the mean over the episodes
that ended in the row) is >= -200, at the row's wall time, so ours is seen
only at row ends. Ours' training episodes carry its OU noise (theta 0.15, sigma
0.2 in action scales), CleanRL's a Gaussian of 0.1: a training return measures
the policy with its noise. So the table also gives ours' first row whose greedy
evaluation is >= -200, and a second ratio of CleanRL's training crossing to it.
Ours' times are the rows' `wall_s` (from `jaxrl57.cli`'s import) plus the launch
offset, the least delay seen between a row's `wall_s` and this script finding
the row in metrics.csv (polled every 50 ms). Ours' wall includes its
evaluations (100 episodes a row); CleanRL's has none.

CleanRL's script imports `torch.utils.tensorboard.SummaryWriter` and
`cleanrl_utils.buffers.ReplayBuffer` (torch tensors), though it learns with JAX
alone. PyTorch is not installed (its wheels are gigabytes, CUDA included), so
those two imports are served by `benchmarks/cleanrl_shim/` (put first on
PYTHONPATH): a SummaryWriter that writes each scalar with its wall time since
launch (`CLEANRL_SHIM_LAUNCH_TIME`, set here just before the launch) to
`runs/RUN/scalars.jsonl`, and a ReplayBuffer written anew in NumPy with the
interface and uniform sampling of CleanRL's (README.md there). Nothing of
CleanRL's code is copied here.

CleanRL pins Python < 3.11 and jax 0.4.8 / jaxlib 0.4.7 / flax 0.6.8 / optax
0.1.4 / chex 0.1.5 / numpy 1.24.4, and the script needs gymnasium 0.29
(`infos["final_info"]`). Their own venv, as close as PyPI allows on Python
3.11 (no jaxlib before 0.4.13 there; chex 0.1.5 fails on jax 0.4.13):

    python3 -m venv /tmp/cleanrl-venv
    /tmp/cleanrl-venv/bin/pip install jax==0.4.13 jaxlib==0.4.13 flax==0.6.8 \\
        optax==0.1.4 chex==0.1.7 numpy==1.24.4 'scipy<1.13' gymnasium==0.29.1 tyro==0.5.10
    # CLEANRL: a clone of github.com/vwxyzjn/cleanrl; the commit of the figures:
    C=fe8d8a03c41a7ef5b523e2e354bd01c363e786bb
    git -C CLEANRL show $C:cleanrl/ddpg_continuous_action_jax.py >/tmp/ddpg_continuous_action_jax.py

Note on CleanRL's script: the target action is clipped to [-1, 1]
(`# TODO: proper clip`, cleanrl#196) while Pendulum's torque bounds are [-2, 2];
we run it as it is.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from _common import command_line, write_results

THRESHOLD = -200.0
WINDOW = 10  # CleanRL episodes in its moving mean
ENV = "jax:Pendulum-v1"
HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "cleanrl_shim")
CLEANRL_VERSIONS = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "gymnasium", "tyro")


def _ours_env(compile_cache: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE",
                                "JAXRL57_NO_COMPILE_CACHE"))}
    if not compile_cache:
        env["JAXRL57_NO_COMPILE_CACHE"] = "1"
    return env


def _read_rows(path: str) -> list[dict]:
    """metrics.csv's rows as floats; an empty field (NaN: no episode ended) as None."""
    with open(path) as f:
        return [{k: float(v) if v else None for k, v in r.items()} for r in csv.DictReader(f)]


def _first(pairs, pred):
    """The first item of `pairs` for which `pred` holds, or None."""
    return next((p for p in pairs if pred(p)), None)


def run_ours(seed: int, out: str, compile_cache: bool, extra: list[str]) -> dict:
    """One `jaxrl57 train ddpg` process; its rows, crossings and wall figures."""
    cmd = [sys.executable, "-m", "jaxrl57.cli", "train", "ddpg", "--env", ENV,
           "--seed", str(seed), *extra, "--no-progress", "--out", out]
    metrics = os.path.join(out, "metrics.csv")
    seen: list[float] = []  # when each row was first found in metrics.csv, from launch
    mtime = None
    with open(out + ".log", "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=_ours_env(compile_cache))
        while proc.poll() is None:
            time.sleep(0.05)
            try:
                m = os.stat(metrics).st_mtime_ns
            except FileNotFoundError:
                continue
            if m != mtime:
                mtime, t = m, time.perf_counter() - t0
                with open(metrics) as f:
                    n = max(sum(1 for _ in f) - 1, 0)
                seen += [t] * (n - len(seen))
        process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        with open(out + ".log") as f:
            raise SystemExit(f"{shlex.join(cmd)} exited {proc.returncode}:\n{f.read()[-2000:]}")
    rows = _read_rows(metrics)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    # Launch to jaxrl57.cli's start: a row is written after its wall_s is taken.
    offset = min((s - r["wall_s"] for s, r in zip(seen, rows, strict=False)), default=0.0)
    offset = max(offset, 0.0)

    def crossing(key):
        r = _first(rows, lambda r: r[key] is not None and r[key] >= THRESHOLD)
        return (None if r is None else
                {"wall_s": r["wall_s"] + offset, "env_steps": int(r["env_steps"]), key: r[key]})

    return {
        "command": shlex.join(["jaxrl57", *cmd[3:-2]]),
        "train_crossing": crossing("episode_return"),
        "eval_crossing": crossing("eval_return"),
        "final_episode_return": rows[-1]["episode_return"],
        "final_eval_return": rows[-1]["eval_return"],
        "env_steps": int(summary["env_steps"]), "process_s": process_s,
        "steps_per_s": summary["env_steps"] / process_s, "own_sps": summary["sps"],
        "run_wall_s": summary["wall_s"], "launch_offset_s": offset,
        "rows": [{k: r[k] for k in ("env_steps", "episode_return", "episodes", "eval_return",
                                    "wall_s")} for r in rows],
    }


def run_cleanrl(seed: int, out: str, python: str, script: str, steps: int) -> dict:
    """One process of CleanRL's script through the shim; its episodes and crossing."""
    args = ["--env-id", "Pendulum-v1", "--total-timesteps", str(steps),
            "--learning-starts", "1000", "--seed", str(seed)]
    os.makedirs(out)
    env = {**os.environ, "PYTHONPATH": SHIM}
    with open(os.path.join(out, "stdout.log"), "w") as log:
        env["CLEANRL_SHIM_LAUNCH_TIME"] = repr(time.time())
        t0 = time.perf_counter()
        proc = subprocess.run([python, script, *args], stdout=log, stderr=subprocess.STDOUT,
                              cwd=out, env=env)
        process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        with open(os.path.join(out, "stdout.log")) as f:
            raise SystemExit(f"CleanRL {shlex.join(args)} exited {proc.returncode}:\n"
                             f"{f.read()[-2000:]}")
    (scalars,) = glob.glob(os.path.join(out, "runs", "*", "scalars.jsonl"))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    episodes = [r for r in records if r["tag"] == "charts/episodic_return"]
    sps = [r["value"] for r in records if r["tag"] == "charts/SPS"]
    returns = [e["value"] for e in episodes]
    means = [{"wall_s": e["wall_s"], "env_steps": e["step"] + 1,
              "episode_return": statistics.fmean(returns[i - WINDOW + 1:i + 1])}
             for i, e in enumerate(episodes) if i >= WINDOW - 1]
    return {
        "command": shlex.join([os.path.basename(script), *args]),
        "train_crossing": _first(means, lambda m: m["episode_return"] >= THRESHOLD),
        "final_episode_return": means[-1]["episode_return"] if means else None,
        "env_steps": steps, "process_s": process_s, "steps_per_s": steps / process_s,
        "own_sps": sps[-1] if sps else None,
        "episodes": [{k: e[k] for k in ("step", "value", "wall_s")} for e in episodes],
    }


def _cleanrl_versions(python: str, script: str) -> dict:
    code = ("import json, sys; from importlib import metadata; "
            "print(json.dumps({'python': sys.version.split()[0], "
            f"**{{n: metadata.version(n) for n in {CLEANRL_VERSIONS!r}}}}}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    with open(script, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return {**json.loads(out), "script": os.path.abspath(script), "script_sha256": sha}


def _ours_versions() -> dict:
    git = ["git", "-C", os.path.dirname(HERE)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "jaxrl57"],
                           capture_output=True, text=True).stdout.split("\n")
    return {"python": sys.version.split()[0],
            **{n: metadata.version(n) for n in ("jax", "jaxlib", "flax", "optax", "numpy")},
            "git_head": head.strip(), "modified_in_jaxrl57": [d[3:] for d in dirty if d]}


def _cross(c: dict | None) -> str:
    return "never" if c is None else f"{c['wall_s']:6.1f} s @{c['env_steps']:>6}"


def _num(x, fmt=".4g") -> str:
    return "-" if x is None else format(x, fmt)


def _ratio(a: dict | None, b: dict | None) -> float | None:
    return None if a is None or b is None else a["wall_s"] / b["wall_s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cleanrl-python", help="the python of CleanRL's venv (see above)")
    p.add_argument("--cleanrl-script", help="ddpg_continuous_action_jax.py, as CleanRL has it")
    p.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds (default 0,1,2,3)")
    p.add_argument("--cleanrl-steps", type=int, default=25_000,
                   help="CleanRL's --total-timesteps (default 25000)")
    p.add_argument("--runs", default="ours,cleanrl", help="which of ours,cleanrl to run")
    p.add_argument("--compile-cache", action="store_true",
                   help="let ours use the persistent compile cache (off by default)")
    p.add_argument("--ours-args", default="",
                   help="extra arguments for ours' train command, e.g. '--set tau=0.01'")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "ddpg_vs_cleanrl.json"))
    a = p.parse_args()
    runs = set(a.runs.split(","))
    if not runs or not runs <= {"ours", "cleanrl"}:
        p.error(f"--runs takes ours,cleanrl, got {a.runs!r}")
    if "cleanrl" in runs and not (a.cleanrl_python and a.cleanrl_script):
        p.error("CleanRL's run needs --cleanrl-python and --cleanrl-script")
    seeds = [int(s) for s in a.seeds.split(",")]
    extra = shlex.split(a.ours_args)
    results: dict = {"command": command_line(), "threshold": THRESHOLD,
                     "cleanrl_window_episodes": WINDOW, "compile_cache": a.compile_cache,
                     "ours_versions": _ours_versions(), "cpus": os.cpu_count()}
    print(f"command: {results['command']}")
    print(f"ours: {json.dumps(results['ours_versions'])}")
    if "cleanrl" in runs:
        results["cleanrl_versions"] = _cleanrl_versions(a.cleanrl_python, a.cleanrl_script)
        print(f"CleanRL: {json.dumps(results['cleanrl_versions'])}")
    head = (f"{'run':<12} {'train >= -200':>17} {'eval >= -200':>17} {'final train':>12} "
            f"{'final eval':>11} {'process s':>10} {'steps/s':>8}")
    print(head)
    records = []
    with tempfile.TemporaryDirectory(prefix="ddpg_vs_cleanrl-") as tmp:
        for i, seed in enumerate(seeds):
            rec: dict = {"seed": seed}
            order = ["ours", "cleanrl"] if i % 2 == 0 else ["cleanrl", "ours"]
            for name in (n for n in order if n in runs):
                if name == "ours":
                    r = run_ours(seed, os.path.join(tmp, f"ours{seed}"), a.compile_cache, extra)
                    ev, fe = _cross(r["eval_crossing"]), _num(r["final_eval_return"])
                else:
                    r = run_cleanrl(seed, os.path.join(tmp, f"cleanrl{seed}"),
                                    a.cleanrl_python, a.cleanrl_script, a.cleanrl_steps)
                    ev, fe = "no eval", "-"
                rec[name] = r
                print(f"{name + ' ' + str(seed):<12} {_cross(r['train_crossing']):>17} {ev:>17} "
                      f"{_num(r['final_episode_return']):>12} {fe:>11} "
                      f"{r['process_s']:>10.1f} {r['steps_per_s']:>8.0f}", flush=True)
            if runs == {"ours", "cleanrl"}:
                cl = rec["cleanrl"]["train_crossing"]
                rec["ratio_train"] = _ratio(cl, rec["ours"]["train_crossing"])
                rec["ratio_train_vs_ours_eval"] = _ratio(cl, rec["ours"]["eval_crossing"])
            records.append(rec)
    results["seeds"] = records
    if runs == {"ours", "cleanrl"}:
        print("CleanRL / ours, wall to -200 (training return both / CleanRL training vs "
              "ours greedy eval):")
        for key in ("ratio_train", "ratio_train_vs_ours_eval"):
            vals = [r[key] for r in records if r[key] is not None]
            med = statistics.median(vals) if vals else None
            results[f"median_{key}"] = med
            results[f"seeds_with_{key}"] = len(vals)
            print(f"  {key:<26} per seed " + ", ".join(_num(r[key], ".2f") for r in records)
                  + f"; median {_num(med, '.2f')} over {len(vals)} of {len(records)} seeds")
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
