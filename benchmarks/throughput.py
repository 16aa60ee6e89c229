"""Throughput of the runners on CartPole, and the cost of a vmapped sweep.

    python benchmarks/throughput.py [--steps N] [--rows R] [--reps 3] [--json PATH]

(a) on-device runner (`make_runner`) on `jax:CartPole-v1`, default `dqn` settings:
    env steps/s of `run_rows`, jitted one row at a time, after a compiled warm-up row.
(b) synchronous EnvPool loop (`EnvPoolDriver.run_row`) on EnvPool `CartPole-v1`, same
    settings, after a warm-up row; reference: raw EnvPool random-policy steps/s at the
    same `num_envs`, measured in the same process (ratio = loop / raw).
(c) sweep cost: wall time of one row of `JaxDriver` with K=8 seeds (one vmapped program)
    over K=1, the same env steps per member, both compiled first, timed alternately
    `--reps` times; the medians give ratio = t8 / t1 (goal <= 3; 8 would mean no gain
    over running the seeds one after another).

(d) the same question asked of the command line: wall time of the whole
    `jaxrl57 train --seeds 8` over `jaxrl57 train --seeds 1` (default run, process start,
    imports, compilation and evaluation included; separate processes, run one after the
    other), ratio goal <= 3.

A "row" is `--steps` env steps per member (the run is configured with 10 rows of that
size, so the learning-rate schedule is that of a 10-row run). Rows include the runner's
per-row greedy evaluation (10 episodes, a fixed 500-step scan on the device), as in a
real run. Timings block on the results (`block_until_ready` / host transfer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from _common import run_record, write_results

from jaxrl57.runners.devices import expose_host_cores

expose_host_cores()  # as the command line does, before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxrl57 import configs, envs  # noqa: E402
from jaxrl57.agents.dqn import DQNHParams, make_dqn  # noqa: E402
from jaxrl57.build import make_driver  # noqa: E402
from jaxrl57.runners.on_device import make_runner  # noqa: E402

NUM_ROWS = 10  # rows of the configured run; --steps sets their size
OVERRIDES: dict[str, str] = {}  # --set NAME=VALUE


def settings_for(env_id: str, steps_per_row: int):
    return configs.resolve("dqn", env_id, {**OVERRIDES, "num_rows": str(NUM_ROWS)},
                           steps=steps_per_row * NUM_ROWS)


def bench_on_device(steps_per_row: int, rows: int) -> dict:
    s = settings_for("jax:CartPole-v1", steps_per_row)
    env = envs.make_env("jax:CartPole-v1")
    agent = make_dqn(s.agent_config, env.spec, s.run_config.num_envs)
    init, run_rows = make_runner(agent, env, s.run_config)
    one_row = jax.jit(lambda st: run_rows(st, 1), donate_argnums=0)
    state = jax.jit(init)(jax.random.PRNGKey(0), DQNHParams.create(**s.hparams))
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(one_row(state))  # compile + warm-up row
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rows):
        state, out = one_row(state)
    jax.block_until_ready((state, out))
    dt = time.perf_counter() - t0
    steps = rows * s.run_config.steps_per_row
    return {"env_steps": steps, "seconds": dt, "sps": steps / dt,
            "compile_and_warmup_s": compile_s, "num_envs": s.run_config.num_envs}


def bench_envpool(steps_per_row: int, rows: int) -> dict:
    import envpool

    from jaxrl57.envs.envpool_env import envpool_kwargs

    s = settings_for("CartPole-v1", steps_per_row)
    E = s.run_config.num_envs
    driver = make_driver("CartPole-v1", s, [s.hparams], [0])
    t0 = time.perf_counter()
    driver.run_row()  # compile + warm-up row
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rows):
        driver.run_row()
    dt = time.perf_counter() - t0
    steps = rows * s.run_config.steps_per_row

    # Reference: raw EnvPool, random actions, same num_envs, same number of env steps.
    pool = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=E, seed=0,
                        **envpool_kwargs("CartPole-v1", train=True))
    pool.reset()
    rng = np.random.default_rng(0)
    n_iter = steps // E
    acts = rng.integers(0, 2, size=(n_iter, E)).astype(np.int32)
    for a in acts[:100]:  # warm-up
        pool.step(a)
    t0 = time.perf_counter()
    for a in acts:
        pool.step(a)
    raw_dt = time.perf_counter() - t0
    raw_sps = n_iter * E / raw_dt
    return {"env_steps": steps, "seconds": dt, "sps": steps / dt,
            "compile_and_warmup_s": compile_s, "num_envs": E,
            "raw_envpool_sps": raw_sps, "ratio_loop_over_raw": (steps / dt) / raw_sps}


def bench_sweep(steps_per_row: int, reps: int, k: int = 8) -> dict:
    s = settings_for("jax:CartPole-v1", steps_per_row)
    drivers = {n: make_driver("jax:CartPole-v1", s, [s.hparams] * n, list(range(n)))
               for n in (1, k)}
    compile_s = {}
    for n, d in drivers.items():  # compile + warm-up row each
        t0 = time.perf_counter()
        d.run_row()
        compile_s[n] = time.perf_counter() - t0
    times: dict[int, list[float]] = {1: [], k: []}
    for _ in range(reps):  # interleaved, so background load hits both alike
        for n, d in drivers.items():
            t0 = time.perf_counter()
            d.run_row()  # returns host floats: blocks on the result
            times[n].append(time.perf_counter() - t0)
    t1, tk = statistics.median(times[1]), statistics.median(times[k])
    steps = s.run_config.steps_per_row
    return {"k": k, "env_steps_per_member": steps, "t1_s": t1, f"t{k}_s": tk,
            "times_1": times[1], f"times_{k}": times[k], "ratio": tk / t1,
            "sps_1": steps / t1, f"sps_{k}": k * steps / tk,
            "compile_and_warmup_s": {str(n): v for n, v in compile_s.items()}}


def bench_command(k: int = 8) -> dict:
    import subprocess
    import tempfile

    code = "import sys; from jaxrl57.cli import main; sys.exit(main(sys.argv[1:]))"
    extra = [a for item in OVERRIDES.items() for a in ("--set", "=".join(item))]
    out: dict = {"k": k}
    for n in (1, k):
        with tempfile.TemporaryDirectory() as run_dir:
            argv = ["train", "--seeds", str(n), "--out", run_dir, "--no-progress", *extra]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, *argv], check=True,
                           capture_output=True)
            out[f"wall_{n}_s"] = time.perf_counter() - t0
            with open(os.path.join(run_dir, "summary.json")) as f:
                out[f"final_eval_{n}"] = [m["final_eval_return"]
                                          for m in json.load(f)["per_member"]]
    out["ratio"] = out[f"wall_{k}_s"] / out["wall_1_s"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="jaxrl57 throughput benchmark (CartPole).")
    p.add_argument("--steps", type=int, default=1000,
                   help="env steps per member in one row (default 1000)")
    p.add_argument("--rows", type=int, default=2, help="timed rows in (a) and (b)")
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions in (c)")
    p.add_argument("--only", default="abcd", help="parts to run, e.g. 'ac'")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a setting of the default dqn run, as `jaxrl57 train --set`")
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "throughput.json"))
    a = p.parse_args()
    OVERRIDES.update(item.split("=", 1) for item in a.set)

    results = run_record(steps_per_row=a.steps, rows=a.rows, reps=a.reps)
    t_all = time.perf_counter()
    if "a" in a.only:
        results["on_device"] = bench_on_device(a.steps, a.rows)
    if "b" in a.only:
        try:
            results["envpool"] = bench_envpool(a.steps, a.rows)
        except ImportError as e:
            results["envpool"] = {"skipped": str(e)}
    if "c" in a.only:
        results["sweep"] = bench_sweep(a.steps, a.reps)
    if "d" in a.only:
        results["cli"] = bench_command()
    results["total_s"] = time.perf_counter() - t_all

    print()
    print(f"{'measurement':<46} {'value':>12}  note")
    print("-" * 90)
    if "on_device" in results:
        r = results["on_device"]
        print(f"{'(a) on-device runner, jax:CartPole-v1 [sps]':<46} {r['sps']:>12,.0f}  "
              f"{r['env_steps']} steps in {r['seconds']:.2f} s; compile+warm-up "
              f"{r['compile_and_warmup_s']:.1f} s")
    if "envpool" in results and "sps" in results["envpool"]:
        r = results["envpool"]
        print(f"{'(b) EnvPool loop, CartPole-v1 [sps]':<46} {r['sps']:>12,.0f}  "
              f"{r['env_steps']} steps in {r['seconds']:.2f} s")
        print(f"{'    raw EnvPool, random policy [sps]':<46} {r['raw_envpool_sps']:>12,.0f}  "
              f"num_envs {r['num_envs']}, same process")
        print(f"{'    ratio loop / raw':<46} {r['ratio_loop_over_raw']:>12.4f}")
    elif "envpool" in results:
        print(f"(b) skipped: {results['envpool']['skipped']}")
    if "sweep" in results:
        r = results["sweep"]
        k = r["k"]
        print(f"{'(c) t1: one row, K=1 [s]':<46} {r['t1_s']:>12.3f}  "
              f"median of {[round(t, 3) for t in r['times_1']]}")
        print(f"{f'    t{k}: one row, K={k} [s]':<46} {r[f't{k}_s']:>12.3f}  "
              f"median of {[round(t, 3) for t in r[f'times_{k}']]}")
        print(f"{f'    ratio = t{k} / t1':<46} {r['ratio']:>12.2f}  goal <= 3; "
              f"{r['env_steps_per_member']} steps per member")
    if "cli" in results:
        r = results["cli"]
        k = r["k"]
        print(f"{'(d) jaxrl57 train --seeds 1, wall [s]':<46} {r['wall_1_s']:>12.1f}  "
              f"final eval {r['final_eval_1']}")
        print(f"{f'    jaxrl57 train --seeds {k}, wall [s]':<46} {r[f'wall_{k}_s']:>12.1f}  "
              f"final eval {r[f'final_eval_{k}']}")
        print(f"{f'    ratio = wall{k} / wall1':<46} {r['ratio']:>12.2f}  goal <= 3")
    print(f"total {results['total_s']:.1f} s (incl. compilation)")

    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
