"""The cost of a sweep on EnvPool: K members in one env batch against K single runs.

    python benchmarks/envpool_sweep.py [--env CartPole-v1] [--members 4] [--rows 2]
                                       [--steps N] [--set NAME=VALUE ...] [--json PATH]

Issue 5, point 4: `--seeds K` on an EnvPool env folds the members into one env batch
(K x M envs) and vmaps the agent over them (`runners.envpool_loop`). Measured in one
process, for the `dqn` preset with the env family's defaults (CartPole-v1: MLP 64x64,
8 envs per member, 4 updates per batch step) and the same env steps per member:

  sequential: K single-member drivers (seeds 0..K-1), one after another;
  folded:     one K-member driver.

Times are the wall time of `--rows` log rows (acting, env steps, updates, one greedy
evaluation per row), after a warm-up row of each driver that compiles everything
(construction and compilation are reported apart). Goal: sequential / folded >= 2.5
for 4 members on CartPole-v1 on this CPU; on a GPU, Pong-v5 with 4 members within 1.5x
of one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
from _common import command_line, write_results

from jaxrl57 import configs
from jaxrl57.build import make_driver


def timed_rows(driver, rows: int) -> tuple[float, list[list[dict]]]:
    t0 = time.perf_counter()
    out = [driver.run_row() for _ in range(rows)]
    return time.perf_counter() - t0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--rows", type=int, default=2, help="timed rows (after one warm-up row)")
    p.add_argument("--steps", type=int, default=None,
                   help="env steps per member per row (default: the family's row size)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "envpool_sweep.json"))
    a = p.parse_args()
    overrides = dict(kv.split("=", 1) for kv in a.set)
    rows_total = a.rows + 1
    overrides.setdefault("num_rows", str(rows_total))
    probe = configs.resolve("dqn", a.env, overrides)
    per_row = a.steps or probe.run_config.total_steps // probe.run_config.num_rows
    s = configs.resolve("dqn", a.env, overrides, steps=per_row * rows_total)
    K = a.members

    def build(seeds):
        t0 = time.perf_counter()
        d = make_driver(a.env, s, [s.hparams] * len(seeds), seeds)
        d.run_row()  # warm-up: compiles act, observe, update, evaluation
        return d, time.perf_counter() - t0

    seq_times, seq_setup = [], 0.0
    for seed in range(K):
        d, setup = build([seed])
        seq_setup += setup
        seq_times.append(timed_rows(d, a.rows)[0])
        d.envs.close()
        d.eval_envs.close()
    folded, fold_setup = build(list(range(K)))
    fold_time, fold_rows = timed_rows(folded, a.rows)
    seq_time = sum(seq_times)
    steps = a.rows * s.run_config.steps_per_row
    res = {
        "command": command_line(),
        "device": f"{jax.devices()[0].platform} {jax.devices()[0].device_kind}",
        "jax": jax.__version__, "python": platform.python_version(), "env": a.env,
        "members": K, "env_steps_per_member": steps, "num_envs_per_member":
        s.run_config.num_envs, "sequential_s": seq_time, "sequential_each_s": seq_times,
        "folded_s": fold_time, "speedup": seq_time / fold_time,
        "sequential_setup_s": seq_setup, "folded_setup_s": fold_setup,
        "single_sps": steps / (seq_time / K), "folded_sps_all_members": K * steps / fold_time,
        "final_eval_per_member": [r["eval_return"] for r in fold_rows[-1]],
    }
    print(f"command: {res['command']}\ndevice: {res['device']}, jax {jax.__version__}")
    print(f"{K} members x {steps} env steps on {a.env} "
          f"({s.run_config.num_envs} envs per member), timed after a warm-up row")
    print(f"{'run':<34} {'wall s':>9} {'env steps/s (all)':>18}")
    print("-" * 63)
    print(f"{'sequential (K single runs)':<34} {seq_time:>9.2f} {K * steps / seq_time:>18.0f}")
    print(f"{'folded (one K-member run)':<34} {fold_time:>9.2f} {K * steps / fold_time:>18.0f}")
    print(f"speedup sequential / folded: {res['speedup']:.2f} (goal >= 2.5 for 4 members)")
    print(f"setup incl. compile: sequential {seq_setup:.1f} s, folded {fold_setup:.1f} s")
    write_results(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
