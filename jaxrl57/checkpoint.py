"""Atomic, verified checkpoints of a complete training state that cannot run code.

A checkpoint is one file of raw array bytes and a JSON manifest:

    b"JAXRL57-CKPT-2\\n"                       16-byte header
    leaf 0 bytes, leaf 1 bytes, ...           each leaf C-ordered, 64-byte aligned
    manifest (UTF-8 JSON)                     format, treedef, per leaf: tree path,
                                              dtype, shape, offset, nbytes, SHA-256;
                                              meta (rows, wall_s)
    manifest length (8 bytes, little endian), manifest SHA-256 (32 bytes),
    b"JAXRL57-CKPT-2\\n"

Loading parses JSON (`json.loads` builds only dicts, lists, strings and
numbers), checks every leaf's path, dtype and shape against the run's own
state template before reading a byte of it, accepts only plain numeric
dtypes, and fills preallocated arrays with `readinto`; no pickle, no
`allow_pickle`, no object dtype, nothing in the file names code to run.
The previous format (a pickle behind a SHA-256 of itself, which
authenticated nothing) is refused without being unpickled.

Writing streams the leaves one by one into a temporary file in the same
folder (no serialised copy of the state in memory), fsyncs it and renames it
over the previous checkpoint (`os.replace` is atomic on POSIX), so a process
killed or failing mid-write leaves the last good checkpoint in place.

Restored leaves are read into 64-byte aligned buffers, which a CPU backend
adopts without a copy, so neither a save nor a restore holds a second copy of
the state in host memory.

orbax-checkpoint was measured against this format (benchmarks/checkpoint_io.py,
docs/results.md). It compresses (an Atari replay shrinks many times over), but
on a CPU backend it holds a second copy of the state while saving and while
restoring, costs several times more per save on the small states that
`jaxrl57 train` saves after every log row, keeps no checksum of the data, and
casts a stored array to the target's dtype instead of refusing it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import math
import os
import struct
import time
from typing import Any

import jax
import numpy as np

MAGIC = b"JAXRL57-CKPT-2\n"
OLD_MAGIC = b"JAXRL57-CKPT-1 "  # the pickle format, refused unread
FORMAT = "jaxrl57-checkpoint"
VERSION = 2
_HEADER = len(MAGIC)
_FOOTER = 8 + 32 + len(MAGIC)
_ALIGN = 64
_CHUNK = 64 << 20  # bytes written or read (and hashed) per call
# Plain numeric dtypes only: the manifest names one of these, never a type to build.
_DTYPES = {name: np.dtype(jax.numpy.dtype(name)) for name in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128")}


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of an unsupported format, or does not match
    the run."""


def _host_leaf(x) -> tuple[np.ndarray, str | None]:
    """A leaf as a host array of a plain dtype; typed PRNG keys as their key data and
    the name of their implementation."""
    if _is_key(x):
        return np.asarray(jax.device_get(jax.random.key_data(x))), str(jax.random.key_impl(x))
    a = np.asarray(jax.device_get(x))
    return (a if a.flags.c_contiguous else a.copy(order="C")), None


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _bytes_of(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view(np.uint8)


def _write_hashed(f, flat: np.ndarray, pool) -> str:
    """Writes uint8 `flat` to `f` while a worker thread hashes it (both release the
    GIL), so the checksum costs no extra pass over a large state."""
    h = hashlib.sha256()
    pending = None
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK]
        if pending is not None:
            pending.result()
        pending = pool.submit(h.update, chunk)
        f.write(chunk)
    if pending is not None:
        pending.result()
    return h.hexdigest()


_STALE_AFTER_S = 600.0


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Removes the temporary files of saves to `name` whose process has ended: a
    run killed while saving leaves one, as large as the checkpoint (gigabytes
    with an Atari replay), and the next save would write a second beside it.

    A file is left alone while its process id is running here, or when it was
    written in the last ten minutes: a save from another machine or container
    sharing the folder has a process id this one cannot see, but it keeps
    writing to its file."""
    prefix = f".{name}.tmp-"
    now = time.time()
    for entry in os.listdir(folder):
        suffix = entry[len(prefix):]
        if not entry.startswith(prefix) or not (suffix.isascii() and suffix.isdigit()):
            continue
        pid = int(suffix)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running: perhaps another process saving here
        except ProcessLookupError:
            pass
        except (OSError, OverflowError):
            continue  # exists but is not ours to signal, or no process id at all
        path = os.path.join(folder, entry)
        try:
            if now - os.path.getmtime(path) >= _STALE_AFTER_S:
                os.remove(path)
        except OSError:
            pass


def save(path: str, state: Any, meta: dict) -> None:
    """Writes `state` (a pytree of arrays) and `meta` (JSON-able) to `path` atomically."""
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder, os.path.basename(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    entries = []
    try:
        with open(tmp, "wb") as f, concurrent.futures.ThreadPoolExecutor(1) as pool:
            f.write(MAGIC)
            offset = _HEADER
            for key_path, x in path_leaves:
                a, key_impl = _host_leaf(x)
                if a.dtype.name not in _DTYPES:
                    raise TypeError(f"cannot checkpoint leaf {jax.tree_util.keystr(key_path)} "
                                    f"of dtype {a.dtype}")
                pad = -offset % _ALIGN
                f.write(b"\0" * pad)
                offset += pad
                entry = {"path": jax.tree_util.keystr(key_path), "dtype": a.dtype.name,
                         "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes,
                         "sha256": _write_hashed(f, _bytes_of(a), pool)}
                if key_impl is not None:
                    entry["key_impl"] = key_impl
                entries.append(entry)
                offset += a.nbytes
                del a  # one leaf on the host at a time (device states)
            manifest = json.dumps({"format": FORMAT, "version": VERSION,
                                   "treedef": str(treedef), "leaves": entries,
                                   "meta": meta}).encode()
            f.write(manifest)
            f.write(struct.pack("<Q", len(manifest)) + hashlib.sha256(manifest).digest() + MAGIC)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_manifest(f, path: str, size: int) -> dict:
    head = f.read(_HEADER)
    if head.startswith(OLD_MAGIC):
        raise CheckpointError(
            f"{path} is a checkpoint of the old pickle format, which is no longer supported "
            f"(loading it could run code); start a new run")
    if head != MAGIC:
        raise CheckpointError(f"{path} is not a jaxrl57 checkpoint")
    if size < _HEADER + _FOOTER:
        raise CheckpointError(f"checkpoint {path} is corrupt (truncated)")
    f.seek(size - _FOOTER)
    footer = f.read(_FOOTER)
    (length,) = struct.unpack("<Q", footer[:8])
    if footer[40:] != MAGIC or length > size - _HEADER - _FOOTER:
        raise CheckpointError(f"checkpoint {path} is corrupt (truncated)")
    f.seek(size - _FOOTER - length)
    text = f.read(length)
    if hashlib.sha256(text).digest() != footer[8:40]:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch in the manifest)")
    try:
        manifest = json.loads(text.decode())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"checkpoint {path} is corrupt (bad manifest)") from None
    problem = _manifest_problem(manifest, data_end=size - _FOOTER - length)
    if problem:
        raise CheckpointError(f"checkpoint {path} is corrupt (bad manifest: {problem})")
    return manifest


def _manifest_problem(manifest, data_end: int) -> str:
    """What is wrong with a parsed manifest ('' if nothing): its format, a dtype
    that is not a plain numeric one, or leaves out of order, outside the data or
    sized otherwise than their dtype and shape say."""
    if not isinstance(manifest, dict) or (manifest.get("format"), manifest.get("version")) != (
            FORMAT, VERSION):
        return "not a jaxrl57 manifest"
    if not isinstance(manifest.get("meta"), dict) or not isinstance(manifest.get("treedef"), str):
        return "no meta or treedef"
    leaves = manifest.get("leaves")
    if not isinstance(leaves, list):
        return "no leaves"
    end = _HEADER
    for i, e in enumerate(leaves):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), str)
                                              for k in ("path", "dtype", "sha256")) or (
                "key_impl" in e and not isinstance(e["key_impl"], str)):
            return f"leaf {i} is malformed"
        if e["dtype"] not in _DTYPES:
            return f"leaf {i} has dtype {e['dtype']!r}, not a plain numeric dtype"
        shape, offset, nbytes = e.get("shape"), e.get("offset"), e.get("nbytes")
        if (not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)
                or type(offset) is not int or type(nbytes) is not int
                or nbytes != _DTYPES[e["dtype"]].itemsize * math.prod(shape)):
            return f"leaf {i} has a bad shape or size"
        if offset < end or offset + nbytes > data_end:
            return f"leaf {i} lies outside its place in the file"
        end = offset + nbytes
    return ""


def _read_leaf(f, path: str, e: dict, pool) -> np.ndarray:
    """The leaf `e` read into a fresh array, its SHA-256 checked while reading."""
    # 64-byte aligned, so that on a CPU backend `jax.device_put` adopts the buffer
    # instead of copying it (a frame replay is one leaf of gigabytes).
    buf = np.empty(e["nbytes"] + _ALIGN, np.uint8)
    lead = -buf.ctypes.data % _ALIGN
    flat = buf[lead:lead + e["nbytes"]]
    a = flat.view(_DTYPES[e["dtype"]]).reshape(e["shape"])
    f.seek(e["offset"])
    h = hashlib.sha256()
    pending = None
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK]
        if f.readinto(memoryview(chunk)) != chunk.size:
            raise CheckpointError(f"checkpoint {path} is corrupt (truncated)")
        if pending is not None:
            pending.result()
        pending = pool.submit(h.update, chunk)
    if pending is not None:
        pending.result()
    if h.hexdigest() != e["sha256"]:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch in "
                              f"{e['path']!r})")
    return a


def _check_like(path: str, manifest: dict, like: Any) -> tuple[list, Any]:
    """The template's leaves and treedef, after checking the stored tree against them."""
    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    stored = manifest["leaves"]
    if (str(treedef) != manifest["treedef"] or len(stored) != len(path_leaves)
            or any(jax.tree_util.keystr(k) != e["path"]
                   for (k, _), e in zip(path_leaves, stored, strict=True))):
        raise CheckpointError(f"checkpoint {path} does not match this run's state "
                              f"({_layout_difference(stored, path_leaves)}): it was written "
                              f"with other settings, or by a jaxrl57 whose state had another "
                              f"layout; start a new run")
    for (k, x), e in zip(path_leaves, stored, strict=True):
        key_impl = None
        if _is_key(x):
            # An abstract template (ShapeDtypeStruct) takes keys of any implementation.
            key_impl = (str(jax.random.key_impl(x)) if isinstance(x, jax.Array)
                        else e.get("key_impl", "a typed key"))
            x = jax.eval_shape(jax.random.key_data, x)
        want = (tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, "dtype")
                                              else np.asarray(x).dtype).name, key_impl)
        got = (tuple(e["shape"]), e["dtype"], e.get("key_impl"))
        if got != want:
            raise CheckpointError(
                f"checkpoint {path} does not match this run: {jax.tree_util.keystr(k)} is "
                f"{got[1]}{list(got[0])}, expected {want[1]}{list(want[0])}"
                + (f" ({got[2]!r} keys, expected {want[2]!r})" if got[2] != want[2] else ""))
    return [x for _, x in path_leaves], treedef


def _layout_difference(stored: list, path_leaves: list) -> str:
    """The first leaves by which a stored state and the run's template differ, as text."""
    have = [e["path"] for e in stored]
    want = [jax.tree_util.keystr(k) for k, _ in path_leaves]
    missing = [p for p in want if p not in set(have)]
    extra = [p for p in have if p not in set(want)]

    def some(paths):
        return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")

    parts = ([f"it lacks {some(missing)}"] if missing else []) + (
        [f"it has {some(extra)} that this run does not"] if extra else [])
    return "; ".join(parts) or "its leaves are in another order or tree"


@contextlib.contextmanager
def _opened(path: str):
    """(file, a one-thread pool for hashing while reading, the checked manifest)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    with f, concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield f, pool, _read_manifest(f, path, os.fstat(f.fileno()).st_size)


def load_leaves(path: str, contains: str = "") -> dict[str, np.ndarray]:
    """The stored leaves whose key path (`jax.tree_util.keystr`, e.g.
    `".learner.arm_returns.pulls"`) contains `contains`, as numpy arrays by path:
    to look into a run's state (what Agent57's bandits chose, a replay's fill)
    without building its agent. Only the leaves asked for are read."""
    with _opened(path) as (f, pool, manifest):
        return {e["path"]: _read_leaf(f, path, e, pool) for e in manifest["leaves"]
                if contains in e["path"]}


def load(path: str, like: Any | None = None) -> tuple[Any, dict]:
    """Returns `(state, meta)`. With `like` (the run's state template: arrays, or
    `jax.ShapeDtypeStruct`s as from `jax.eval_shape`), every stored leaf is checked
    against it before it is read, and the state comes back in its tree structure,
    each leaf placed with the sharding of the template's leaf (numpy leaves stay
    numpy); without, the state is the list of leaves as numpy arrays."""
    with _opened(path) as (f, pool, manifest):
        if like is None:
            return [_read_leaf(f, path, e, pool) for e in manifest["leaves"]], manifest["meta"]
        like_leaves, treedef = _check_like(path, manifest, like)
        leaves = []
        for x, e in zip(like_leaves, manifest["leaves"], strict=True):
            a = _read_leaf(f, path, e, pool)
            if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
                if "key_impl" in e:
                    impl = jax.random.key_impl(x) if isinstance(x, jax.Array) else e["key_impl"]
                    try:  # a name looked up among JAX's PRNG implementations
                        a = jax.random.wrap_key_data(a, impl=impl)
                    except (ValueError, TypeError, KeyError):
                        raise CheckpointError(f"checkpoint {path} has keys of an unknown "
                                              f"implementation {impl!r}") from None
                # One leaf on the host at a time, then onto the template's devices
                # (an abstract leaf without a sharding: the default device).
                a = jax.device_put(a, getattr(x, "sharding", None))
            leaves.append(a)
        return jax.tree.unflatten(treedef, leaves), manifest["meta"]
