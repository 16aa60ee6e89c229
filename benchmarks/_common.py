"""What every benchmark script shares: its command line and its JSON record."""

from __future__ import annotations

import json
import os
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
