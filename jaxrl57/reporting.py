"""Run outputs: metrics.csv, summary.json and the learning-curve PNG."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np


def write_csv(path: str, header: list[str], rows: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in header})
    os.replace(tmp, path)


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v))


def plot_learning_curves(path: str, rows: list[dict], title: str) -> None:
    """Mean across members with the min-max spread, for eval and training returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = sorted({r["member"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key, label, color in (("eval_return", "evaluation return", "C0"),
                              ("episode_return", "training episode return", "C1")):
        steps = sorted({r["env_steps"] for r in rows})
        table = np.full((len(members), len(steps)), np.nan)
        for r in rows:
            table[members.index(r["member"]), steps.index(r["env_steps"])] = r.get(key, np.nan)
        keep = ~np.all(np.isnan(table), axis=0)
        if not keep.any():
            continue
        x = np.asarray(steps)[keep]
        t = table[:, keep]
        ax.plot(x, np.nanmean(t, axis=0), color=color, marker="o", ms=3,
                label=f"{label} (mean of {len(members)})" if len(members) > 1 else label)
        if len(members) > 1:
            ax.fill_between(x, np.nanmin(t, axis=0), np.nanmax(t, axis=0), color=color,
                            alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps per member")
    ax.set_ylabel("undiscounted return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
