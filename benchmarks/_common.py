"""What every benchmark script shares: its command line and its JSON record."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time


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


def run_train(args: list[str], out: str, *, compile_cache: bool = False) -> dict:
    """Runs `jaxrl57 train ARGS --no-progress --out OUT` in its own process (the
    compile cache off unless asked, so the wall includes compiling) and returns
    its command, process wall, summary.json and metrics.csv rows; a failed run
    stops the benchmark with the run's last output."""
    cmd = [sys.executable, "-m", "jaxrl57.cli", "train", *args, "--no-progress", "--out", out]
    env = dict(os.environ, JAXRL57_NO_COMPILE_CACHE="0" if compile_cache else "1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    return {"command": " ".join(["jaxrl57", "train", *args, "--no-progress"]),
            "process_s": process_s, "summary": summary, "rows": rows}
