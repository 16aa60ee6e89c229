"""Memory of the Atari replay: frames stored once against whole transitions.

    python benchmarks/replay_memory.py [--capacity 1000000] [--small 5000]
                                       [--envpool-steps 4000] [--json PATH]

(a) Atari-size buffers (84x84 gray, stacks of 4, `--capacity` transitions), shapes
    only (`jax.eval_shape`, nothing allocated): bytes of all the state's arrays per
    transition slot, and GB per 1M transitions, for the whole-transition replays
    (`uniform_init`, `prioritized_init`: obs and next_obs kept, the reference) and
    the frame replay (`frame_init`, 1 and 8 envs). Goal: frames <= 1.1 x 84 x 84.
(b) the same with `--small` slots really allocated: `nbytes` of the arrays,
    checked against (a)'s shape arithmetic.
(c) a real EnvPool Breakout-v5 stream (4 envs, training protocol: episodic life)
    through `frame_add` into a ring that wraps: bytes of the state per SAMPLEABLE
    transition, which also pays for the one final-observation row per (life-)
    episode and the rows not yet sampleable at each ring's head.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import run_record, write_results

from jaxrl57.replay import (
    Transition,
    frame_add,
    frame_bytes_per_transition,
    frame_init,
    prioritized_init,
    uniform_init,
)

FRAME = 84 * 84
OBS = jnp.zeros((4, 84, 84), jnp.uint8)


def _bytes(state) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
               for x in jax.tree_util.tree_leaves(state))


def _example() -> Transition:
    return Transition(obs=OBS, action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
                      discount=jnp.zeros(()), next_obs=OBS)


def _builders(capacity: int) -> dict:
    return {
        "transitions, uniform": (lambda: uniform_init(_example(), capacity), capacity),
        "transitions, prioritized": (lambda: prioritized_init(_example(), capacity), capacity),
        "frames, 1 env": (lambda: frame_init(OBS, 1, capacity, n_step=3), capacity),
        "frames, 8 envs": (lambda: frame_init(OBS, 8, capacity, n_step=3), capacity),
    }


def shapes_only(capacity: int) -> dict:
    out = {}
    for name, (build, slots) in _builders(capacity).items():
        total = _bytes(jax.eval_shape(build))
        out[name] = {"bytes_per_transition": total / slots, "gb_per_1m": total / slots * 1e6 / 1e9,
                     "ratio_to_frame": total / slots / FRAME, "total_gb": total / 1e9}
    return out


def allocated(capacity: int) -> dict:
    out = {}
    for name, (build, slots) in _builders(capacity).items():
        state = jax.block_until_ready(build())
        total = sum(x.nbytes for x in jax.tree_util.tree_leaves(state))
        assert total == _bytes(jax.eval_shape(build)), name
        if name.startswith("frames"):
            assert total / slots == frame_bytes_per_transition(state)
        out[name] = {"bytes_per_transition": total / slots, "ratio_to_frame": total / slots / FRAME}
        del state
    return out


def envpool_stream(env_steps: int, num_envs: int = 4, rows_per_env: int = 600) -> dict:
    from jaxrl57.envs.envpool_env import make_envpool

    envs = make_envpool("Breakout-v5", num_envs, seed=0, train=True)
    state = frame_init(OBS, num_envs, num_envs * rows_per_env, n_step=3)
    add = jax.jit(lambda s, *x: frame_add(s, *x, n_step=3), donate_argnums=0)
    rng = np.random.default_rng(0)
    obs, dones = envs.reset(), 0
    t0 = time.perf_counter()
    for _ in range(env_steps // num_envs):
        action = rng.integers(0, envs.spec.num_actions, num_envs).astype(np.int32)
        out = envs.step(action)
        state = add(state, obs, action, out.reward, out.terminated, out.truncated, out.final_obs)
        dones += int(np.sum(out.terminated | out.truncated))
        obs = out.obs
    jax.block_until_ready(state)
    envs.close()
    total = _bytes(state)
    return {"env_steps": env_steps // num_envs * num_envs, "num_envs": num_envs,
            "rows_per_env": rows_per_env, "episode_ends": dones,
            "sampleable": int(state.size), "stack_mismatches": int(state.stack_mismatches),
            "bytes_per_row": frame_bytes_per_transition(state),
            "bytes_per_sampleable_transition": total / int(state.size),
            "ratio_to_frame": total / int(state.size) / FRAME,
            "seconds": time.perf_counter() - t0}


def main() -> int:
    p = argparse.ArgumentParser(description="jaxrl57 replay memory benchmark (Atari).")
    p.add_argument("--capacity", type=int, default=1_000_000, help="transitions in (a)")
    p.add_argument("--small", type=int, default=5_000, help="transitions allocated in (b)")
    p.add_argument("--envpool-steps", type=int, default=4_000,
                   help="Breakout env steps in (c); 0 skips it")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "replay_memory.json"))
    a = p.parse_args()
    results = run_record(capacity=a.capacity, small=a.small, frame_bytes=FRAME,
                         goal_bytes_per_transition=1.1 * FRAME)
    results["shapes"] = shapes_only(a.capacity)
    results["allocated"] = allocated(a.small)
    if a.envpool_steps > 0:
        try:
            results["envpool"] = envpool_stream(a.envpool_steps)
        except ImportError as e:
            results["envpool"] = {"skipped": str(e)}

    print()
    print(f"{'storage':<28} {'bytes/transition':>17} {'x 84*84':>8} {'GB per 1M':>10}  note")
    print("-" * 90)
    for name, r in results["shapes"].items():
        print(f"{name:<28} {r['bytes_per_transition']:>17,.1f} {r['ratio_to_frame']:>8.3f} "
              f"{r['gb_per_1m']:>10.2f}  (a) eval_shape, {a.capacity:,} slots")
    for name, r in results["allocated"].items():
        print(f"{name:<28} {r['bytes_per_transition']:>17,.1f} {r['ratio_to_frame']:>8.3f} "
              f"{'':>10}  (b) allocated, {a.small:,} slots")
    r = results.get("envpool", {})
    if "skipped" in r:
        print(f"(c) skipped: {r['skipped']}")
    elif r:
        print(f"{'frames, Breakout stream':<28} {r['bytes_per_sampleable_transition']:>17,.1f} "
              f"{r['ratio_to_frame']:>8.3f} {'':>10}  (c) per sampleable transition: "
              f"{r['env_steps']} steps, {r['episode_ends']} episode ends, "
              f"{r['sampleable']} sampleable, mismatches {r['stack_mismatches']}")
    frames = results["shapes"]["frames, 1 env"]["bytes_per_transition"]
    goal = results["goal_bytes_per_transition"]
    print(f"frame replay: {frames:,.1f} bytes per transition <= {goal:,.1f} (1.1 x 84 x 84): "
          f"{'yes' if frames <= goal else 'NO'}")
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
