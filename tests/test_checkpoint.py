"""Checkpoints: round trips of nested states, files crafted to run code on
`--resume` (old pickle format and the new one), truncated and corrupt files, a
failure mid-save, and a run stopped when its training becomes non-finite."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl57 import checkpoint
from jaxrl57.cli import main

CKPT = "checkpoint.jaxrl57"
FOOTER = 8 + 32 + len(checkpoint.MAGIC)
# Member 0 learns, member 1's learning rate makes its first updates non-finite; the
# first row (1000 env steps) makes no updates, so its loss is logged as NaN.
DIVERGING = ["train", "dqn", "--env", "jax:Catch", "--steps", "2000", "--set", "num_rows=2",
             "--set", "learning_starts=1100", "--sweep", "learning_rate=1e-3,1e12",
             "--no-progress"]


class _WritesMarker:
    """Unpickling this object opens (creates) the file at `path`: the payload of an
    attacker's checkpoint."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def _assert_exit_2(argv, *needles) -> None:
    rc, err = _run(argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("jaxrl57: error: "), (rc, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _split(path) -> tuple[bytes, dict]:
    """A checkpoint file as (header and leaf bytes, manifest)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[-FOOTER:-FOOTER + 8])
    return data[:-FOOTER - n], json.loads(data[-FOOTER - n:-FOOTER])


def _join(path, body: bytes, manifest) -> None:
    m = json.dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest
    with open(path, "wb") as f:
        f.write(body + m + struct.pack("<Q", len(m)) + hashlib.sha256(m).digest()
                + checkpoint.MAGIC)


# ---------------------------------------------------------------- round trip


@flax.struct.dataclass
class _Inner:
    w: jax.Array
    key: jax.Array  # typed PRNG keys
    n: int = flax.struct.field(pytree_node=False, default=3)


class _Outer(NamedTuple):
    inner: _Inner
    table: dict
    raw_key: jax.Array  # a uint32 PRNGKey, as the runners hold them


def _nested(seed: int, n: int = 3) -> _Outer:
    rng = np.random.default_rng(seed)
    return _Outer(
        inner=_Inner(w=jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                     key=jax.random.split(jax.random.key(seed), 3), n=n),
        table={"frames": jnp.asarray(rng.integers(0, 256, (2, 5, 5)), jnp.uint8),
               "done": jnp.asarray(rng.random(7) < 0.5),
               "count": jnp.int32(seed + 10),
               "half": jnp.asarray(rng.normal(size=4), jnp.bfloat16),
               "host64": rng.normal(size=(2,)),  # numpy float64 leaf
               "ids": rng.integers(-5, 5, (3,), dtype=np.int64),
               "empty": jnp.zeros((0, 3))},
        raw_key=jax.random.PRNGKey(seed))


def test_round_trip_of_a_nested_state(tmp_path):
    path = str(tmp_path / CKPT)
    saved = _nested(1)
    meta = {"rows": [{"loss": float("nan"), "updates": 3}], "wall_s": 1.5}
    checkpoint.save(path, saved, meta)
    loaded, loaded_meta = checkpoint.load(path, like=_nested(0))

    assert isinstance(loaded, _Outer) and isinstance(loaded.inner, _Inner)
    assert loaded.inner.n == 3
    assert np.isnan(loaded_meta["rows"][0]["loss"]) and loaded_meta["wall_s"] == 1.5
    assert jax.dtypes.issubdtype(loaded.inner.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(loaded.inner.key),
                                  jax.random.key_data(saved.inner.key))
    # The restored keys draw what the saved ones draw.
    np.testing.assert_array_equal(jax.random.uniform(loaded.inner.key[1], (3,)),
                                  jax.random.uniform(saved.inner.key[1], (3,)))
    flat_saved = jax.tree.leaves(saved._replace(inner=saved.inner.replace(key=0)))
    flat_loaded = jax.tree.leaves(loaded._replace(inner=loaded.inner.replace(key=0)))
    assert len(flat_saved) == len(flat_loaded) == 10
    for a, b in zip(flat_saved, flat_loaded, strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        # Device leaves come back on the template's devices, host leaves stay on the host.
        assert isinstance(b, jax.Array) == isinstance(a, jax.Array)
        if isinstance(a, jax.Array):
            assert b.sharding == a.sharding

    # An abstract template (as from jax.eval_shape) with the shardings to restore to.
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if isinstance(x, jax.Array) else x, _nested(0))
    again, _ = checkpoint.load(path, like=abstract)
    assert isinstance(again.inner.w, jax.Array) and again.inner.w.sharding == saved.inner.w.sharding
    np.testing.assert_array_equal(again.inner.w, saved.inner.w)
    np.testing.assert_array_equal(jax.random.key_data(again.inner.key),
                                  jax.random.key_data(saved.inner.key))

    # Without a template: the leaves in order, keys as their key data.
    leaves, _ = checkpoint.load(path)
    np.testing.assert_array_equal(leaves[0], saved.inner.w)
    np.testing.assert_array_equal(leaves[1], jax.random.key_data(saved.inner.key))

    # By key path, only those asked for.
    named = checkpoint.load_leaves(path, contains=".inner.")
    assert list(named) == [jax.tree_util.keystr(k) for k, _ in
                           jax.tree_util.tree_flatten_with_path(saved)[0]][:len(named)]
    assert ".inner.w" in named and not any(".table" in k for k in named)
    np.testing.assert_array_equal(named[".inner.w"], saved.inner.w)
    assert len(checkpoint.load_leaves(path)) == 10


class _Grown(NamedTuple):  # a state that gained a field since the checkpoint was written
    inner: _Inner
    table: dict
    raw_key: jax.Array
    eval_key: jax.Array


def test_a_state_layout_change_names_the_leaves_that_differ(tmp_path):
    path = str(tmp_path / CKPT)
    old = _nested(1)
    checkpoint.save(path, old, {})
    grown = _Grown(*_nested(0), eval_key=jnp.zeros(2, jnp.uint32))
    with pytest.raises(checkpoint.CheckpointError, match=r"it lacks \.eval_key\b"):
        checkpoint.load(path, like=grown)
    checkpoint.save(path, grown, {})
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"it has \.eval_key that this run does not"):
        checkpoint.load(path, like=old)


def test_load_refuses_other_structures_dtypes_and_keys(tmp_path):
    path = str(tmp_path / CKPT)
    checkpoint.save(path, _nested(1), {})
    # A static field is part of the structure.
    with pytest.raises(checkpoint.CheckpointError, match="another order or tree"):
        checkpoint.load(path, like=_nested(0, n=4))
    t = _nested(0)
    with pytest.raises(checkpoint.CheckpointError, match=r"does not match.*\.inner\.w"):
        checkpoint.load(path, like=t._replace(inner=t.inner.replace(w=t.inner.w[:2])))
    # Another dtype is refused, not cast.
    with pytest.raises(checkpoint.CheckpointError, match=r"float32\[3, 4\], expected float16"):
        checkpoint.load(path, like=t._replace(inner=t.inner.replace(
            w=t.inner.w.astype(jnp.float16))))
    other_keys = jax.random.split(jax.random.key(0, impl="rbg"), 3)
    with pytest.raises(checkpoint.CheckpointError, match="keys"):
        checkpoint.load(path, like=t._replace(inner=t.inner.replace(key=other_keys)))


# ---------------------------------------------------------------- a run that diverges


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("diverged") / "run")
    rc, err = _run(DIVERGING + ["--out", out])
    return rc, err, out


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(diverged):
    rc, err, out = diverged
    lines = err.strip().splitlines()
    assert rc == 3, err
    assert len(lines) == 1 and lines[0].startswith("jaxrl57: error: "), err
    assert "non-finite at row 2 (2000 env steps" in lines[0]
    assert "member 1 (seed 0)" in lines[0] and "member 0" not in lines[0]
    assert f"checkpoint of row 1 is kept in {os.path.join(out, CKPT)}" in lines[0]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["finished"] is False and summary["rows_done"] == 1  # the last good row
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    # The first row made no updates (NaN loss, not a fault); the second is logged.
    assert [(r["member"], r["env_steps"]) for r in rows] == [
        ("0", "1000"), ("1", "1000"), ("0", "2000"), ("1", "2000")]
    assert rows[0]["updates"] == rows[1]["updates"] == "0"
    assert int(rows[2]["updates"]) == int(rows[3]["updates"]) > 0
    assert np.isfinite(float(rows[2]["loss"]))
    assert not np.isfinite(float(rows[3]["loss"] or "nan"))

    leaves, meta = checkpoint.load(os.path.join(out, CKPT))
    assert [r["env_steps"] for r in meta["rows"]] == [1000, 1000]
    for x in leaves:
        if np.issubdtype(x.dtype, np.floating):
            assert np.all(np.isfinite(x))


# ---------------------------------------------------------------- crafted checkpoints


@pytest.fixture
def run_dir(diverged, tmp_path):
    """A copy of a run folder (args.json, a good checkpoint) to tamper with."""
    run = str(tmp_path / "run")
    shutil.copytree(diverged[2], run)
    return run


def _old_format(payload_object) -> bytes:
    payload = pickle.dumps(payload_object)
    return b"JAXRL57-CKPT-1 " + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def test_old_pickle_checkpoint_cannot_run_code(run_dir, tmp_path):
    # The payload is live: unpickling it writes its file.
    live = tmp_path / "live"
    pickle.loads(_old_format(_WritesMarker(live)).split(b"\n", 1)[1])
    assert live.exists()

    marker = tmp_path / "pwned"
    crafted = _old_format({"leaves": [_WritesMarker(marker)], "treedef": "", "meta": {}})
    os.remove(os.path.join(run_dir, CKPT))
    with open(os.path.join(run_dir, "checkpoint.ckpt"), "wb") as f:
        f.write(crafted)
    _assert_exit_2(["train", "--resume", run_dir], "old pickle format", "no longer supported")
    # The same bytes under the new name.
    with open(os.path.join(run_dir, CKPT), "wb") as f:
        f.write(crafted)
    with pytest.raises(checkpoint.CheckpointError, match="old pickle format"):
        checkpoint.load(os.path.join(run_dir, CKPT))
    assert not marker.exists()


def test_crafted_new_format_cannot_run_code(run_dir, tmp_path):
    path = os.path.join(run_dir, CKPT)
    body, manifest = _split(path)
    marker = tmp_path / "pwned"
    # An object array saved as .npy (with pickle), as an attacker would ship it.
    npy = str(tmp_path / "evil.npy")
    np.save(npy, np.array([_WritesMarker(marker)], dtype=object), allow_pickle=True)
    evil = open(npy, "rb").read()
    with pytest.raises(ValueError):  # what numpy itself does without allow_pickle
        np.load(npy)
    np.load(npy, allow_pickle=True)  # the payload is live
    assert marker.exists()
    marker.unlink()
    shutil.copy(npy, os.path.join(run_dir, "evil.npy"))

    pad = -len(body) % 64
    last = len(manifest["leaves"]) - 1

    def crafted(payload, **leaf):
        """The checkpoint with its last leaf pointing at `payload` (checksum matching)."""
        leaves = [dict(e) for e in manifest["leaves"]]
        leaves[last].update(offset=len(body) + pad, nbytes=len(payload),
                            sha256=hashlib.sha256(payload).hexdigest(), **leaf)
        _join(path, body + b"\0" * pad + payload, dict(manifest, leaves=leaves))

    crafted(evil, dtype="object", shape=[1])
    _assert_exit_2(["train", "--resume", run_dir], "corrupt", "dtype 'object'")
    for dtype in ("|O", "O", "[('a', 'O')]", "V8", "float32,O"):
        crafted(evil, dtype=dtype, shape=[1])
        with pytest.raises(checkpoint.CheckpointError, match="not a plain numeric dtype"):
            checkpoint.load(path)
    raw_pickle = pickle.dumps(_WritesMarker(marker))
    _join(path, body, raw_pickle)  # a pickle where the manifest belongs
    with pytest.raises(checkpoint.CheckpointError, match=r"corrupt \(bad manifest\)"):
        checkpoint.load(path)
    # Bytes of a pickle under a plain dtype only ever read as numbers, which the
    # run's template then refuses.
    crafted(raw_pickle, dtype="uint8", shape=[len(raw_pickle)])
    assert checkpoint.load(path)[0][last].tobytes() == raw_pickle
    _assert_exit_2(["train", "--resume", run_dir], "does not match")
    assert not marker.exists()


def test_truncated_and_corrupt_files(run_dir):
    path = os.path.join(run_dir, CKPT)
    good = open(path, "rb").read()
    body, manifest = _split(path)
    leaf = max(manifest["leaves"], key=lambda e: e["nbytes"])

    def refused(content, match):
        with open(path, "wb") as f:
            f.write(content)
        with pytest.raises(checkpoint.CheckpointError, match=match):
            checkpoint.load(path)

    for cut in (0, 5, len(checkpoint.MAGIC), len(good) // 2, len(good) - 1):
        refused(good[:cut], "corrupt|not a jaxrl57 checkpoint")
    flipped = bytearray(good)
    flipped[leaf["offset"] + leaf["nbytes"] // 2] ^= 0xFF
    refused(bytes(flipped), "checksum mismatch")
    # A changed manifest byte (rows of the metrics, say) fails the manifest's own
    # checksum; a manifest that is consistent but not JSON, or nested past the
    # parser's recursion limit, is a bad manifest, not a traceback.
    refused(good[:len(body) + 3] + b"#" + good[len(body) + 4:],
            "checksum mismatch in the manifest")
    for text in (b"{not json", b"[" * 200_000):
        _join(path, body, text)
        with pytest.raises(checkpoint.CheckpointError, match="bad manifest"):
            checkpoint.load(path)
    refused(b"hello\nworld", "not a jaxrl57 checkpoint")
    # Offsets past the data, overlapping leaves, sizes that disagree with the shape.
    for change in ({"offset": len(good)}, {"offset": 0}, {"nbytes": leaf["nbytes"] + 1},
                   {"shape": [2**62, 2**62]}):
        leaves = [dict(e, **change) if e is leaf else e for e in manifest["leaves"]]
        _join(path, body, dict(manifest, leaves=leaves))
        with pytest.raises(checkpoint.CheckpointError, match="bad manifest: leaf"):
            checkpoint.load(path)
    with open(path, "wb") as f:
        f.write(good[:len(good) // 2])
    _assert_exit_2(["train", "--resume", run_dir], "corrupt")


def test_failure_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / CKPT)
    before = _nested(1)
    checkpoint.save(path, before, {"rows": [1]})
    write = checkpoint._write_hashed
    written = []

    def dies_on_the_third_leaf(f, flat, pool):
        if len(written) == 2:
            raise OSError("No space left on device")
        written.append(1)
        return write(f, flat, pool)

    monkeypatch.setattr(checkpoint, "_write_hashed", dies_on_the_third_leaf)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, _nested(2), {"rows": [1, 2]})
    assert len(written) == 2  # it died with leaves already in the temporary file
    assert os.listdir(tmp_path) == [CKPT]  # the temporary file is gone
    loaded, meta = checkpoint.load(path, like=_nested(0))
    assert meta == {"rows": [1]}
    np.testing.assert_array_equal(loaded.inner.w, before.inner.w)
    np.testing.assert_array_equal(loaded.table["frames"], before.table["frames"])


def test_finite_checks_name_the_members():
    from jaxrl57.runners.driver import params_finite
    from jaxrl57.train import _non_finite_members

    params = {"w": jnp.ones((3, 4, 5)).at[1, 2, 3].set(jnp.inf),
              "b": jnp.zeros((3, 5)).at[2, 0].set(jnp.nan)}
    np.testing.assert_array_equal(params_finite(params), [True, False, False])
    previous = [{"updates": 10}, {"updates": 10}, {"updates": 10}]
    new = [{"seed": 4, "updates": 10, "loss": float("nan")},  # no updates this row
           {"seed": 5, "updates": 12, "loss": float("inf")},
           {"seed": 6, "updates": 12, "loss": 0.5}]
    assert _non_finite_members(new, [True, True, False], previous) == (
        "member 1 (seed 5) loss inf, member 2 (seed 6) parameters")
    assert _non_finite_members(new, [True, False, True], previous) == (
        "member 1 (seed 5) loss inf and parameters")
    assert _non_finite_members([dict(new[0], updates=0)], [True], None) == ""


def test_finite_check_covers_optimizer_moments_but_not_injected_settings():
    """An Adam moment that overflowed stalls learning with finite params and loss;
    `max_grad_norm=inf` (no clipping, Nature's preset) is a setting, not a fault."""
    from jaxrl57.runners.driver import learner_tree, member_finite

    class State(NamedTuple):
        params: dict
        target_params: dict
        opt_state: tuple
        replay: jax.Array

    tx = optax.chain(optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=jnp.inf),
                     optax.adam(1e-3))
    params = {"w": jnp.ones(3)}
    state = State(params, params, tx.init(params), jnp.full(4, jnp.nan))
    assert bool(member_finite(learner_tree(state)))  # inf setting and NaN replay ignored
    adam = state.opt_state[1][0]
    bad = state._replace(opt_state=(state.opt_state[0],
                                    (adam._replace(nu={"w": adam.nu["w"].at[0].set(jnp.inf)}),
                                     *state.opt_state[1][1:])))
    assert not bool(member_finite(learner_tree(bad)))
    assert not bool(member_finite(learner_tree(state._replace(
        target_params={"w": jnp.ones(3).at[1].set(jnp.nan)}))))


def test_metadata_that_does_not_fit_the_run_exits_2(run_dir):
    """A consistent file (checksums recomputed) whose rows disagree with the run:
    the rows decide where a resumed run starts, so they are checked too."""
    path = os.path.join(run_dir, CKPT)
    body, manifest = _split(path)
    for meta in ({"wall_s": 1.0}, {"rows": "x", "wall_s": 1.0},
                 {"rows": [{}] * 1000, "wall_s": 1.0}, {"rows": [], "wall_s": "x"}):
        _join(path, body, dict(manifest, meta=meta))
        _assert_exit_2(["train", "--resume", run_dir], "corrupt", "rows")
