"""`jaxrl57 report`: aggregate training runs (games x seeds) into a table and plots.

    jaxrl57 report DIR [DIR ...] [--out OUT] [--reps N]

Each DIR is a run folder written by `jaxrl57 train` (`args.json`, `metrics.csv`);
a `--seeds K` run holds K seeds. Runs are grouped by algorithm (the agent with
its `--set` and `--sweep` overrides) and environment (the env id with its
`--env-arg`s); the seeds of a group may come from several folders. A seed's
score is its last logged `eval_return`.

Writes into OUT (default `report`): `report.csv` and `report.json` (the table
printed on stdout, with per-seed values in the JSON), `learning_curves.png`
(eval return against env steps, one panel per env, mean and min-max band over
seeds) and `aggregates.png` (the interval estimates). For Atari games the
table gives human-normalized scores (HNS) per seed and, over all games, the
mean, median and IQM HNS with 95% stratified bootstrap CIs (Agarwal et al.
2021, see `jaxrl57.aggregate`); other envs have no HNS, so their rows give the
IQM of the raw final eval returns over seeds with a bootstrap CI.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from jaxrl57 import aggregate, reporting
from jaxrl57.evaluation import canonical_game_name, human_normalized_score
from jaxrl57.request import ReportRequest, UsageError, parse_members

CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
COLUMNS = ["agent", "env", "atari", "runs", "seeds", "env_steps", "return_mean", "return_std",
           "returns", "hns", "hns_mean", "statistic", "value", "ci_low", "ci_high", "note"]
NOTE_NO_HNS = "HNS undefined (not Atari): IQM of the raw final eval returns over seeds"


@dataclass
class SeedRun:
    """One seed of one run folder: its final evaluation and its learning curve."""

    run_dir: str
    agent: str  # algorithm label: agent name plus --set/--sweep overrides
    env: str  # env label: env id plus --env-arg values
    env_id: str
    seed: int
    env_steps: int  # env steps of the final evaluation
    final_return: float
    steps: np.ndarray = field(repr=False)  # [T] env steps of the logged rows
    evals: np.ndarray = field(repr=False)  # [T] eval returns (NaN where none)


def atari_game(env_id: str) -> str | None:
    """The Atari-57 game of an env id (EnvPool `Pong-v5`, ...), or None for other envs."""
    if env_id.startswith("jax:"):
        return None
    try:
        return canonical_game_name(env_id)
    except ValueError:
        return None


# ---------------------------------------------------------------- reading run folders


def _fail(message: str):
    raise UsageError(message)


def _label(name: str, settings: dict[str, str]) -> str:
    return " ".join([name, *(f"{k}={v}" for k, v in sorted(settings.items()))])


def _settings(items, where: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, value = str(item).partition("=")
        if not sep or not name:
            _fail(f"{where}: malformed setting {item!r}")
        out[name.strip()] = value.strip()
    return out


def _float(value: str, where: str) -> float:
    if value is None or value.strip() == "":
        return math.nan
    try:
        return float(value)
    except ValueError:
        _fail(f"{where}: not a number: {value!r}")


def _int(value: str, where: str) -> int:
    x = _float(value, where)
    if not math.isfinite(x) or x != int(x):
        _fail(f"{where}: not an integer: {value!r}")
    return int(x)



def _member_overrides(run_dir: str, args: dict) -> dict[int, dict[str, str]]:
    """Each member's swept values, from `summary.json` (written after every row); for
    a folder without one (an unfinished run of a version that wrote it only at the
    end), from the sweep recorded in `args.json`."""
    path = os.path.join(run_dir, "summary.json")
    try:
        with open(path) as f:
            summary = json.load(f)
    except FileNotFoundError:
        try:
            _, overrides = parse_members(int(args.get("seed", 0)), int(args.get("seeds", 1)),
                                         list(args.get("sweep") or []))
        except (UsageError, TypeError, ValueError) as e:
            _fail(f"{run_dir}: no summary.json, and args.json has a bad seeds or sweep ({e})")
        return dict(enumerate(overrides))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(f"{path} is unreadable ({e})")
    try:
        return {int(m["member"]): {str(k): str(v) for k, v in (m.get("overrides") or {}).items()}
                for m in summary["per_member"]}
    except (AttributeError, KeyError, TypeError, ValueError):
        _fail(f"{path} is unreadable: no per_member list of members and overrides")

def load_run(run_dir: str) -> list[SeedRun]:
    """The seeds of one run folder; bad folders raise UsageError with one line."""
    if not os.path.isdir(run_dir):
        _fail(f"{run_dir}: no such folder")
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            args = json.load(f)
    except FileNotFoundError:
        _fail(f"{run_dir}: not a jaxrl57 run folder (no args.json)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(f"{run_dir}/args.json is unreadable ({e})")
    if not isinstance(args, dict) or not isinstance(args.get("env"), str) \
            or not isinstance(args.get("agent"), str):
        _fail(f"{run_dir}: args.json names no agent and env (not a jaxrl57 train run)")
    member_overrides = _member_overrides(run_dir, args)
    settings = _settings(args.get("set"), f"{run_dir}/args.json")
    env_label = _label(args["env"], _settings(args.get("env_arg"), f"{run_dir}/args.json"))

    path = os.path.join(run_dir, "metrics.csv")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        _fail(f"{run_dir}: no metrics.csv (not a jaxrl57 run folder, or nothing logged yet)")
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        _fail(f"{path} is unreadable ({e})")
    missing = [c for c in ("env_steps", "eval_return") if c not in header]
    if missing:
        _fail(f"{path} is unreadable: no {', '.join(missing)} column")
    if not rows:
        _fail(f"{path} has no rows yet")

    by_member: dict[int, list[tuple[float, float, int]]] = {}
    for i, row in enumerate(rows, start=2):
        where = f"{path} line {i}"
        if None in row or any(v is None for v in row.values()):
            _fail(f"{where}: wrong number of fields")
        member = _int(row.get("member") or "0", where)
        seed = row.get("seed")
        seed = _int(seed, where) if seed else int(args.get("seed", 0)) + member
        steps = _float(row["env_steps"], where)
        if not math.isfinite(steps):
            _fail(f"{where}: env_steps is empty")
        by_member.setdefault(member, []).append(
            (steps, _float(row["eval_return"], where), seed))

    out = []
    for member, items in sorted(by_member.items()):
        items.sort(key=lambda t: t[0])
        steps = np.array([t[0] for t in items])
        evals = np.array([t[1] for t in items])
        finite = np.flatnonzero(np.isfinite(evals))
        if finite.size == 0:
            _fail(f"{path}: member {member} has no eval_return yet")
        last = finite[-1]
        overrides = member_overrides.get(member, {})
        out.append(SeedRun(run_dir=run_dir, agent=_label(args["agent"], {**settings, **overrides}),
                           env=env_label, env_id=args["env"], seed=items[0][2],
                           env_steps=int(steps[last]), final_return=float(evals[last]),
                           steps=steps, evals=evals))
    return out


def load_runs(run_dirs: list[str]) -> list[SeedRun]:
    if not run_dirs:
        _fail("no run folders given")
    seen: dict[str, str] = {}
    runs: list[SeedRun] = []
    for d in run_dirs:
        real = os.path.realpath(d)
        if real in seen:
            _fail(f"{d}: run folder given twice (also as {seen[real]})")
        seen[real] = d
        runs.extend(load_run(d))
    where: dict[tuple[str, str, int], str] = {}
    for r in runs:
        key = (r.agent, r.env, r.seed)
        if key in where and where[key] != r.run_dir:
            _fail(f"seed {r.seed} of {r.agent} on {r.env} is in both {where[key]} and "
                  f"{r.run_dir}; report each seed once")
        if key in where:
            _fail(f"{r.run_dir}: seed {r.seed} appears twice (sweep members of one setting?)")
        where[key] = r.run_dir
    return runs


# ---------------------------------------------------------------- the report


def _num(x):
    """JSON/CSV number: NaN becomes None."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _ci(est: aggregate.IntervalEstimate) -> dict:
    return {"value": est.value, "ci_low": est.low, "ci_high": est.high}


def _groups(runs: list[SeedRun]) -> dict[str, dict[str, list[SeedRun]]]:
    """agent label -> env label -> seeds, agents in order of first appearance."""
    out: dict[str, dict[str, list[SeedRun]]] = {}
    for r in runs:
        out.setdefault(r.agent, {}).setdefault(r.env, []).append(r)
    return out


def build_report(runs: list[SeedRun], *, reps: int = 2000) -> dict:
    """The report as a JSON-ready dict: per-env entries and aggregate entries."""
    ci = dict(reps=reps, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED)
    envs, aggregates = [], []
    for agent, by_env in _groups(runs).items():
        atari_scores, atari_dirs, atari_names = [], set(), []
        ordered = sorted(by_env.items(), key=lambda kv: (atari_game(kv[1][0].env_id) is None,
                                                         kv[0]))
        for env, seeds in ordered:
            seeds = sorted(seeds, key=lambda r: r.seed)
            returns = np.array([r.final_return for r in seeds])
            game = atari_game(seeds[0].env_id)
            entry = {
                "agent": agent, "env": env, "atari": game is not None, "game": game,
                "runs": len({r.run_dir for r in seeds}), "run_dirs": sorted({r.run_dir
                                                                              for r in seeds}),
                "seeds": [r.seed for r in seeds], "env_steps": [r.env_steps for r in seeds],
                "returns": returns.tolist(), "return_mean": float(returns.mean()),
                "return_std": _num(returns.std(ddof=1)) if len(returns) > 1 else None,
                "hns": None, "hns_mean": None, "iqm_return": None, "note": None,
            }
            if game is not None:
                hns = np.asarray(human_normalized_score(game, returns), dtype=float)
                entry.update(hns=hns.tolist(), hns_mean=float(hns.mean()))
                atari_scores.append(hns)
                atari_dirs.update(entry["run_dirs"])
                atari_names.append(env)
            else:
                est = aggregate.stratified_bootstrap_ci([returns], aggregate.aggregate_iqm, **ci)
                entry.update(iqm_return=_ci(est), note=NOTE_NO_HNS)
            envs.append(entry)
        if atari_scores:
            for name, fn in (("mean HNS", aggregate.aggregate_mean),
                             ("median HNS", aggregate.aggregate_median),
                             ("IQM HNS", aggregate.aggregate_iqm)):
                est = aggregate.stratified_bootstrap_ci(atari_scores, fn, **ci)
                aggregates.append({
                    "agent": agent, "statistic": name, "games": atari_names,
                    "runs": len(atari_dirs), "seeds": int(sum(len(s) for s in atari_scores)),
                    **_ci(est)})
    return {
        "run_dirs": sorted({r.run_dir for r in runs}),
        "bootstrap": {"method": "percentile CI, stratified bootstrap over seeds within each "
                                "game (Agarwal et al. 2021)", **ci},
        "envs": envs,
        "aggregates": aggregates,
    }


def _join(values) -> str:
    return ";".join(f"{v:.6g}" for v in values)


def table_rows(report: dict) -> list[dict]:
    """The table of report.csv: one row per (agent, env), then each agent's aggregates."""
    rows = []
    for agent in dict.fromkeys(e["agent"] for e in report["envs"]):
        for e in (e for e in report["envs"] if e["agent"] == agent):
            row = {"agent": agent, "env": e["env"], "atari": "yes" if e["atari"] else "no",
                   "runs": e["runs"], "seeds": len(e["seeds"]),
                   "env_steps": _steps(e["env_steps"]), "return_mean": e["return_mean"],
                   "return_std": e["return_std"], "returns": _join(e["returns"]),
                   "hns": _join(e["hns"]) if e["atari"] else "",
                   "hns_mean": e["hns_mean"]}
            if e["iqm_return"] is not None:
                iq = e["iqm_return"]
                row.update(statistic="IQM return", value=iq["value"], ci_low=iq["ci_low"],
                           ci_high=iq["ci_high"], note=NOTE_NO_HNS)
            rows.append(row)
        for a in (a for a in report["aggregates"] if a["agent"] == agent):
            rows.append({"agent": agent, "env": f"all Atari games ({len(a['games'])})",
                         "atari": "yes", "runs": a["runs"], "seeds": a["seeds"],
                         "statistic": a["statistic"], "value": a["value"],
                         "ci_low": a["ci_low"], "ci_high": a["ci_high"],
                         "note": "over games; seeds resampled within each game"})
    return [{c: row.get(c) for c in COLUMNS} for row in rows]


def _steps(values) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _g(x) -> str:
    return "" if x is None else f"{x:.4g}"


def format_table(rows: list[dict], reps: int) -> str:
    """The aligned text table printed on stdout."""
    head = ["agent", "env", "runs", "seeds", "env_steps", "return mean", "std",
            "HNS per seed", "statistic", "value", f"{CONFIDENCE:.0%} CI"]
    lines = [head]
    for r in rows:
        hns = (", ".join(f"{float(v):.3g}" for v in r["hns"].split(";")) if r["hns"]
               else "undefined" if r["atari"] == "no" else "")
        ci = "" if r["value"] is None else f"[{_g(r['ci_low'])}, {_g(r['ci_high'])}]"
        lines.append([r["agent"], r["env"], str(r["runs"]), str(r["seeds"]),
                      r["env_steps"] or "", _g(r["return_mean"]), _g(r["return_std"]), hns,
                      r["statistic"] or "", _g(r["value"]), ci])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    numeric = {2, 3, 4, 5, 6, 9}
    text = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                      for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append("")
    text.append("Final eval return = last logged eval_return of each seed; std over seeds "
                "(ddof=1). HNS = (return - random) / (human - random), scores of "
                "jaxrl57.evaluation.")
    text.append("Atari aggregates: mean and median over games of the per-game mean HNS; IQM "
                "(interquartile mean) of all (game, seed) HNS pooled.")
    text.append("HNS 'undefined' rows are not Atari: their statistic is the IQM of the raw "
                "final eval returns over seeds.")
    text.append(f"CIs: {CONFIDENCE:.0%} percentile stratified bootstrap, seeds resampled "
                f"within each game, {reps} resamples (Agarwal et al. 2021).")
    return "\n".join(text)


def write_csv(path: str, rows: list[dict]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v)
                             for k, v in row.items()})
    os.replace(tmp, path)


# ---------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(plt, n: int, width: float, height: float):
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), dpi=110,
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def plot_learning_curves(path: str, runs: list[SeedRun]) -> None:
    """Eval return against env steps, one panel per env, one line per agent: the mean
    over seeds and the min-max band."""
    plt = _pyplot()
    groups = _groups(runs)
    env_names = list(dict.fromkeys(r.env for r in runs))
    fig, axes = _grid(plt, len(env_names), 5.0, 3.6)
    for ax, env in zip(axes, env_names, strict=True):
        for i, (agent, by_env) in enumerate(groups.items()):
            seeds = by_env.get(env)
            if not seeds:
                continue
            steps = np.unique(np.concatenate([r.steps for r in seeds]))
            table = np.full((len(seeds), len(steps)), np.nan)
            for k, r in enumerate(seeds):
                table[k, np.searchsorted(steps, r.steps)] = r.evals
            keep = ~np.all(np.isnan(table), axis=0)
            x, t = steps[keep], table[:, keep]
            color = f"C{i % 10}"
            ax.plot(x, np.nanmean(t, axis=0), color=color, marker="o", ms=3,
                    label=f"{agent} ({len(seeds)} seeds)")
            if len(seeds) > 1:
                ax.fill_between(x, np.nanmin(t, axis=0), np.nanmax(t, axis=0), color=color,
                                alpha=0.2, linewidth=0)
        ax.set_title(env, fontsize=10)
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_aggregates(path: str, report: dict) -> None:
    """Interval estimates: mean/median/IQM HNS per agent (Atari), and the IQM return per
    agent of each non-Atari env; a bar spans the CI, a black tick marks the estimate."""
    plt = _pyplot()
    panels: list[tuple[str, list[tuple[str, float, float, float]]]] = []
    for name in ("mean HNS", "median HNS", "IQM HNS"):
        items = [(a["agent"], a["value"], a["ci_low"], a["ci_high"]) for a in report["aggregates"]
                 if a["statistic"] == name]
        if items:
            panels.append((name, items))
    for env in dict.fromkeys(e["env"] for e in report["envs"] if not e["atari"]):
        items = [(e["agent"], e["iqm_return"]["value"], e["iqm_return"]["ci_low"],
                  e["iqm_return"]["ci_high"]) for e in report["envs"] if e["env"] == env]
        panels.append((f"IQM return: {env}", items))
    agents = list(dict.fromkeys(e["agent"] for e in report["envs"]))  # colors as in curves
    rows = max(len(items) for _, items in panels)
    fig, axes = _grid(plt, len(panels), 4.2, 0.5 * rows + 1.6)
    for ax, (title, items) in zip(axes, panels, strict=True):
        for y, (agent, value, low, high) in enumerate(items):
            color = f"C{agents.index(agent) % 10}"
            ax.barh(y, high - low, left=low, height=0.6, color=color, alpha=0.5)
            ax.vlines(value, y - 0.3, y + 0.3, color="k", linewidth=2)
        ax.set_yticks(range(len(items)), [item[0] for item in items], fontsize=8)
        ax.set_ylim(-0.6, len(items) - 0.4)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{CONFIDENCE:.0%} stratified bootstrap CIs (Agarwal et al. 2021)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------- the command


def run_report(args: ReportRequest) -> int:
    """`jaxrl57 report`: read the run folders, print the table, write the files."""
    runs = load_runs(list(args.dirs))
    report = build_report(runs, reps=args.reps)
    rows = table_rows(report)
    out = args.out
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        _fail(f"--out {out}: cannot create the folder ({e.strerror or e})")
    reporting.write_json(os.path.join(out, "report.json"), report)
    write_csv(os.path.join(out, "report.csv"), rows)
    plot_learning_curves(os.path.join(out, "learning_curves.png"), runs)
    plot_aggregates(os.path.join(out, "aggregates.png"), report)
    print(format_table(rows, args.reps))
    print(f"wrote report.csv, report.json, learning_curves.png and aggregates.png to {out}",
          file=sys.stderr)
    return 0


__all__ = ["SeedRun", "atari_game", "load_run", "load_runs", "build_report", "table_rows",
           "format_table", "plot_learning_curves", "plot_aggregates", "run_report"]
