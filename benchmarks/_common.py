"""What every benchmark script shares: its command line and its JSON record."""

from __future__ import annotations

import json
import os
import platform
import sys


def command_line() -> str:
    """The command that ran this script, as recorded with its figures."""
    return " ".join([os.path.basename(sys.executable), *sys.argv])


def write_results(results: dict, path: str) -> None:
    """Writes `results` as indented JSON to `path` (folders made) and says so."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}")


def run_record(**fields) -> dict:
    """Prints the command and the device, and returns them as the start of the
    JSON record (with JAX's and Python's versions, the core count and `fields`)."""
    import jax

    dev = jax.devices()[0]
    record = {"command": command_line(), "device": f"{dev.platform} {dev.device_kind}",
              "jax": jax.__version__, "python": platform.python_version(),
              "cpus": os.cpu_count(), **fields}
    print(f"command: {record['command']}")
    print(f"device: {record['device']}  jax {record['jax']}  cpus {record['cpus']}")
    return record
