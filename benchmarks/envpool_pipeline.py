"""Issue 5, point 1: where Atari DQN training time goes on this machine, and how much of
the learner's bound the asynchronous pipeline reaches.

    python benchmarks/envpool_pipeline.py [--quick] [--env Breakout-v5] [--num-envs 8]
        [--threads T] [--json benchmarks/results/envpool_pipeline.json]

(a) raw EnvPool, random policy: steps/s of `pool.step` alone (train settings of
    `envs.envpool_env`, same num_envs and threads as below): the acting limit.
(b) the project's acting-only loops with a small MLP on the pixels and with the Nature
    CNN (Mnih et al. 2015); ratio to (a). "host loop": the async pipeline's actor
    (`pipeline.ActorLoop.batches`: one jitted act on the batch, the adapter's
    clean-transition step, observations put on the device once; what training uses),
    with the time of the jitted policy alone on one batch. "XLA": the loop as one
    program through EnvPool's XLA interface (`envs.envpool_xla.run_batches`, what
    evaluation uses), in sync mode and in async mode (num_envs / 2 per batch: acting
    on one half while the other steps).
(c) the learner alone: one batch-32 Nature-CNN DQN update (jitted, state donated, warm
    replay), median over repetitions, as one jitted call per update ("loop") and as a
    `lax.scan` of `--scan` updates per call ("scan", per update). The learner bound at the
    Nature replay ratio (one update per 4 env steps) is 4 / t_update env steps/s.
(d) full DQN training at the Nature replay ratio (num_envs envs, `updates_per_train =
    num_envs / 4` updates per env-step batch) through the async pipeline
    (`--set pipeline=async`) and the synchronous loop, env steps/s of whole log rows after
    a warm-up row (compilation, replay warm-up), as a fraction of (c)'s bound.

Goals: (b, MLP) / (a) >= 0.8; (d, async) / bound >= 0.9. All parts run in one process,
one after the other, so they share the machine's state; its speed drifts (the same
update took 23 to 29 ms in runs minutes apart on the 2-core development CPU), so the
bound that (d) is held to is the learner's update timed on the training driver's own
state right before and after the timed rows ("timed alongside"); (c) is printed too.
The replay is small (`--replay`, default 5000 transitions): its size changes memory,
not the cost of an update. Runs on CPU or an accelerator (it prints `jax.devices()`);
EnvPool is needed.
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
from jaxrl57.build import make_driver
from jaxrl57.envs.envpool_env import envpool_kwargs
from jaxrl57.replay.base import EnvSteps

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


def _acting_driver(env_id, num_envs, threads, torso, hidden):
    s = settings(env_id, num_envs, threads, 1000, 1000, torso=torso, hidden_sizes=hidden,
                 pipeline="async")
    return make_driver(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})


def bench_acting_host(env_id, num_envs, threads, steps, torso, hidden) -> dict:
    """The pipeline's actor loop (what training uses): jitted act, adapter step,
    `device_put` of the batch, one Python iteration per batch."""
    driver = _acting_driver(env_id, num_envs, threads, torso, hidden)
    batches = driver.actor.batches(jax.random.PRNGKey(1)[None], follow_learner=False,
                                   view=driver.parts.view_copy(driver.state["agent"]))
    for _ in range(10):  # compile + warm-up
        jax.block_until_ready(next(batches)[0])
    iters = max(1, steps // num_envs)
    t0 = time.perf_counter()
    for _ in range(iters):
        item = next(batches)
    jax.block_until_ready(item[0])
    dt = time.perf_counter() - t0
    # The policy alone on one batch: the part of a batch's time no loop can avoid.
    view = driver.parts.view_copy(driver.state["agent"])
    (steps, actor), _ = item
    obs = steps.obs
    act = driver.parts.act_on_view
    jax.block_until_ready(act(view, actor, obs, jax.random.PRNGKey(1)[None], 0))
    t_policy = []
    for i in range(50):
        t1 = time.perf_counter()
        jax.block_until_ready(act(view, actor, obs, jax.random.PRNGKey(1)[None], i))
        t_policy.append(time.perf_counter() - t1)
    driver.close()
    return {"loop": "host", "torso": torso, "hidden_sizes": hidden,
            "env_steps": iters * num_envs, "seconds": dt, "sps": iters * num_envs / dt,
            "policy_ms_per_batch": 1e3 * statistics.median(t_policy)}


def bench_acting_xla(env_id, num_envs, threads, steps, torso, hidden, batch_size) -> dict:
    """The acting loop as one program through EnvPool's XLA interface
    (`envs.envpool_xla.run_batches`): sync mode when `batch_size == num_envs`,
    else async mode (acting on one batch while the other envs step)."""
    import envpool

    from jaxrl57.envs import envpool_xla

    driver = _acting_driver(env_id, batch_size, threads, torso, hidden)
    agent = driver.agent
    view = jax.tree.map(lambda x: x[0], driver.parts.view_copy(driver.state["agent"]))
    driver.close()
    pool = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs, batch_size=batch_size,
                        num_threads=threads, seed=0, **envpool_kwargs(env_id, train=True))
    fns = envpool_xla.xla_functions(pool)

    def act(t, obs, env_id, key):
        # A DQN-family actor: no state of its own.
        actions, _ = agent.actor.act(view, (), obs, jax.random.fold_in(key, t))
        return actions, t + 1, key

    def program(handle, key, num_batches):
        return envpool_xla.run_batches(fns, handle, act, jnp.int32(0), key, num_batches)

    program = jax.jit(program, static_argnums=2)
    iters = max(1, steps // batch_size)
    envpool_xla.reset(pool)
    jax.block_until_ready(program(fns.handle, jax.random.PRNGKey(0), iters))  # compile
    envpool_xla.reset(pool)
    t0 = time.perf_counter()
    out = jax.block_until_ready(program(fns.handle, jax.random.PRNGKey(1), iters))
    dt = time.perf_counter() - t0
    env_steps = int(np.sum(out[4]))
    pool.close()
    return {"loop": "xla", "torso": torso, "hidden_sizes": hidden, "batch_size": batch_size,
            "pool_envs": num_envs, "env_steps": env_steps, "seconds": dt,
            "sps": env_steps / dt}


def bench_learner(env_id, num_envs, threads, replay, reps, scan) -> dict:
    s = settings(env_id, num_envs, threads, replay, 1000)
    driver = make_driver(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})
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
        state = observe(state, EnvSteps(o, jnp.zeros(num_envs, jnp.int32), jnp.ones(num_envs),
                                        jnp.zeros(num_envs, bool), jnp.zeros(num_envs, bool), o))
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
        # As the drivers do (`scan_updates`): unrolled on a CPU, where XLA runs
        # convolutions inside loops slowly (jax-ml/jax#12868).
        return jax.lax.scan(lambda st, k: agent.update(st, k), state, keys,
                            unroll=jax.default_backend() == "cpu")

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
    state, _ = jax.block_until_ready(driver.parts.update(state, key[None]))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(driver.parts.update(state, (key + i)[None]))
        times.append(time.perf_counter() - t0)
    driver.state = dict(driver.state, agent=state)
    return statistics.median(times)


def bench_training(env_id, num_envs, threads, replay, steps_per_row, rows,
                   pipeline, reps, **overrides) -> dict:
    """Training rows interleaved with timings of the learner's update on the driver's own
    state: round i times `reps` updates, then trains one row. Each row is compared with
    the bound of the update timed just before it, and with the one timed just after it
    (the next round's, or a final timing), so drift between rounds cancels."""
    s = settings(env_id, num_envs, threads, replay, steps_per_row, pipeline=pipeline,
                 **overrides)
    driver = make_driver(env_id, s, [s.hparams], [0], env_kwargs={"num_threads": threads})
    t0 = time.perf_counter()
    driver.run_row()  # compile, replay warm-up
    warm_s = time.perf_counter() - t0
    t_updates, row_seconds, updates = [_time_updates(driver, reps)], [], 0
    for _ in range(rows):
        u0 = int(driver.state["agent"].updates[0])
        t0 = time.perf_counter()
        driver.run_row()  # reads the row's metrics to the host: blocks on the updates
        row_seconds.append(time.perf_counter() - t0)
        updates += int(driver.state["agent"].updates[0]) - u0
        t_updates.append(_time_updates(driver, reps))
    close = getattr(driver, "close", None)
    if close:
        close()
    row_steps = s.run_config.steps_per_row
    steps, dt = rows * row_steps, sum(row_seconds)
    # Row i sits between timings i and i + 1: its bound uses their mean.
    bounds = [NATURE_STEPS_PER_UPDATE / ((a + b) / 2)
              for a, b in zip(t_updates[:-1], t_updates[1:], strict=True)]
    fractions = [row_steps / sec / b for sec, b in zip(row_seconds, bounds, strict=True)]
    return {"pipeline": pipeline, "env_steps": steps, "updates": updates, "seconds": dt,
            "sps": steps / dt, "env_steps_per_update": steps / max(updates, 1),
            "warmup_row_s": warm_s, "updates_per_train": s.run_config.updates_per_train,
            "row_seconds": row_seconds, "t_update_adjacent_s": t_updates,
            "row_fractions_of_adjacent_bound": fractions,
            "adjacent_bound_sps": statistics.mean(bounds),
            "fraction_of_adjacent_bound_median": statistics.median(fractions)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Breakout-v5")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="EnvPool threads (0: min(E, cpus))")
    p.add_argument("--replay", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="fewer steps (about 2-3 minutes)")
    p.add_argument("--scan", type=int, default=4, help="updates per call in (c)'s scan")
    p.add_argument("--mlp-hidden", default="64", help="hidden units of (b)'s MLP policy")
    p.add_argument("--only", default="abcd")
    p.add_argument("--row-steps", type=int, default=0,
                   help="env steps per timed training row in (d) (0: 256, or 96 with --quick)")
    p.add_argument("--rows", type=int, default=0, help="timed training rows in (d)")
    p.add_argument("--scan-updates", action="store_true",
                   help="(d): each batch's updates as one lax.scan (EnvPoolConfig.scan_updates)")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "envpool_pipeline.json"))
    a = p.parse_args()
    E = a.num_envs
    threads = a.threads or min(E, os.cpu_count() or 1)
    raw_steps, act_steps, reps = (2000, 800, 8) if a.quick else (8000, 3000, 20)
    row_steps, rows = (96, 2) if a.quick else (256, 5)
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
        for torso, hidden in (("mlp", a.mlp_hidden), ("nature_cnn", "512")):
            name = "mlp" if torso == "mlp" else "cnn"
            res[f"acting_{name}"] = bench_acting_host(a.env, E, threads, act_steps, torso,
                                                      hidden)
            res[f"acting_{name}_xla"] = bench_acting_xla(a.env, E, threads, act_steps, torso,
                                                         hidden, E)
            if E % 2 == 0:
                res[f"acting_{name}_xla_async"] = bench_acting_xla(
                    a.env, E, threads, act_steps, torso, hidden, E // 2)
    if "c" in a.only:
        res["learner"] = bench_learner(a.env, E, threads, a.replay, reps, a.scan)
    if "d" in a.only:
        extra = {"scan_updates": "1"} if a.scan_updates else {}
        res["train_async"] = bench_training(a.env, E, threads, a.replay,
                                            row_steps, rows, "async", reps, **extra)
        res["train_sync"] = bench_training(a.env, E, threads, a.replay,
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
    raw = max(res[k]["sps"] for k in ("raw", "raw_after") if k in res) \
        if "raw" in res else float("nan")
    for policy, label in (("mlp", f"MLP {a.mlp_hidden}"), ("cnn", "Nature CNN")):
        for suffix, loop in (("", "host loop"), ("_xla", "XLA, sync"),
                             ("_xla_async", f"XLA, async {E // 2}/{E}")):
            name = f"acting_{policy}{suffix}"
            if name not in res:
                continue
            r = res[name]
            r["ratio_to_raw"] = ratio = r["sps"] / raw
            note = f"{ratio:.3f} of (a)"
            if suffix == "":
                note += f"; the policy alone {r['policy_ms_per_batch']:.2f} ms/batch"
            if policy == "mlp" and suffix == "_xla_async":
                note += "  goal >= 0.8"
            print(f"{f'(b) acting only, {label}, {loop} [env steps/s]':<52} "
                  f"{r['sps']:>10,.0f}  {note}")
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
            r["fraction_of_adjacent_bound"] = r["fraction_of_adjacent_bound_median"]
            label = f"(d) DQN training, pipeline={r['pipeline']} [env steps/s]"
            print(f"{label:<52} {r['sps']:>10.1f}  {r['fraction_of_bound']:.3f} of (c)'s "
                  f"bound; {r['env_steps']} steps, {r['env_steps_per_update']:.2f} "
                  f"steps/update")
            goal = "  goal >= 0.9" if name == "train_async" else ""
            fr = ", ".join(f"{f:.2f}" for f in r["row_fractions_of_adjacent_bound"])
            print(f"{'    learner bound timed alongside [env steps/s]':<52} "
                  f"{r['adjacent_bound_sps']:>10.1f}  median {r['fraction_of_adjacent_bound']:.3f}"
                  f" of it by row{goal} (rows: {fr}); updates "
                  f"{[round(1e3 * t, 1) for t in r['t_update_adjacent_s']]} ms")
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
