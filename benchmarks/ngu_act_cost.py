"""What NGU's and Agent57's actors cost per env step against R2D2's, on Atari shapes.

    python benchmarks/ngu_act_cost.py [--envs 8] [--reps 20] [--json PATH]

One jitted `actor.act` of each preset's Atari configuration (uint8 [4, 84, 84]
frame stacks, 18 actions as MontezumaRevenge-v5) for E envs, timed after a
compiled warm-up, blocking on the result, alternating the agents `--reps` times
(the ratio is taken within each round; this machine is shared): R2D2 (Nature CNN,
LSTM 512, dueling head); NGU adds the embedding network, RND's target and
predictor, and the exact 10-nearest-neighbour search of every env's episodic
memory of 30,000 embeddings of 32 floats, which is full here (the worst case: the
search scans the whole ring); Agent57 adds its second value network and the
bandits. A fourth row times the episodic memory step alone (the kNN search, the
reward of Algorithm 1 and the write, `intrinsic.episodic_memory_step` vmapped
over the same full memories), the cost the memory adds to an act whatever the
networks. Prints the table (seconds per act, ratio to R2D2, actor-state bytes
per env) and writes JSON. The issue's goal: the episodic kNN per env step at
most 2x R2D2's act.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import run_record, write_results

from jaxrl57 import configs, intrinsic
from jaxrl57.envs.base import EnvSpec

SPEC = EnvSpec("MontezumaRevenge-v5", (4, 84, 84), np.uint8, num_actions=18)


def _actor(agent_name: str, num_envs: int):
    s = configs.resolve(agent_name, "MontezumaRevenge-v5", {
        "replay_capacity": "8", "batch_size": "4", "learning_starts": "4"})
    agent = s.family.make(s.agent_config, SPEC, num_envs)
    learner = jax.jit(agent.init)(jax.random.PRNGKey(0), s.family.hparams_cls.create(**s.hparams))
    view = agent.view(learner)
    actor = agent.actor.init(view, num_envs)
    if hasattr(actor, "memory"):  # a full memory: the search scans every slot
        memory = actor.memory
        actor = actor._replace(memory=memory._replace(
            embeddings=jax.random.normal(jax.random.PRNGKey(1), memory.embeddings.shape),
            size=jnp.full_like(memory.size, memory.embeddings.shape[1]),
            mean_sq_distance=jnp.ones_like(memory.mean_sq_distance),
            distance_count=jnp.ones_like(memory.distance_count)))
    act = jax.jit(agent.actor.act)
    obs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (num_envs, 4, 84, 84),
                                                        np.uint8))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(actor)) / num_envs
    return act, view, actor, obs, state_bytes


def _memory_step(ngu_actor, num_envs: int):
    """`_actor`'s shape for the episodic memory step alone, on NGU's full memories."""
    act, view, actor, obs, state_bytes = ngu_actor
    memory = actor.memory
    step = jax.jit(lambda view, memory, emb, key: jax.vmap(
        intrinsic.episodic_memory_step)(memory, emb))
    emb = jax.random.normal(jax.random.PRNGKey(2), (num_envs, memory.embeddings.shape[-1]))
    return step, view, memory, emb, memory.embeddings.nbytes / num_envs


def _time(act, view, actor, obs, key) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(act(view, actor, obs, key))
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "ngu_act_cost.json"))
    a = p.parse_args()
    record = run_record(envs=a.envs, reps=a.reps)
    names = ("r2d2", "ngu", "agent57", "knn")
    actors = {n: _actor(n, a.envs) for n in names[:3]}
    actors["knn"] = _memory_step(actors["ngu"], a.envs)
    for act, view, actor, obs, _ in actors.values():  # compile and warm up
        _time(act, view, actor, obs, jax.random.PRNGKey(0))
    times = {n: [] for n in names}
    for i in range(a.reps):
        for n, (act, view, actor, obs, _) in actors.items():
            times[n].append(_time(act, view, actor, obs, jax.random.PRNGKey(i)))
    rows = {}
    print(f"\n{'agent':<8} {'act s (median)':>14} {'x r2d2':>7} {'actor state / env':>18}"
          f"   (knn: the episodic memory step alone, its state the memory)")
    for n in names:
        ratios = [t / r for t, r in zip(times[n], times["r2d2"], strict=True)]
        rows[n] = {"act_s": statistics.median(times[n]), "times_s": times[n],
                   "ratio_to_r2d2": statistics.median(ratios),
                   "actor_state_bytes_per_env": actors[n][4]}
        print(f"{n:<8} {rows[n]['act_s']:>14.4f} {rows[n]['ratio_to_r2d2']:>7.2f} "
              f"{rows[n]['actor_state_bytes_per_env'] / 2**20:>15.2f} MiB")
    write_results({**record, "agents": rows}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
