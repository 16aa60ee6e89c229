"""Issue 5, point 1: where Atari DQN training time goes on this machine, and how much of
the learner's bound the asynchronous pipeline reaches.

    python benchmarks/envpool_pipeline.py [--quick] [--env Breakout-v5] [--num-envs 8]
        [--threads T] [--json benchmarks/results/envpool_pipeline.json]

(a) raw EnvPool, random policy: steps/s of `pool.step` alone (train settings of
    `envs.envpool_env`, same num_envs and threads as below): the acting limit.
(b) the project's acting-only loop (`PipelineDriver.actor_batches`: one jitted act on
    the batch, the adapter's clean-transition step, observations put on the device once),
    with a small MLP on the pixels and with the Nature CNN (Mnih et al. 2015); ratio to (a).
(c) the learner alone: one batch-32 Nature-CNN DQN update (jitted, state donated, warm
    replay), median over repetitions, as one jitted call per update ("loop") and as a
    `lax.scan` of `--scan` updates per call ("scan", per update). The learner bound at the
    Nature replay ratio (one update per 4 env steps) is 4 / t_update env steps/s.
(d) full DQN training at the Nature replay ratio (num_envs envs, `updates_per_train =
    num_envs / 4` updates per env-step batch) through the async pipeline
    (`--set pipeline=async`) and the synchronous loop, env steps/s of whole log rows after
    a warm-up row (compilation, replay warm-up), as a fraction of (c)'s bound.

Goals: (b, MLP) / (a) >= 0.8; (d, async) / bound >= 0.9. All parts run in one process,
one after the other, so they share the machine's state (its speed drifts by +-30 % over
minutes on the 2-core development CPU: compare within a run). The replay is small
(`--replay`, default 5000 transitions): its size changes memory, not the cost of an
update. Runs on CPU or an accelerator (it prints `jax.devices()`); EnvPool is needed.
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
from jaxrl57.envs.envpool_env import envpool_kwargs
from jaxrl57.runners.envpool_loop import EnvPoolDriver
from jaxrl57.runners.pipeline import PipelineDriver

NATURE_STEPS_PER_UPDATE = 4


def settings(env_id: str, num_envs: int, threads: int, replay: int, steps_per_row: int,
             **overrides: str):
    iterations = max(1, steps_per_row // num_envs)
    rows = 1000  # never the last row: no evaluation inside the timed rows
    base = {
        "num_envs": num_envs, "train_every": "1",
        "updates_per_train": str(max(1, num_envs // NATURE_STEPS_PER_UPDATE)),
        "replay_capacity": str(replay), "learning_starts": "64", "num_rows": str(rows),
        "eval_episodes": str(threads), "eval_every_rows": str(10 * rows),
    }
    base.update(overrides)
    return configs.resolve("dqn", env_id, {k: str(v) for k, v in base.items()},
                           steps=rows * iterations * num_envs)


def bench_raw(env_id: str, num_envs: int, threads: int, steps: int) -> dict:
    import envpool

    pool = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs, seed=0,
                        num_threads=threads, **envpool_kwargs(env_id, train=True))
    pool.reset()
    n = pool.action_space.n
    rng = np.random.default_rng(0)
    iters = max(1, steps // num_envs)
    acts = rng.integers(0, n, size=(iters + 20, num_envs)).astype(np.int32)
    for a in acts[:20]:
        pool.step(a)
    t0 = time.perf_counter()
    for a in acts[20:]:
        pool.step(a)
    dt = time.perf_counter() - t0
    pool.close()
    return {"env_steps": iters * num_envs, "seconds": dt, "sps": iters * num_envs / dt}


def bench_acting(env_id, num_envs, threads, steps, torso, hidden) -> dict:
    s = settings(env_id, num_envs, threads, 1000, 1000, torso=torso, hidden_sizes=hidden)
    driver = PipelineDriver(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})
    batches = driver.actor_batches(jax.random.PRNGKey(1)[None], follow_learner=False)
    for _ in range(10):  # compile + warm-up
        jax.block_until_ready(next(batches)[0])
    iters = max(1, steps // num_envs)
    t0 = time.perf_counter()
    for _ in range(iters):
        item = next(batches)
    jax.block_until_ready(item[0])
    dt = time.perf_counter() - t0
    driver.close()
    return {"torso": torso, "hidden_sizes": hidden, "env_steps": iters * num_envs,
            "seconds": dt, "sps": iters * num_envs / dt}


def bench_learner(env_id, num_envs, threads, replay, reps, scan) -> dict:
    s = settings(env_id, num_envs, threads, replay, 1000)
    driver = EnvPoolDriver(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})
    # The driver's state has a leading member axis (one member here): time the
    # agent's own functions on member 0.
    agent = driver.agent
    state = jax.tree.map(lambda x: x[0], driver.state["agent"])
    # Fill the replay past learning_starts with random transitions.
    obs_shape = driver.envs.spec.obs_shape
    rng = np.random.default_rng(0)
    observe = jax.jit(agent.observe, donate_argnums=0)
    for _ in range(max(1, 256 // num_envs)):
        o = jnp.asarray(rng.integers(0, 255, (num_envs, *obs_shape), np.uint8))
        state = observe(state, o, jnp.zeros(num_envs, jnp.int32), jnp.ones(num_envs),
                        jnp.zeros(num_envs, bool), jnp.zeros(num_envs, bool), o)
    assert bool(agent.can_update(state))
    update = jax.jit(agent.update, donate_argnums=0)
    keys = jax.random.split(jax.random.PRNGKey(0), reps + 3)
    for k in keys[:3]:
        state, m = jax.block_until_ready(update(state, k))
    times = []
    for k in keys[3:]:
        t0 = time.perf_counter()
        state, m = jax.block_until_ready(update(state, k))
        times.append(time.perf_counter() - t0)

    def scanned(state, keys):
        return jax.lax.scan(lambda st, k: agent.update(st, k), state, keys)

    scan_update = jax.jit(scanned, donate_argnums=0)
    skeys = jax.random.split(jax.random.PRNGKey(1), scan)
    state, m = jax.block_until_ready(scan_update(state, skeys))
    scan_times = []
    for r in range(max(1, reps // scan)):
        t0 = time.perf_counter()
        state, m = jax.block_until_ready(scan_update(state, skeys + r + 1))
        scan_times.append((time.perf_counter() - t0) / scan)
    t = statistics.median(times)
    return {"t_update_s": t, "times": times, "t_update_scan_s": statistics.median(scan_times),
            "scan_times": scan_times, "scan_length": scan, "replay_capacity": replay,
            "learner_bound_sps": NATURE_STEPS_PER_UPDATE / t}


def _time_updates(driver, n: int) -> float:
    """Median seconds of one update on the driver's own (warm) state, blocking on each."""
    state, key = driver.state["agent"], jax.random.PRNGKey(7)
    state, _ = jax.block_until_ready(driver._update(state, key[None]))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(driver._update(state, (key + i)[None]))
        times.append(time.perf_counter() - t0)
    driver.state = dict(driver.state, agent=state)
    return statistics.median(times)


def bench_training(driver_cls, env_id, num_envs, threads, replay, steps_per_row, rows,
                   pipeline, reps, **overrides) -> dict:
    s = settings(env_id, num_envs, threads, replay, steps_per_row, pipeline=pipeline,
                 **overrides)
    driver = driver_cls(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})
    t0 = time.perf_counter()
    driver.run_row()  # compile, replay warm-up
    warm_s = time.perf_counter() - t0
    # The machine's speed drifts: the update is timed again right before and after the
    # training rows, on the driver's own state, for a bound measured alongside.
    t_before = _time_updates(driver, reps)
    updates0 = int(driver.state["agent"].updates[0])
    t0 = time.perf_counter()
    for _ in range(rows):
        driver.run_row()  # reads the row's metrics to the host: blocks on the updates
    dt = time.perf_counter() - t0
    updates = int(driver.state["agent"].updates[0]) - updates0
    t_after = _time_updates(driver, reps)
    close = getattr(driver, "close", None)
    if close:
        close()
    steps = rows * s.run_config.steps_per_row
    t_local = (t_before + t_after) / 2
    return {"pipeline": pipeline, "env_steps": steps, "updates": updates, "seconds": dt,
            "sps": steps / dt, "env_steps_per_update": steps / max(updates, 1),
            "warmup_row_s": warm_s, "updates_per_train": s.run_config.updates_per_train,
            "t_update_adjacent_s": [t_before, t_after],
            "adjacent_bound_sps": NATURE_STEPS_PER_UPDATE / t_local}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Breakout-v5")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="EnvPool threads (0: min(E, cpus))")
    p.add_argument("--replay", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="fewer steps (about 2-3 minutes)")
    p.add_argument("--scan", type=int, default=4, help="updates per call in (c)'s scan")
    p.add_argument("--only", default="abcd")
    p.add_argument("--row-steps", type=int, default=0,
                   help="env steps per timed training row in (d) (0: 256, or 96 with --quick)")
    p.add_argument("--rows", type=int, default=0, help="timed training rows in (d)")
    p.add_argument("--scan-updates", action="store_true",
                   help="(d): each batch's updates as one lax.scan (RunConfig.scan_updates)")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "envpool_pipeline.json"))
    a = p.parse_args()
    E = a.num_envs
    threads = a.threads or min(E, os.cpu_count() or 1)
    raw_steps, act_steps, reps = (2000, 800, 8) if a.quick else (8000, 3000, 20)
    row_steps, rows = (96, 2) if a.quick else (256, 3)
    row_steps, rows = a.row_steps or row_steps, a.rows or rows

    command = command_line()
    print(f"command: {command}")
    print(f"jax.devices(): {jax.devices()}  jax {jax.__version__}  cpus {os.cpu_count()}")
    dev = jax.devices()[0]
    res: dict = {"command": command, "device": f"{dev.platform} {dev.device_kind}",
                 "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
                 "python": platform.python_version(), "cpus": os.cpu_count(), "env": a.env,
                 "num_envs": E, "threads": threads, "quick": a.quick}
    t_all = time.perf_counter()
    if "a" in a.only:
        res["raw"] = bench_raw(a.env, E, threads, raw_steps)
    if "b" in a.only:
        res["acting_mlp"] = bench_acting(a.env, E, threads, act_steps, "mlp", "64")
        res["acting_cnn"] = bench_acting(a.env, E, threads, act_steps, "nature_cnn", "512")
    if "c" in a.only:
        res["learner"] = bench_learner(a.env, E, threads, a.replay, reps, a.scan)
    if "d" in a.only:
        extra = {"scan_updates": "1"} if a.scan_updates else {}
        res["train_async"] = bench_training(PipelineDriver, a.env, E, threads, a.replay,
                                            row_steps, rows, "async", reps, **extra)
        res["train_sync"] = bench_training(EnvPoolDriver, a.env, E, threads, a.replay,
                                           row_steps, rows, "sync", reps, **extra)
    # A second raw measurement after (b): the machine's speed drifts, and the ratio in
    # (b) is taken to the faster of the two (the conservative choice).
    if "a" in a.only and "b" in a.only:
        res["raw_after"] = bench_raw(a.env, E, threads, raw_steps)
    res["total_s"] = time.perf_counter() - t_all
    print()
    print(f"{'measurement':<52} {'value':>10}  note")
    print("-" * 96)
    if "raw" in res:
        r = res["raw"]
        print(f"{'(a) raw EnvPool, random policy [env steps/s]':<52} {r['sps']:>10,.0f}  "
              f"{a.env}, {E} envs, {threads} threads")
    for name, label in (("acting_mlp", "MLP 64"), ("acting_cnn", "Nature CNN")):
        if name in res:
            r = res[name]
            raw = max(res[k]["sps"] for k in ("raw", "raw_after") if k in res) \
                if "raw" in res else float("nan")
            ratio = r["sps"] / raw
            r["ratio_to_raw"] = ratio
            goal = "  goal >= 0.8" if name == "acting_mlp" else ""
            print(f"{f'(b) acting-only loop, {label} [env steps/s]':<52} {r['sps']:>10,.0f}  "
                  f"{ratio:.3f} of (a) (the faster raw){goal}")
    if "raw_after" in res:
        print(f"{'    raw EnvPool again, after (b) [env steps/s]':<52} "
              f"{res['raw_after']['sps']:>10,.0f}  drift check")
    bound = float("nan")
    if "learner" in res:
        r = res["learner"]
        bound = r["learner_bound_sps"]
        print(f"{'(c) one batch-32 Nature-CNN update, jitted [ms]':<52} "
              f"{1e3 * r['t_update_s']:>10.1f}  median of {len(r['times'])}")
        print(f"{f'    same, lax.scan of {a.scan} per call [ms/update]':<52} "
              f"{1e3 * r['t_update_scan_s']:>10.1f}  median of {len(r['scan_times'])}")
        print(f"{'    learner bound, 4 env steps/update [env steps/s]':<52} {bound:>10.1f}")
    for name in ("train_async", "train_sync"):
        if name in res:
            r = res[name]
            r["fraction_of_bound"] = r["sps"] / bound
            r["fraction_of_adjacent_bound"] = r["sps"] / r["adjacent_bound_sps"]
            goal = "  goal >= 0.9" if name == "train_async" else ""
            label = f"(d) DQN training, pipeline={r['pipeline']} [env steps/s]"
            print(f"{label:<52} {r['sps']:>10.1f}  {r['fraction_of_bound']:.3f} of (c)'s "
                  f"bound{goal}; {r['env_steps']} steps, {r['env_steps_per_update']:.2f} "
                  f"steps/update")
            print(f"{'    bound timed alongside [env steps/s]':<52} "
                  f"{r['adjacent_bound_sps']:>10.1f}  {r['fraction_of_adjacent_bound']:.3f} of "
                  f"it; updates {[round(1e3 * t, 1) for t in r['t_update_adjacent_s']]} ms")
    if "learner" in res and "acting_cnn" in res and dev.platform == "cpu":
        # On a CPU the actor's acting and stepping take cores from the learner's update.
        learner = res["train_async"]["updates_per_train"] if "train_async" in res else 2
        t_learn = learner * res["learner"]["t_update_s"]
        t_act = E / res["acting_cnn"]["sps"]
        res["shared_cpu_ceiling"] = t_learn / (t_learn + t_act)
        print(f"{'    ceiling when actor and learner share the CPU':<52} "
              f"{res['shared_cpu_ceiling']:>10.3f}  learner {1e3 * t_learn:.1f} ms / (learner "
              f"+ acting-only loop {1e3 * t_act:.1f} ms) per batch")
    print(f"total {res['total_s']:.1f} s")
    write_results(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
