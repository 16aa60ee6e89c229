"""A `SummaryWriter` that writes each scalar, with its wall time, as a JSON line.

Each `add_scalar(tag, value, step)` appends
`{"tag", "value", "step", "wall_s"}` to `LOG_DIR/scalars.jsonl`, where
`wall_s` is the time since the process was launched: `time.time()` minus
`$CLEANRL_SHIM_LAUNCH_TIME` (a `time.time()` stamp taken by the launcher just
before it started the process), or since this module was imported when the
variable is unset.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

_IMPORTED = time.time()


class SummaryWriter:
    """The calls of `torch.utils.tensorboard.SummaryWriter` that CleanRL makes."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        launch = os.environ.get("CLEANRL_SHIM_LAUNCH_TIME")
        self._t0 = float(launch) if launch else _IMPORTED
        self._file = open(os.path.join(log_dir, "scalars.jsonl"), "a")

    def add_scalar(self, tag: str, scalar_value, global_step=None) -> None:
        """Records one scalar; `scalar_value` holds one number (as torch asks)."""
        wall_s = time.time() - self._t0
        value = np.asarray(scalar_value, dtype=np.float64)
        if value.size != 1:
            raise ValueError(f"add_scalar({tag!r}): a scalar holds one number, got {value.shape}")
        step = None if global_step is None else int(global_step)
        self._file.write(json.dumps({"tag": tag, "value": float(value.reshape(())),
                                     "step": step, "wall_s": wall_s}) + "\n")
        self._file.flush()

    def add_text(self, tag: str, text_string: str, global_step=None) -> None:
        """Writes the text next to the scalars, as `LOG_DIR/TAG.txt`."""
        with open(os.path.join(self.log_dir, f"{tag.replace('/', '_')}.txt"), "w") as f:
            f.write(text_string)

    def close(self) -> None:
        self._file.close()
