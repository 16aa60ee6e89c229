"""Checkpoint save and restore: time and peak host memory, three formats.

    python benchmarks/checkpoint_io.py [--capacity 1000000] [--formats old,new,orbax]
                                       [--content breakout] [--small-repeats 10]
                                       [--dir DIR] [--json PATH]

Formats: `old`, the pickle format jaxrl57 used before (a SHA-256 header and a
pickle of the whole state, reimplemented here; it loads only files this script
wrote); `new`, `jaxrl57.checkpoint`; `orbax`, orbax-checkpoint's
`StandardCheckpointer` (the JAX ecosystem's default, compressed with zstd).

(a) The state that the default `jaxrl57 train` checkpoints after every row
    (CartPole DQN on device, one member): save and restore into the driver's
    state, median of `--small-repeats`, in this process.
(b) An Atari DQN state (`configs.resolve("dqn", "Breakout-v5")`,
    `make_dqn(..., spec, 1)`) whose frame replay holds `--capacity`
    transitions, its frames filled (`--content`) with Breakout frames from a
    random policy cycled through the buffer (what a replay holds) or with
    random frames (incompressible). Each save and each restore runs in a fresh
    subprocess: seconds, and peak resident memory of the process over the
    operation (VmHWM, reset just before it through /proc/self/clear_refs), next
    to the resident memory it started from. Restores read the file just
    written, so mostly from the page cache; they restore into the state's
    shapes and shardings (`jax.eval_shape` of the init) and check the frames.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import run_record, write_results

from jaxrl57 import checkpoint, configs, envs
from jaxrl57.agents.dqn import make_dqn

FORMATS = ("old", "new", "orbax")
OLD_MAGIC = b"JAXRL57-CKPT-1"
ENV = "Breakout-v5"


# ---------------------------------------------------------------- the formats


def old_save(path: str, state, meta: dict) -> None:
    """The pickle format as jaxrl57 wrote it before (checkpoint.py at a7af1f0)."""
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    payload = pickle.dumps(
        {"leaves": [np.asarray(x) for x in leaves], "treedef": str(treedef), "meta": meta},
        protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest().encode()
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(OLD_MAGIC + b" " + digest + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def old_load(path: str, like):
    """Reads a file `old_save` wrote in this benchmark (it unpickles: never point it
    at anything else), then places the leaves as the old `--resume` did."""
    with open(path, "rb") as f:
        header = f.readline()
        payload = f.read()
    assert hashlib.sha256(payload).hexdigest().encode() == header.split()[1]
    data = pickle.loads(payload)
    del payload
    like_leaves, treedef = jax.tree.flatten(like)
    assert str(treedef) == data["treedef"]
    leaves = data["leaves"]
    for i, x in enumerate(like_leaves):
        leaves[i] = jax.device_put(leaves[i], x.sharding)
    return jax.tree.unflatten(treedef, leaves)


def save(fmt: str, path: str, state) -> None:
    meta = {"rows": [], "wall_s": 0.0}
    if fmt == "old":
        old_save(path, state, meta)
    elif fmt == "new":
        checkpoint.save(path, state, meta)
    else:
        import orbax.checkpoint as ocp

        ckpt = ocp.StandardCheckpointer()
        ckpt.save(os.path.abspath(path), state, force=True)
        ckpt.wait_until_finished()


def restore(fmt: str, path: str, like):
    if fmt == "old":
        return old_load(path, like)
    if fmt == "new":
        return checkpoint.load(path, like=like)[0]
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
    return ocp.StandardCheckpointer().restore(os.path.abspath(path), abstract)


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(path) for n in ns)
    return os.path.getsize(path)


# ---------------------------------------------------------------- (a) the default run's state


def small_state(repeats: int, folder: str, formats) -> dict:
    from jaxrl57.build import make_driver

    settings = configs.resolve("dqn", "jax:CartPole-v1", {})
    driver = make_driver("jax:CartPole-v1", settings, [settings.hparams], [0])
    state = driver.get_state()
    out = {"leaves": len(jax.tree.leaves(state)),
           "mb": sum(x.nbytes for x in jax.tree.leaves(state)) / 1e6}
    for fmt in formats:
        path = os.path.join(folder, f"small-{fmt}")
        saves, restores = [], []
        for i in range(repeats + 1):  # the first of each warms up
            _remove(path)
            t0 = time.perf_counter()
            save(fmt, path, state)
            t1 = time.perf_counter()
            jax.block_until_ready(restore(fmt, path, driver.state_template()))
            t2 = time.perf_counter()
            if i:
                saves.append(t1 - t0)
                restores.append(t2 - t1)
        out[fmt] = {"save_ms": 1e3 * float(np.median(saves)),
                    "restore_ms": 1e3 * float(np.median(restores)), "file_mb": _size(path) / 1e6}
        _remove(path)
    if "orbax" in formats:
        code = "import time; t = time.perf_counter(); import orbax.checkpoint; " \
               "print(time.perf_counter() - t)"
        base = "import jax, flax, optax, numpy"  # what jaxrl57 imports anyway
        out["orbax_import_s"] = float(subprocess.run(
            [sys.executable, "-c", f"{base}; {code}"], capture_output=True, text=True,
            check=True).stdout.split()[-1])
    return out


# ---------------------------------------------------------------- (b) an Atari state


def _atari_agent(capacity: int):
    # learning_starts sets no shape; small capacities need it below them.
    settings = configs.resolve("dqn", ENV, {"replay_capacity": str(capacity),
                                            "learning_starts": str(min(capacity, 50_000))})
    agent = make_dqn(settings.agent_config, envs.env_spec(ENV), 1)
    hparams = settings.family.hparams_cls.create(**settings.hparams)
    return agent, hparams


def breakout_frames(path: str, steps: int = 2_500, num_envs: int = 8) -> np.ndarray:
    """`steps * num_envs` 84x84 Breakout frames under a random policy (training
    protocol), saved to `path` for the workers."""
    from jaxrl57.envs.envpool_env import make_envpool

    pool = make_envpool(ENV, num_envs, seed=0, train=True)
    rng = np.random.default_rng(0)
    obs, frames = pool.reset(), []
    for _ in range(steps):
        out = pool.step(rng.integers(0, pool.spec.num_actions, num_envs).astype(np.int32))
        frames.append(np.asarray(out.obs)[:, -1])
        obs = out.obs
    del obs
    pool.close()
    frames = np.concatenate(frames)
    np.save(path, frames)
    return frames


def _rss(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024 / 1e9
    raise RuntimeError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _fill(frames, content: str, pool_path: str):
    """The frame buffer [1, N, 84, 84] refilled in place (donated), cycling through
    the pool of frames: the Breakout frames, or 10,000 random ones (70 MB, more
    than a compressor's window, so incompressible)."""
    if content == "random":
        pool = jnp.asarray(np.random.default_rng(0).integers(0, 256, (10_000, 84, 84),
                                                             dtype=np.uint8))
    else:
        pool = jnp.asarray(np.load(pool_path))
    fill = jax.jit(lambda f, p: p[jnp.arange(f.shape[1]) % p.shape[0]][None],
                   donate_argnums=0)
    return fill(frames, pool)


def _probe(frames) -> str:
    """A digest of the first and last frames (the restore must give the saved ones)."""
    return hashlib.sha256(np.asarray(frames[0, :64]).tobytes()
                          + np.asarray(frames[0, -64:]).tobytes()).hexdigest()


def worker(op: str, fmt: str, path: str, capacity: int, content: str, pool_path: str) -> dict:
    agent, hparams = _atari_agent(capacity)
    key = jax.random.PRNGKey(0)
    out = {}
    if op == "save":
        t0 = time.perf_counter()
        state = jax.jit(agent.init)(key, hparams)
        state = state._replace(replay=state.replay._replace(
            frames=_fill(state.replay.frames, content, pool_path)))
        jax.block_until_ready(state)
        out["build_s"] = time.perf_counter() - t0
        out["state_gb"] = sum(x.nbytes for x in jax.tree.leaves(state)) / 1e9
        out["rss_before_gb"] = _rss("VmRSS")
        out["peak_reset"] = _reset_peak()
        t0 = time.perf_counter()
        save(fmt, path, state)
        out["seconds"] = time.perf_counter() - t0
        out["file_gb"] = _size(path) / 1e9
    else:
        shapes = jax.eval_shape(agent.init, key, hparams)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            shapes)
        out["rss_before_gb"] = _rss("VmRSS")
        out["peak_reset"] = _reset_peak()
        t0 = time.perf_counter()
        state = jax.block_until_ready(restore(fmt, path, like))
        out["seconds"] = time.perf_counter() - t0
    out["peak_gb"] = _rss("VmHWM")
    out["probe"] = _probe(state.replay.frames)
    return out


def atari(capacity: int, formats, content: str, folder: str) -> dict:
    pool_path = os.path.join(folder, "breakout_frames.npy")
    if content == "breakout" and not os.path.exists(pool_path):
        breakout_frames(pool_path)
    results = {}
    for fmt in formats:
        path = os.path.join(folder, f"atari-{fmt}")
        _remove(path)
        results[fmt] = {}
        for op in ("save", "restore"):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", op, fmt, path,
                   "--capacity", str(capacity), "--content", content, "--pool", pool_path]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{op} {fmt} failed:\n{done.stderr[-3000:]}")
            results[fmt][op] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {fmt:>5} {op:<7} {results[fmt][op]}", flush=True)
        results[fmt]["restore"]["frames_ok"] = (
            results[fmt]["restore"]["probe"] == results[fmt]["save"]["probe"])
        _remove(path)
    return results


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description="jaxrl57 checkpoint save/restore benchmark.")
    p.add_argument("--capacity", type=int, default=1_000_000,
                   help="frame-replay transitions of the Atari state in (b); 0 skips (b)")
    p.add_argument("--formats", default=",".join(FORMATS), help="of old, new, orbax")
    p.add_argument("--content", choices=("breakout", "random"), default="breakout",
                   help="what fills the replay's frames in (b)")
    p.add_argument("--small-repeats", type=int, default=10, help="timed repeats in (a)")
    p.add_argument("--dir", default=os.path.join("benchmarks", "results", "checkpoint_io"),
                   help="where the checkpoints are written (removed after)")
    p.add_argument("--json", default=os.path.join("benchmarks", "results",
                                                  "checkpoint_io.json"))
    p.add_argument("--worker", nargs=3, metavar=("OP", "FORMAT", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--pool", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(*a.worker, a.capacity, a.content, a.pool)))
        return 0
    formats = [f for f in a.formats.split(",") if f]
    if not set(formats) <= set(FORMATS):
        p.error(f"--formats takes {', '.join(FORMATS)}")
    os.makedirs(a.dir, exist_ok=True)
    results = run_record(formats=formats, capacity=a.capacity, content=a.content)
    results["small"] = small = small_state(a.small_repeats, a.dir, formats)
    print(f"\n(a) default `jaxrl57 train` state: {small['leaves']} leaves, {small['mb']:.1f} MB"
          + (f"; orbax import {small['orbax_import_s']:.2f} s" if "orbax" in small else ""))
    print(f"{'format':<8} {'save ms':>9} {'restore ms':>11} {'file MB':>8}")
    for fmt in formats:
        r = small[fmt]
        print(f"{fmt:<8} {r['save_ms']:>9.1f} {r['restore_ms']:>11.1f} {r['file_mb']:>8.2f}")
    if a.capacity > 0:
        print(f"\n(b) {ENV} DQN state, frame replay of {a.capacity:,} ({a.content} frames)")
        results["atari"] = big = atari(a.capacity, formats, a.content, a.dir)
        print(f"{'format':<8} {'state GB':>9} {'file GB':>8} {'save s':>7} {'save peak GB':>13}"
              f" {'restore s':>10} {'restore peak GB':>16}  (RSS before save / restore)")
        for fmt in formats:
            s, r = big[fmt]["save"], big[fmt]["restore"]
            print(f"{fmt:<8} {s['state_gb']:>9.2f} {s['file_gb']:>8.2f} {s['seconds']:>7.1f} "
                  f"{s['peak_gb']:>13.2f} {r['seconds']:>10.1f} {r['peak_gb']:>16.2f}  "
                  f"({s['rss_before_gb']:.2f} / {r['rss_before_gb']:.2f})"
                  + ("" if r["frames_ok"] else "  FRAMES WRONG"))
    write_results(results, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
