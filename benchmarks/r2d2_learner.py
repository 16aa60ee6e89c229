"""Learner throughput of R2D2 in its Atari configuration (issue 3, point 3).

    python benchmarks/r2d2_learner.py [--batch 64] [--trace-length 80] [--burn-in 40]
                                      [--reps 3] [--json PATH]

One learner update of the `r2d2` preset on Atari-shaped data (uint8 [4, 84, 84]
frame stacks, 4 actions): Nature-CNN convolutions, LSTM 512 with the previous action
and reward, dueling head 512, batch 64 sequences of 40 burn-in + 80 trained + 1
bootstrap steps (Kapturowski et al. 2019, Table 2, in acme's layout), online and
target networks each unrolled from the stored state, Adam, priorities written back.
The replay is filled with random frames (the cost of an update does not depend on
the pixels). Printed: seconds per update and sequences/s (after a
compiled warm-up, blocking on the result), XLA's FLOP count of the compiled update,
the achieved GFLOP/s, and the fraction of a reference peak measured in the same
process: a large float32 matmul (what this device's dense kernels reach), and on
GPUs also the datasheet float32 peak where the device is known.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import command_line, write_results

from jaxrl57 import configs
from jaxrl57.agents.r2d2 import R2D2HParams, make_r2d2
from jaxrl57.envs.base import EnvSpec
from jaxrl57.replay.sequence import sequence_update_priorities

# Dense float32 (non-tensor-core) peaks from NVIDIA's datasheets, FLOP/s.
DATASHEET_FP32 = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12}


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n float32 matmul on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def cpu_flop_count(fn, *args) -> float:
    """XLA's FLOP count of `fn` compiled for the host CPU.

    Counted on the CPU backend whatever the default device: XLA:GPU's cost
    analysis leaves out the convolutions it hands to cuDNN (an H100 run
    reported 9.3 GFLOP for an update the CPU backend counts at ~300).
    """
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu), args)
    cost = jax.jit(fn).lower(*specs).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--trace-length", type=int, default=80, help="steps that carry the loss")
    p.add_argument("--burn-in", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=os.path.join("benchmarks", "results", "r2d2_learner.json"))
    a = p.parse_args()

    spec = EnvSpec("Breakout-v5", (4, 84, 84), np.uint8, num_actions=4)
    s = configs.resolve("r2d2", "Breakout-v5", {
        "batch_size": str(a.batch), "trace_length": str(a.trace_length),
        "burn_in": str(a.burn_in), "period": str(max(1, a.trace_length // 2)),
        "replay_capacity": str(2 * a.batch), "learning_starts": "1"})
    cfg = s.agent_config
    agent = make_r2d2(cfg, spec, num_envs=1)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), R2D2HParams.create(**s.hparams))
    cap = cfg.replay_capacity
    rng = np.random.default_rng(0)
    steps = dict(state.replay.steps,
                 obs=jnp.asarray(rng.integers(0, 256, (cap, cfg.seq_len, 4, 84, 84), np.uint8)),
                 action=jnp.asarray(rng.integers(0, 4, (cap, cfg.seq_len)), jnp.int32),
                 reward=jnp.asarray(rng.normal(size=(cap, cfg.seq_len)), jnp.float32),
                 discount=jnp.ones((cap, cfg.seq_len)), mask=jnp.ones((cap, cfg.seq_len)))
    replay = state.replay._replace(steps=steps, size=jnp.int32(cap))
    replay = sequence_update_priorities(replay, jnp.arange(cap), jnp.ones(cap), 0.9)
    state = state._replace(replay=replay)

    update = jax.jit(agent.update, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = update.lower(state, jax.random.PRNGKey(1)).compile()
    compile_s = time.perf_counter() - t0
    flops = cpu_flop_count(agent.update, state, jax.random.PRNGKey(1))
    state, metrics = compiled(state, jax.random.PRNGKey(1))  # warm-up
    jax.block_until_ready(metrics)
    assert float(metrics["updated"]) == 1.0
    times = []
    for i in range(a.reps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, jax.random.PRNGKey(2 + i))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times)

    dev = jax.devices()[0]
    ref = matmul_gflops()
    datasheet = next((v for k, v in DATASHEET_FP32.items() if k in dev.device_kind), None)
    achieved = flops / dt / 1e9
    res = {
        "command": command_line(),
        "device": f"{dev.platform} {dev.device_kind}", "jax": jax.__version__,
        "python": platform.python_version(), "batch_sequences": a.batch,
        "seq_len": cfg.seq_len, "burn_in": cfg.burn_in, "trace_length": cfg.trace_length,
        "lstm": cfg.core_size,
        "compile_s": compile_s, "update_s": dt, "update_times_s": times,
        "sequences_per_s": a.batch / dt, "flops_per_update": flops,
        "achieved_gflops": achieved, "matmul_reference_gflops": ref,
        "fraction_of_matmul_reference": achieved / ref,
        "datasheet_fp32_tflops": datasheet / 1e12 if datasheet else None,
        "fraction_of_datasheet": achieved * 1e9 / datasheet if datasheet else None,
    }
    print(f"command: {res['command']}\ndevice: {res['device']}, jax {jax.__version__}")
    print(f"{'measurement':<44} {'value':>14}")
    print("-" * 60)
    label = f"update (batch {a.batch} x {cfg.seq_len}, burn-in {cfg.burn_in}) [s]"
    print(f"{label:<44} {dt:>14.3f}  (median of {[round(t, 3) for t in times]})")
    print(f"{'sequences / s':<44} {res['sequences_per_s']:>14.2f}")
    print(f"{'FLOP count per update (XLA:CPU) [GFLOP]':<44} {flops / 1e9:>14.1f}")
    print(f"{'achieved [GFLOP/s]':<44} {achieved:>14.1f}")
    print(f"{'reference: 2048^2 f32 matmul [GFLOP/s]':<44} {ref:>14.1f}")
    print(f"{'fraction of the matmul reference':<44} {res['fraction_of_matmul_reference']:>14.3f}")
    if datasheet:
        print(f"{'fraction of datasheet fp32 peak':<44} {res['fraction_of_datasheet']:>14.3f}")
    print(f"compile {compile_s:.1f} s")
    write_results(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
