"""Atomic, verified checkpoints of a complete training state.

A checkpoint is one file: a header line (format, SHA-256 of the payload) and
a pickled payload of plain numpy arrays and Python metadata. It is written to
a temporary file in the same folder, flushed and fsync'ed, then renamed over
the previous one (`os.replace` is atomic on POSIX), so a process killed
mid-write leaves the last good checkpoint in place. Loading checks the hash
and that the stored tree matches the expected structure, shapes and dtypes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from typing import Any

import jax
import numpy as np

MAGIC = b"JAXRL57-CKPT-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match the run."""


def save(path: str, state: Any, meta: dict) -> None:
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    payload = pickle.dumps(
        {"leaves": [np.asarray(x) for x in leaves], "treedef": str(treedef), "meta": meta},
        protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest().encode()
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(MAGIC + b" " + digest + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str, like: Any | None = None) -> tuple[Any, dict]:
    """Returns `(state, meta)`. With `like`, the state is rebuilt in its tree
    structure and every leaf is checked against it."""
    try:
        with open(path, "rb") as f:
            header = f.readline()
            payload = f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    parts = header.strip().split(b" ")
    if len(parts) != 2 or parts[0] != MAGIC:
        raise CheckpointError(f"{path} is not a jaxrl57 checkpoint")
    if hashlib.sha256(payload).hexdigest().encode() != parts[1]:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
    try:
        data = pickle.loads(payload)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means corrupt
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(e).__name__})") from None
    leaves = data["leaves"]
    if like is None:
        return leaves, data["meta"]
    like_leaves, treedef = jax.tree.flatten(like)
    if str(treedef) != data["treedef"] or len(like_leaves) != len(leaves):
        raise CheckpointError(f"checkpoint {path} was written by a different configuration")
    for i, (a, b) in enumerate(zip(leaves, like_leaves, strict=True)):
        if a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype:
            raise CheckpointError(
                f"checkpoint {path} does not match this run: leaf {i} has shape "
                f"{a.shape} {a.dtype}, expected {np.shape(b)} {np.asarray(b).dtype}")
    return jax.tree.unflatten(treedef, leaves), data["meta"]
