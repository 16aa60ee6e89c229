"""Tests of `jaxrl57 train`: bad input, run outputs, seeds and sweeps, checkpoints
and exact resumption after a SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import jax
import numpy as np
import pytest

from jaxrl57 import checkpoint, configs
from jaxrl57.cli import main

TINY = ["train", "dqn", "--env", "jax:Catch", "--steps", "2000", "--set", "num_rows=2",
        "--set", "learning_starts=200", "--no-progress"]
# Resume test: 6 rows, each slow enough (~4k env steps, 2k updates) to kill between rows.
RESUMABLE = ["train", "dqn", "--env", "jax:Catch", "--steps", "24000", "--set", "num_rows=6",
             "--set", "learning_starts=200", "--set", "updates_per_train=4",
             "--set", "replay_capacity=2000", "--set", "eval_episodes=10", "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent XLA cache for this module: runs with the same program shapes (the
    resume test's three runs, the two-member runs) compile once. Results do not depend
    on it."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = str(tmp_path_factory.mktemp("xla_cache"))
    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cc.reset_cache()
    yield path
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    cc.reset_cache()


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train(argv, capsys=None):
    rc = main(argv)
    assert rc == 0, capsys.readouterr().err if capsys else rc


def _assert_usage_error(capsys, rc, *needles):
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxrl57: error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv,needles", [
    (["train", "dqnn", "--env", "jax:Catch"], ["'dqnn'", "did you mean dqn"]),
    (["train", "--env", "jax:Catc"], ["'jax:Catc'", "jax:Catch"]),
    (["train", "--env", "Breakout-v4"], ["'Breakout-v4'", "Breakout-v5"]),
    (["train", "--env", "Pendulum-v1"], ["Pendulum-v1", "continuous"]),
    (["train", "--env", "jax:Catch", "--set", "batch_size=64", "--set", "replay_capacity=32"],
     ["batch_size (64)", "replay_capacity (32)"]),
    (["train", "--env", "jax:Catch", "--set", "replay_capacity=1000",
      "--set", "learning_starts=5000"], ["learning_starts", "replay_capacity"]),
    (["train", "--env", "jax:Catch", "--set", "learning_rat=1e-3"],
     ["'learning_rat'", "learning_rate"]),
    (["train", "--env", "jax:Catch", "--set", "batch_size"], ["--set", "NAME=VALUE"]),
    (["train", "--env", "jax:Catch", "--set", "=3"], ["--set", "NAME=VALUE"]),
    (["train", "--env", "jax:Catch", "--set", "batch_size=abc"], ["batch_size", "'abc'"]),
    (["train", "--env", "jax:Catch", "--sweep", "batch_size=16,32"],
     ["--sweep batch_size", "learning_rate"]),
    (["train", "--env", "jax:Catch", "--sweep", "learning_rate"], ["--sweep"]),
    (["train", "--seeds", "0"], ["--seeds"]),
    (["train", "--steps", "many"], ["--steps"]),
    (["fit"], []),
    (["train", "--env", "jax:Catch", "--env-arg", "colour=3"], ["--env-arg", "colour"]),
], ids=["agent", "jax_env", "envpool_env", "continuous", "batch_gt_capacity",
        "learning_starts_gt_capacity", "unknown_set", "malformed_set", "empty_set_name",
        "bad_set_value", "sweep_static", "malformed_sweep", "seeds0", "bad_steps",
        "unknown_command", "bad_env_arg"])
def test_bad_input_exits_2_with_one_line(capsys, argv, needles):
    if argv[-1] in ("Breakout-v4", "Pendulum-v1"):
        pytest.importorskip("envpool")
    # Library warnings are checked apart (see the test below), whatever pytest's -W/-p flags.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        rc = main(argv)
    _assert_usage_error(capsys, rc, *needles)


def test_continuous_env_error_is_the_only_stderr_output():
    """Out of process, so library warnings (gymnasium's Box casts) would show on stderr."""
    pytest.importorskip("envpool")
    code = "import sys; from jaxrl57.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "train", "--env", "Pendulum-v1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "jaxrl57: error: agent 'dqn' needs discrete actions, but Pendulum-v1 has a "
        "continuous action space"], proc.stderr


def test_resume_folder_without_args(tmp_path, capsys):
    _assert_usage_error(capsys, main(["train", "--resume", str(tmp_path)]), "args.json")


# ---------------------------------------------------------------- a tiny run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tiny") / "run")
    _train(TINY + ["--out", out])
    return out


def test_tiny_run_outputs(tiny_run):
    assert sorted(os.listdir(tiny_run)) == [
        "args.json", "checkpoint.jaxrl57", "learning_curve.png", "metrics.csv", "summary.json"]
    rows = _read_csv(os.path.join(tiny_run, "metrics.csv"))
    assert len(rows) == 2  # one member, two log rows
    for col in ("member", "seed", "env_steps", "episode_return", "eval_return", "updates",
                "loss", "sps", "wall_s"):
        assert col in rows[0], col
    assert [int(r["env_steps"]) for r in rows] == [1000, 2000]
    assert all(r["member"] == "0" and r["seed"] == "0" for r in rows)
    for r in rows:
        for col in ("episode_return", "eval_return", "sps", "wall_s"):
            assert np.isfinite(float(r[col])), col
        assert -1.0 <= float(r["episode_return"]) <= 1.0
    assert int(rows[1]["updates"]) > int(rows[0]["updates"]) > 0

    with open(os.path.join(tiny_run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["env_steps"] == 2000 and summary["members"] == 1
    assert summary["wall_s"] > 0 and summary["sps"] > 0
    assert summary["final_eval_return"] == pytest.approx(float(rows[-1]["eval_return"]),
                                                         abs=1e-5)
    assert [m["member"] for m in summary["per_member"]] == [0]
    assert summary["per_member"][0]["overrides"] == {}
    assert summary["run_config"]["num_rows"] == 2
    assert summary["hparams"]["learning_starts"] == 200

    png = os.path.join(tiny_run, "learning_curve.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 1000

    state, meta = checkpoint.load(os.path.join(tiny_run, "checkpoint.jaxrl57"))
    assert len(meta["rows"]) == 2 and len(state) > 0


def test_corrupt_checkpoint(tiny_run, tmp_path, capsys):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run, run)
    path = os.path.join(run, "checkpoint.jaxrl57")
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        f.seek(size // 2)
        chunk = f.read(16)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    capsys.readouterr()
    _assert_usage_error(capsys, main(["train", "--resume", run, "--no-progress"]), "corrupt")


def test_mismatched_checkpoint(tiny_run, tmp_path, capsys):
    # The state a run with other hidden sizes writes (same driver, no training needed).
    from jaxrl57.build import make_driver

    other = configs.resolve("dqn", "jax:Catch", {"num_rows": "2", "learning_starts": "200",
                                                 "hidden_sizes": "32,32"}, steps=2000)
    driver = make_driver("jax:Catch", other, [other.hparams], [0])
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run, run)
    checkpoint.save(os.path.join(run, "checkpoint.jaxrl57"), driver.get_state(),
                    {"rows": [], "wall_s": 0.0})
    before = _read_csv(os.path.join(run, "metrics.csv"))
    capsys.readouterr()
    _assert_usage_error(capsys, main(["train", "--resume", run, "--no-progress"]),
                        "does not match")
    assert _read_csv(os.path.join(run, "metrics.csv")) == before


# ---------------------------------------------------------------- members


def _member_rows(out, k):
    rows = _read_csv(os.path.join(out, "metrics.csv"))
    assert len(rows) == 2 * k  # one row per member per log row
    return [[r for r in rows if r["member"] == str(m)] for m in range(k)]


def test_seeds_give_different_members(tmp_path, capsys):
    out = str(tmp_path / "run")
    _train(TINY + ["--seeds", "2", "--seed", "3", "--out", out], capsys)
    a, b = _member_rows(out, 2)
    assert {r["seed"] for r in a} == {"3"} and {r["seed"] for r in b} == {"4"}
    assert [r["env_steps"] for r in a] == [r["env_steps"] for r in b]
    assert [r["loss"] for r in a] != [r["loss"] for r in b]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["members"] == 2 and summary["total_env_steps"] == 4000
    assert [(m["member"], m["seed"]) for m in summary["per_member"]] == [(0, 3), (1, 4)]


def test_sweep_gives_members_with_overrides(tmp_path, capsys):
    out = str(tmp_path / "run")
    _train(TINY + ["--sweep", "learning_rate=1e-4,1e-2", "--out", out], capsys)
    a, b = _member_rows(out, 2)
    assert {r["seed"] for r in a + b} == {"0"}
    assert [r["loss"] for r in a] != [r["loss"] for r in b]
    assert [r["q_mean"] for r in a] != [r["q_mean"] for r in b]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["members"] == 2
    assert [m["overrides"] for m in summary["per_member"]] == [
        {"learning_rate": "1e-4"}, {"learning_rate": "1e-2"}]


# ---------------------------------------------------------------- resume


def _ckpt_rows(path):
    try:
        return len(checkpoint.load(path)[1]["rows"])
    except checkpoint.CheckpointError:
        return 0


def test_resume_after_sigkill_is_exact(tmp_path, compile_cache):
    dir_a, dir_b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(RESUMABLE + ["--out", dir_a]) == 0
    rows_a = _read_csv(os.path.join(dir_a, "metrics.csv"))
    assert len(rows_a) == 6

    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=compile_cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    code = "import sys; from jaxrl57.cli import main; sys.exit(main(sys.argv[1:]))"
    log = open(tmp_path / "b.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *RESUMABLE, "--out", dir_b, "--checkpoint-every", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    ckpt = os.path.join(dir_b, "checkpoint.jaxrl57")
    metrics = os.path.join(dir_b, "metrics.csv")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(metrics) and len(_read_csv(metrics)) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "run B ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    done = _ckpt_rows(ckpt)
    assert 2 <= done < 6, f"killed with {done} rows checkpointed; rows too fast to test"
    with open(os.path.join(dir_b, "summary.json")) as f:
        assert json.load(f)["finished"] is False  # written after every row, final at the end

    assert main(["train", "--resume", dir_b, "--no-progress"]) == 0
    rows_b = _read_csv(metrics)
    assert len(rows_b) == len(rows_a) == 6
    assert list(rows_b[0]) == list(rows_a[0])
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for col in ra:
            if col not in ("sps", "wall_s"):
                assert ra[col] == rb[col], (col, ra, rb)
    with open(os.path.join(dir_a, "summary.json")) as f:
        sa = json.load(f)
    with open(os.path.join(dir_b, "summary.json")) as f:
        sb = json.load(f)
    assert sa["final_eval_return"] == sb["final_eval_return"]
    assert sa["per_member"] == sb["per_member"]
    # The final states are bit-identical too.
    state_a, _ = checkpoint.load(os.path.join(dir_a, "checkpoint.jaxrl57"))
    state_b, _ = checkpoint.load(ckpt)
    assert len(state_a) == len(state_b)
    assert all(np.array_equal(x, y) for x, y in zip(state_a, state_b, strict=True))


# ---------------------------------------------------------------- compile cache

# Run in a fresh process: the cache must be set before the process's first
# compilation, and this module's fixture has set JAX's cache folder in this one.
_CACHE_PROBE = """
import collections, json, os, sys
import jax
from jaxrl57.cli import configure_compile_cache, main

cache, out, blocked = sys.argv[1:4]
argv = ["train", "dqn", "--env", "jax:Catch", "--steps", "400", "--set", "num_rows=1",
        "--set", "learning_starts=100", "--set", "eval_episodes=1", "--no-progress"]
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **_: events.update([name]))
res = {}
os.environ["JAXRL57_NO_COMPILE_CACHE"] = "1"
res["env_opt_out"] = configure_compile_cache()
os.environ["JAXRL57_NO_COMPILE_CACHE"] = "0"
os.environ["JAXRL57_CACHE_DIR"] = blocked
res["unwritable"] = configure_compile_cache()
os.environ["JAXRL57_CACHE_DIR"] = cache
for name, extra in [("flag", ["--no-compile-cache"]), ("cold", []), ("warm", [])]:
    events.clear()
    rc = main(argv + extra + ["--out", os.path.join(out, name)])
    res[name] = dict(rc=rc, entries=len(os.listdir(cache)) if os.path.isdir(cache) else 0,
                     hits=events["/jax/compilation_cache/cache_hits"],
                     misses=events["/jax/compilation_cache/cache_misses"])
print(json.dumps(res))
"""


def test_compile_cache_in_the_cache_folder_unless_opted_out(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "file").write_text("")  # a folder cannot be made under a file
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    proc = subprocess.run(
        [sys.executable, "-c", _CACHE_PROBE, str(cache), str(tmp_path / "out"),
         str(tmp_path / "file" / "cache")],
        capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["env_opt_out"] is None and res["unwritable"] is None
    assert res["flag"] == dict(rc=0, entries=0, hits=0, misses=0)
    # The first run writes every program it compiles; the same run again reads
    # them all and compiles nothing.
    cold, warm = res["cold"], res["warm"]
    # (>=: some JAX versions keep an access-time file beside each entry.)
    assert cold["rc"] == 0 and cold["entries"] >= cold["misses"] >= 2 and cold["hits"] == 0
    assert warm == dict(rc=0, entries=cold["entries"], hits=cold["misses"], misses=0)


# ---------------------------------------------------------------- checkpoint files


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.jaxrl57")
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.int32(7)}
    checkpoint.save(path, state, {"rows": [{"a": 1}]})

    # A crash between writing the temporary file and renaming it.
    def crash(*_):
        raise OSError("killed mid-write")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed mid-write"):
        checkpoint.save(path, {"w": np.zeros((2, 3), np.float32), "n": np.int32(8)},
                        {"rows": [{"a": 1}, {"a": 2}]})
    monkeypatch.undo()
    # A partial temporary file left by a process killed while writing.
    with open(tmp_path / ".checkpoint.jaxrl57.tmp-99999", "wb") as f:
        f.write(checkpoint.MAGIC + b"\x80garbage")

    loaded, meta = checkpoint.load(path, like=state)
    np.testing.assert_array_equal(loaded["w"], state["w"])
    assert int(loaded["n"]) == 7
    assert meta == {"rows": [{"a": 1}]}


def test_save_removes_temporaries_of_ended_saves_only(tmp_path):
    """A run killed mid-save leaves `.NAME.tmp-PID`; the next save removes it when
    that process has ended and the file is no longer being written, and leaves a
    running process's file, a fresh file, and names that are not a process id."""
    path = str(tmp_path / "checkpoint.jaxrl57")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    prefix = ".checkpoint.jaxrl57.tmp-"
    dead = tmp_path / f"{prefix}{int(ended.stdout)}"
    dead_fresh = tmp_path / f"{prefix}{int(ended.stdout) + 1_000_000}"  # no such process
    alive = tmp_path / f"{prefix}{os.getppid()}"
    odd = [tmp_path / f"{prefix}{2**40}", tmp_path / f"{prefix}\u00b2", tmp_path / f"{prefix}x"]
    other = tmp_path / ".other.jaxrl57.tmp-1"
    old = time.time() - 3600
    for f in (dead, dead_fresh, alive, other, *odd):
        f.write_bytes(b"partial")
        if f is not dead_fresh:
            os.utime(f, (old, old))
    checkpoint.save(path, {"w": np.zeros(3, np.float32)}, {})
    assert not dead.exists()
    kept = [dead_fresh, alive, other, *odd]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f.name for f in kept] + ["checkpoint.jaxrl57"])


def test_checkpoint_load_rejects_bad_files(tmp_path):
    path = str(tmp_path / "checkpoint.jaxrl57")
    state = {"w": np.arange(1000, dtype=np.float32)}
    checkpoint.save(path, state, {"rows": []})
    data = open(path, "rb").read()

    def bad(name, content):
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(checkpoint.CheckpointError):
            checkpoint.load(str(p))

    bad("truncated", data[: len(data) // 2])
    bad("header_only", data[: data.index(b"\n") + 1])
    bad("empty", b"")
    bad("not_a_checkpoint", b"hello\nworld")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(str(tmp_path / "missing.ckpt"))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.load(path, like={"w": np.zeros(999, np.float32)})
    with pytest.raises(checkpoint.CheckpointError, match=r"it lacks \['v'\]"):
        checkpoint.load(path, like={"v": np.zeros(1000, np.float32), "w": np.zeros(3)})


def test_env_arg_reaches_the_environment(tmp_path, capsys):
    # Catch episodes last exactly size - 1 steps, so the logged length shows the size.
    out = str(tmp_path / "catch5")
    _train(["train", "dqn", "--env", "jax:Catch", "--env-arg", "size=5", "--steps", "400",
            "--set", "num_rows=1", "--set", "learning_starts=100", "--no-progress",
            "--out", out], capsys)
    (row,) = _read_csv(os.path.join(out, "metrics.csv"))
    assert float(row["episode_length"]) == 4.0
    with open(os.path.join(out, "args.json")) as f:
        assert json.load(f)["env_arg"] == ["size=5"]


def _event_scalars(folder: str) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the TensorBoard event files in `folder` (TFRecord framing:
    length u64, its CRC u32, the Event proto, its CRC u32)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for name in sorted(os.listdir(folder)):
        data = open(os.path.join(folder, name), "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


def test_tensorboard_scalars_match_metrics_csv(tmp_path):
    pytest.importorskip("tensorboardX")
    out = str(tmp_path / "tb")
    _train(TINY + ["--seeds", "2", "--tensorboard", "--out", out])
    scalars = _event_scalars(os.path.join(out, "tensorboard"))
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4  # 2 rows x 2 members
    for r in rows:
        tag = f"eval_return/member_{r['member']}"
        assert (int(r["env_steps"]), pytest.approx(float(r["eval_return"]), rel=1e-5)) \
            in scalars[tag]
    assert {t.split("/")[0] for t in scalars} >= {"episode_return", "eval_return", "loss",
                                                   "sps", "wall_s"}
    # The flag is an output option of this invocation, not a setting of the run.
    with open(os.path.join(out, "args.json")) as f:
        assert "tensorboard" not in json.load(f)
