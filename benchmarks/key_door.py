"""KeyDoor (a sparse-reward gridworld whose episodes revisit states): does NGU's
episodic memory matter? The ablation of NGU's intrinsic reward against R2D2.

    python benchmarks/key_door.py [--variants ngu,lifelong,episodic,r2d2]
                                  [--size 8] [--seeds 4] [--steps 200000] [--json PATH]

Each variant is one `jaxrl57 train ... --env jax:KeyDoor --seeds N` program
(the seeds vmapped; the compile cache off, so the wall includes compiling):

    ngu        NGU's reward, episodic novelty times RND's modulator (NGU eq. 1)
    lifelong   NGU without the episodic term (`--set intrinsic_reward=lifelong`)
    episodic   NGU without the lifelong term (`--set intrinsic_reward=episodic`)
    r2d2       no intrinsic reward (the same network, sequences and update rate)
    agent57    Agent57 (split values, the bandit), and its ablations
               agent57_lifelong and agent57_episodic

`--set intrinsic_episodic=false` (Agent57 only) lets the intrinsic value run on
through the goal's termination.

Per seed: the training episodes that reached the goal (the return is 1 or 0,
so a row's mean return times its episodes counts them), the env steps before
the first, and the greedy evaluation (NGU: the exploitative policy j = 0;
Agent57: the evaluator's arm) at the end and at its best. A uniformly random
policy reaches the goal in about 1 episode of 680 at size 8 (tests/test_key_door.py).
Prints the table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from _common import command_line, run_train, write_results

VARIANTS = {
    "ngu": ["ngu"],
    "lifelong": ["ngu", "--set", "intrinsic_reward=lifelong"],
    "episodic": ["ngu", "--set", "intrinsic_reward=episodic"],
    "r2d2": ["r2d2"],
    "agent57": ["agent57"],
    "agent57_lifelong": ["agent57", "--set", "intrinsic_reward=lifelong"],
    "agent57_episodic": ["agent57", "--set", "intrinsic_reward=episodic"],
}


def member_record(rows: list[dict]) -> dict:
    """One member's rows -> goals found in training, first goal, evaluations."""
    goals = [round(float(r["episode_return"] or 0) * int(r["episodes"])) for r in rows]
    episodes = sum(int(r["episodes"]) for r in rows)
    first = next((int(r["env_steps"]) for r, g in zip(rows, goals, strict=True) if g > 0), None)
    evals = [float(r["eval_return"]) for r in rows]
    return {"train_goals": sum(goals), "train_episodes": episodes,
            "first_goal_env_steps": first, "final_eval": evals[-1], "best_eval": max(evals),
            "goals_per_row": goals, "eval_per_row": evals}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="ngu,lifelong,episodic,r2d2")
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=200_000, help="env steps per seed")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="passed to every run")
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "key_door.json"))
    a = p.parse_args()
    variants = a.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    command = command_line()
    print(f"command: {command}\npython {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: dict = {"command": command, "size": a.size, "steps": a.steps, "runs": []}
    print(f"\n{'variant':<9} {'seed':>4} {'goals':>6} {'episodes':>8} {'first goal':>10} "
          f"{'final eval':>10} {'best eval':>9}")
    with tempfile.TemporaryDirectory(prefix="key_door-") as tmp:
        for variant in variants:
            extra = [x for s in a.set for x in ("--set", s)]
            r = run_train([*VARIANTS[variant], "--env", "jax:KeyDoor", "--env-arg",
                           f"size={a.size}", "--seeds", str(a.seeds), "--steps", str(a.steps),
                           *extra], os.path.join(tmp, variant))
            for member in range(a.seeds):
                rec = member_record([x for x in r["rows"] if int(x["member"]) == member])
                rec.update(variant=variant, seed=int(r["rows"][member]["seed"]))
                results["runs"].append(rec)
                first = rec["first_goal_env_steps"]
                print(f"{variant:<9} {rec['seed']:>4} {rec['train_goals']:>6} "
                      f"{rec['train_episodes']:>8} {'-' if first is None else first:>10} "
                      f"{rec['final_eval']:>10.2f} {rec['best_eval']:>9.2f}", flush=True)
            results.setdefault("programs", []).append(
                {"variant": variant, "command": r["command"], "process_s": r["process_s"]})
            print(f"{variant:<9} program: {r['process_s']:.0f} s for {a.seeds} seeds")
    print()
    for variant in variants:
        runs = [r for r in results["runs"] if r["variant"] == variant]
        print(f"{variant}: seeds that found the goal in training "
              f"{sum(r['train_goals'] > 0 for r in runs)}/{len(runs)}, greedy at the goal "
              f"at the end {sum(r['final_eval'] >= 0.5 for r in runs)}/{len(runs)}")
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
