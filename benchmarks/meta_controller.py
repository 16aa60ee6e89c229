"""Agent57's meta-controller on dense-reward tasks: is Agent57's final return at
least R2D2's, and do its bandits settle on the exploitative policies?

    python benchmarks/meta_controller.py [--tasks cartpole,memory] [--seeds 4]
                                         [--agents r2d2,agent57] [--json PATH]

For each task, each agent is one `jaxrl57 train AGENT --env ENV --seeds N
--steps S` program (the seeds vmapped, the compile cache off; S is R2D2's
default budget for the task, the same for both agents). Per seed it reports
the final greedy evaluation (Agent57's evaluator plays the arm with the best
mean extrinsic return over the last 3,600 episodes). From the run's checkpoint
(`checkpoint.load_leaves`) it reads the learner's record of every env's
episodes (`arm_returns`) and prints, per seed, the arm-choice histogram over
all training episodes and over the last 3,600, the share of those on the three
most exploitative arms (j = 0-2, the smallest intrinsic weights beta_j; a
uniform choice gives 3/N) and their mean beta_j against the family's mean.
Prints the tables and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
from _common import command_line, run_train, write_results

from jaxrl57 import bandit, checkpoint, configs, exploration

TASKS = {"cartpole": ("jax:CartPole-v1", 100_000), "memory": ("jax:MemoryChain", 40_000)}
EXPLOITATIVE = 3  # arms j = 0, 1, 2


def arm_record(path: str, member: int, betas: np.ndarray) -> dict:
    """What the learner recorded of one member's bandit-chosen episodes, read
    through `jaxrl57.bandit` (the evaluator's own window means and choice)."""
    leaves = checkpoint.load_leaves(path, contains=".agent.arm_returns.")
    record = bandit.UCBState(**{name: leaves[f".agent.arm_returns.{name}"][member]
                                for name in bandit.UCBState._fields})
    means, window = (np.asarray(x) for x in bandit.window_means(record))
    episodes = max(1, int(window.sum()))
    return {"pulls_all": record.pulls.tolist(), "pulls_window": window.astype(int).tolist(),
            "window_episodes": int(window.sum()),
            "exploitative_share_window": float(window[:EXPLOITATIVE].sum() / episodes),
            "mean_beta_window": float((window * betas).sum() / episodes),
            "evaluator_arm": int(bandit.greedy_arm(record)),
            "window_mean_return": [float(m) if n > 0 else None
                                   for m, n in zip(means, window, strict=True)]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="cartpole,memory")
    p.add_argument("--agents", default="r2d2,agent57")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "meta_controller.json"))
    a = p.parse_args()
    tasks, agents = a.tasks.split(","), a.agents.split(",")
    command = command_line()
    print(f"command: {command}\npython {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: dict = {"command": command, "runs": [], "programs": []}
    with tempfile.TemporaryDirectory(prefix="meta_controller-") as tmp:
        for task in tasks:
            env_id, steps = TASKS[task]
            print(f"\n{task} ({env_id}, {steps} env steps a seed)")
            print(f"{'agent':<8} {'seed':>4} {'final eval':>10} {'evaluator arm':>13} "
                  f"{'j<3 share':>9} {'mean beta':>9}")
            for agent in agents:
                out = os.path.join(tmp, f"{task}-{agent}")
                r = run_train([agent, "--env", env_id, "--seeds", str(a.seeds),
                               "--steps", str(steps)], out)
                results["programs"].append({"task": task, "agent": agent,
                                            "command": r["command"],
                                            "process_s": r["process_s"]})
                settings = configs.resolve(agent, env_id, {})
                bandit = getattr(settings.agent_config, "meta_controller", None) == "bandit"
                if bandit:
                    betas = np.asarray(exploration.ngu_betas(
                        settings.agent_config.num_policies, settings.hparams["intrinsic_beta"]))
                for member in range(a.seeds):
                    rows = [x for x in r["rows"] if int(x["member"]) == member]
                    rec = {"task": task, "agent": agent, "seed": int(rows[0]["seed"]),
                           "final_eval": float(rows[-1]["eval_return"]),
                           "eval_per_row": [float(x["eval_return"]) for x in rows]}
                    if bandit:
                        rec.update(arm_record(os.path.join(out, "checkpoint.jaxrl57"),
                                              member, betas))
                        rec["uniform_mean_beta"] = float(betas.mean())
                    results["runs"].append(rec)
                    arms = (f"{rec['evaluator_arm']:>13} {rec['exploitative_share_window']:>9.2f} "
                            f"{rec['mean_beta_window']:>9.3f}" if bandit else "")
                    print(f"{agent:<8} {rec['seed']:>4} {rec['final_eval']:>10.1f} {arms}",
                          flush=True)
                if bandit:
                    print(f"         uniform choice: j<3 share {EXPLOITATIVE / len(betas):.2f}, "
                          f"mean beta {betas.mean():.3f}")
                    print("         arm-choice histogram, last 3,600 episodes (j = 0 .. N-1):")
                    for rec in results["runs"][-a.seeds:]:
                        print(f"         seed {rec['seed']}: "
                              + " ".join(f"{n:>4}" for n in rec["pulls_window"]))
                print(f"{agent:<8} program: {r['process_s']:.0f} s for {a.seeds} seeds")
    print()
    for task in tasks:
        finals = {agent: [r["final_eval"] for r in results["runs"]
                          if r["task"] == task and r["agent"] == agent] for agent in agents}
        print(f"{task}: " + ", ".join(f"{agent} mean final eval {np.mean(v):.1f} "
                                      f"(min {np.min(v):.1f})" for agent, v in finals.items()))
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
