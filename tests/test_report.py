"""Tests of `jaxrl57.aggregate` (IQM, stratified bootstrap; against NumPy) and of
`jaxrl57 report` on two short real runs plus hand-written Atari run folders."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os

import jax
import numpy as np
import pytest

from jaxrl57 import aggregate
from jaxrl57.cli import main
from jaxrl57.evaluation import human_normalized_score
from jaxrl57.report import load_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN = ["train", "dqn", "--env", "jax:Catch", "--steps", "800", "--set", "num_rows=2",
         "--set", "learning_starts=100", "--seeds", "2", "--no-progress"]
CATCH_AGENT = "dqn learning_starts=100 num_rows=2"  # the agent with its --set overrides
# Hand-written Atari runs: (env id, [(seed, final eval return), ...] per run folder).
ATARI = {
    "breakout": ("Breakout-v5", [(0, 10.0), (1, 20.0), (2, 30.0)]),
    "pong_a": ("Pong-v5", [(0, -20.0), (1, 0.0)]),  # Pong's seeds in two folders
    "pong_b": ("Pong-v5", [(2, 5.0)]),
}


# ---------------------------------------------------------------- statistics


def test_iqm_of_known_arrays():
    # n = 8: floor(8 / 4) = 2 values cut at each end, mean of 3, 4, 5, 6.
    x = np.array([8.0, 1.0, 6.0, 3.0, 2.0, 7.0, 5.0, 4.0])
    assert aggregate.iqm(x) == pytest.approx(4.5)
    # An outlier does not move it; the mean it would.
    assert aggregate.iqm([0.0, 1.0, 2.0, 1000.0]) == pytest.approx(1.5)
    # n < 4 cuts nothing.
    assert aggregate.iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(5, 12))
    ref = np.sort(y, axis=-1)[:, 3:9].mean(axis=-1)
    np.testing.assert_allclose(aggregate.iqm(y, axis=-1), ref)


def test_aggregates_against_numpy():
    scores = [np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0]), np.array([-1.0, 0.0, 4.0, 5.0])]
    means = np.array([2.0, 20.0, 2.0])
    assert aggregate.aggregate_mean(scores) == pytest.approx(means.mean())
    assert aggregate.aggregate_median(scores) == pytest.approx(2.0)
    pooled = np.sort(np.concatenate(scores))  # 9 runs: floor(9/4) = 2 cut at each end
    assert aggregate.aggregate_iqm(scores) == pytest.approx(pooled[2:7].mean())


def test_aggregates_are_batched_over_resamples():
    rng = np.random.default_rng(2)
    batched = [rng.normal(size=(50, n)) for n in (3, 5, 8)]
    for fn in aggregate.AGGREGATES.values():
        looped = [fn([b[i] for b in batched]) for i in range(50)]
        np.testing.assert_allclose(fn(batched), looped)


def test_stratified_resample_keeps_each_games_seeds():
    # Disjoint value sets per game: a resample that mixed games would be caught.
    scores = [np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0]), np.array([100.0])]
    boot = aggregate.stratified_resample(scores, 400, np.random.default_rng(0))
    assert [b.shape for b in boot] == [(400, 3), (400, 2), (400, 1)]
    for b, s in zip(boot, scores, strict=True):
        assert np.isin(b, s).all()
    # It does resample (with replacement): some rows repeat a seed, all seeds appear.
    assert (np.sort(boot[0], axis=1) != scores[0]).any(axis=1).any()
    assert set(np.unique(boot[0])) == {1.0, 2.0, 3.0}


@pytest.mark.parametrize("name", ["mean", "median", "iqm"])
def test_bootstrap_ci_contains_estimate_and_shrinks_with_seeds(name):
    fn = aggregate.AGGREGATES[name]
    rng = np.random.default_rng(3)
    centers = np.array([0.2, 1.0, 3.0, 0.5, 2.0])

    def sample(n):
        return [c + rng.normal(scale=0.5, size=n) for c in centers]

    few, many = sample(5), sample(100)
    est_few = aggregate.stratified_bootstrap_ci(few, fn, reps=1000)
    est_many = aggregate.stratified_bootstrap_ci(many, fn, reps=1000)
    for est, scores in ((est_few, few), (est_many, many)):
        assert est.value == pytest.approx(float(fn(scores)))
        assert est.low <= est.value <= est.high
    assert est_many.high - est_many.low < 0.5 * (est_few.high - est_few.low)
    # Deterministic for a given seed.
    assert aggregate.stratified_bootstrap_ci(few, fn, reps=1000) == est_few


def test_bootstrap_ci_matches_numpy_percentiles():
    scores = [np.array([0.0, 1.0, 4.0, 9.0]), np.array([2.0, 3.0])]
    rng = np.random.default_rng(7)
    stats = []
    idx = [rng.integers(0, len(s), size=(300, len(s))) for s in scores]
    for i in range(300):
        stats.append(np.mean([s[j[i]].mean() for s, j in zip(scores, idx, strict=True)]))
    low, high = np.percentile(stats, [2.5, 97.5])
    est = aggregate.stratified_bootstrap_ci(scores, aggregate.aggregate_mean, reps=300, seed=7)
    assert est == pytest.approx((np.mean([3.5, 2.5]), low, high))


def test_bootstrap_ci_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        aggregate.stratified_bootstrap_ci([np.ones(3)], aggregate.aggregate_mean, confidence=1.0)
    with pytest.raises(ValueError, match="seed"):
        aggregate.aggregate_mean([np.ones(3), np.ones(0)])


# ---------------------------------------------------------------- run folders


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent XLA cache: the second training run has the first one's shapes."""
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


@pytest.fixture(scope="module")
def catch_runs(tmp_path_factory, compile_cache):
    """Two real runs on jax:Catch, seeds 0-1 and 2-3: one env with four seeds."""
    root = tmp_path_factory.mktemp("catch")
    dirs = [str(root / "s0"), str(root / "s2")]
    for seed, out in zip((0, 2), dirs, strict=True):
        assert main(TRAIN + ["--seed", str(seed), "--out", out]) == 0
    return dirs


def _write_run(path, env, results, steps=(50_000, 100_000)):
    """A run folder in `jaxrl57 train`'s format; eval returns rise to `results`."""
    os.makedirs(path)
    seeds = [s for s, _ in results]
    with open(os.path.join(path, "args.json"), "w") as f:
        json.dump({"command": "train", "agent": "dqn", "env": env, "env_arg": [],
                   "steps": steps[-1], "seed": seeds[0], "seeds": len(seeds), "sweep": [],
                   "set": [], "out": str(path), "checkpoint_every": 1}, f)
    with open(os.path.join(path, "metrics.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["member", "seed", "env_steps", "episode_return", "episode_length",
                    "episodes", "eval_return", "updates", "loss", "sps", "wall_s"])
        for k, step in enumerate(steps):
            for m, (seed, ret) in enumerate(results):
                w.writerow([m, seed, step, ret / 2, 100, 10, ret * (k + 1) / len(steps),
                            step // 4, 0.1, 1000.0, 1.0 + k])
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump({"agent": "dqn", "env": env, "members": len(seeds), "env_steps": steps[-1],
                   "final_eval_return": float(np.mean([r for _, r in results])),
                   "per_member": [{"member": m, "seed": s, "overrides": {},
                                   "final_eval_return": r}
                                  for m, (s, r) in enumerate(results)]}, f)
    return str(path)


@pytest.fixture(scope="module")
def atari_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("atari")
    return {name: _write_run(root / name, env, results)
            for name, (env, results) in ATARI.items()}


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _final_returns(run_dir):
    """Each member's eval_return at its last row, read straight from metrics.csv."""
    last = {}
    for row in _read_csv(os.path.join(run_dir, "metrics.csv")):
        last[int(row["seed"])] = float(row["eval_return"])
    return last


def _assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE), path


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, catch_runs, atari_runs):
    """One report over the Catch runs and the Atari folders: (OUT, stdout)."""
    out = str(tmp_path_factory.mktemp("report") / "out")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["report", *catch_runs, *atari_runs.values(), "--out", out, "--reps", "1000"])
    assert rc == 0
    return out, buf.getvalue()


def test_report_writes_all_files(full_report):
    out, _ = full_report
    assert sorted(os.listdir(out)) == ["aggregates.png", "learning_curves.png", "report.csv",
                                       "report.json"]
    _assert_png(os.path.join(out, "learning_curves.png"))
    _assert_png(os.path.join(out, "aggregates.png"))


def test_report_non_atari_rows(full_report, catch_runs):
    out, _ = full_report
    rows = {(r["agent"], r["env"]): r for r in _read_csv(os.path.join(out, "report.csv"))}
    finals = {**_final_returns(catch_runs[0]), **_final_returns(catch_runs[1])}
    assert sorted(finals) == [0, 1, 2, 3]
    returns = np.array([finals[s] for s in range(4)])
    row = rows[(CATCH_AGENT, "jax:Catch")]
    assert row["atari"] == "no" and row["hns"] == "" and row["hns_mean"] == ""
    assert (int(row["runs"]), int(row["seeds"]), row["env_steps"]) == (2, 4, "800")
    assert float(row["return_mean"]) == pytest.approx(returns.mean())
    assert float(row["return_std"]) == pytest.approx(returns.std(ddof=1))
    assert [float(v) for v in row["returns"].split(";")] == pytest.approx(returns, rel=1e-5)
    # Four seeds: the IQM is the mean of the middle two.
    assert row["statistic"] == "IQM return"
    assert float(row["value"]) == pytest.approx(np.sort(returns)[1:3].mean())
    assert float(row["ci_low"]) <= float(row["value"]) <= float(row["ci_high"])
    assert min(returns) <= float(row["ci_low"]) and float(row["ci_high"]) <= max(returns)
    assert "HNS undefined" in row["note"]


def test_report_atari_rows_and_aggregates(full_report):
    out, _ = full_report
    rows = _read_csv(os.path.join(out, "report.csv"))
    by_env = {r["env"]: r for r in rows if r["agent"] == "dqn"}
    expected_hns = {}
    for env, game, seeds in (("Breakout-v5", "Breakout", [10.0, 20.0, 30.0]),
                             ("Pong-v5", "Pong", [-20.0, 0.0, 5.0])):
        row = by_env[env]
        hns = [human_normalized_score(game, r) for r in seeds]
        expected_hns[game] = np.array(hns)
        assert row["atari"] == "yes"
        assert int(row["seeds"]) == 3 and row["env_steps"] == "100000"
        assert [float(v) for v in row["hns"].split(";")] == pytest.approx(hns, rel=1e-5)
        assert float(row["hns_mean"]) == pytest.approx(np.mean(hns))
        assert float(row["return_mean"]) == pytest.approx(np.mean(seeds))
    assert by_env["Breakout-v5"]["runs"] == "1" and by_env["Pong-v5"]["runs"] == "2"
    # Breakout: random 1.7, human 30.5.
    assert expected_hns["Breakout"][0] == pytest.approx((10.0 - 1.7) / (30.5 - 1.7))

    agg = {r["statistic"]: r for r in rows if r["env"] == "all Atari games (2)"}
    assert sorted(agg) == ["IQM HNS", "mean HNS", "median HNS"]
    game_means = [h.mean() for h in expected_hns.values()]
    pooled = np.sort(np.concatenate(list(expected_hns.values())))  # 6 runs: cut 1 each end
    assert float(agg["mean HNS"]["value"]) == pytest.approx(np.mean(game_means))
    assert float(agg["median HNS"]["value"]) == pytest.approx(np.median(game_means))
    assert float(agg["IQM HNS"]["value"]) == pytest.approx(pooled[1:5].mean())
    for r in agg.values():
        assert (r["runs"], r["seeds"]) == ("3", "6")
        assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"])
        assert float(r["ci_low"]) < float(r["ci_high"])


def test_report_json_matches_csv(full_report):
    out, _ = full_report
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    rows = _read_csv(os.path.join(out, "report.csv"))
    assert report["bootstrap"]["reps"] == 1000 and report["bootstrap"]["confidence"] == 0.95
    envs = {(e["agent"], e["env"]): e for e in report["envs"]}
    assert len(envs) == 3
    pong = envs[("dqn", "Pong-v5")]
    assert pong["seeds"] == [0, 1, 2] and pong["returns"] == [-20.0, 0.0, 5.0]
    assert pong["hns"] == pytest.approx([human_normalized_score("Pong", r)
                                         for r in (-20.0, 0.0, 5.0)])
    catch = envs[(CATCH_AGENT, "jax:Catch")]
    assert catch["hns"] is None and catch["seeds"] == [0, 1, 2, 3]
    csv_catch = next(r for r in rows if r["env"] == "jax:Catch")
    assert catch["iqm_return"]["value"] == pytest.approx(float(csv_catch["value"]))
    assert catch["iqm_return"]["ci_low"] == pytest.approx(float(csv_catch["ci_low"]))
    for a in report["aggregates"]:
        r = next(r for r in rows if r["statistic"] == a["statistic"])
        assert a["games"] == ["Breakout-v5", "Pong-v5"]
        assert (a["value"], a["ci_low"], a["ci_high"]) == pytest.approx(
            (float(r["value"]), float(r["ci_low"]), float(r["ci_high"])))


def test_report_stdout_table(full_report):
    _, text = full_report
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["agent", "env"]
    assert set(lines[1]) <= {"-", " "}
    body = lines[2:8]
    assert [line.split("  ")[0].strip() for line in body] == [CATCH_AGENT] + ["dqn"] * 5
    catch = next(line for line in body if "jax:Catch" in line)
    assert "undefined" in catch and "IQM return" in catch
    for stat in ("mean HNS", "median HNS", "IQM HNS"):
        assert any(stat in line and "all Atari games (2)" in line for line in body), stat
    assert f"{human_normalized_score('Breakout', 10.0):.3g}" in text
    assert "Agarwal et al. 2021" in text


def test_report_without_atari(tmp_path, catch_runs, capsys):
    out = str(tmp_path / "out")
    assert main(["report", *catch_runs, "--out", out, "--reps", "200"]) == 0
    rows = _read_csv(os.path.join(out, "report.csv"))
    assert [(r["env"], r["statistic"]) for r in rows] == [("jax:Catch", "IQM return")]
    with open(os.path.join(out, "report.json")) as f:
        assert json.load(f)["aggregates"] == []
    _assert_png(os.path.join(out, "aggregates.png"))
    _assert_png(os.path.join(out, "learning_curves.png"))
    assert "undefined" in capsys.readouterr().out


# ---------------------------------------------------------------- bad input


def _assert_usage_error(capsys, rc, *needles):
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxrl57: error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _bad_folder(root, kind):
    if kind == "missing":
        return str(root / "nope")
    path = root / kind
    if kind == "empty":
        path.mkdir()
        return str(path)
    _write_run(path, "Pong-v5", [(0, 1.0)])
    metrics = path / "metrics.csv"
    text = metrics.read_text().splitlines()
    if kind == "no_metrics":
        metrics.unlink()
    elif kind == "bad_args":
        (path / "args.json").write_text("{not json")
    elif kind == "no_rows":
        metrics.write_text(text[0] + "\n")
    elif kind == "bad_number":
        metrics.write_text("\n".join([text[0], text[1],
                                      text[2].replace(",1.0,", ",abc,", 1)]) + "\n")
    elif kind == "no_eval_column":
        metrics.write_text("\n".join(line.rsplit(",", 5)[0] for line in text) + "\n")
    elif kind == "no_eval_values":
        header = text[0].split(",")
        i = header.index("eval_return")
        rows = [r.split(",") for r in text[1:]]
        for r in rows:
            r[i] = ""
        metrics.write_text("\n".join([text[0]] + [",".join(r) for r in rows]) + "\n")
    elif kind == "binary":
        metrics.write_bytes(b"\xff\xfe\x00garbage\x00")
    elif kind == "bad_summary":
        (path / "summary.json").write_text('{"per_member": 3}')
    return str(path)


@pytest.mark.parametrize("kind,needles", [
    ("missing", ["no such folder"]),
    ("empty", ["not a jaxrl57 run folder", "args.json"]),
    ("bad_args", ["args.json", "unreadable"]),
    ("no_metrics", ["no metrics.csv"]),
    ("no_rows", ["no rows"]),
    ("bad_number", ["line 3", "'abc'"]),
    ("no_eval_column", ["no eval_return column"]),
    ("no_eval_values", ["no eval_return"]),
    ("binary", ["metrics.csv"]),
    ("bad_summary", ["summary.json", "unreadable"]),
])
def test_bad_run_folder_exits_2_with_one_line(tmp_path, capsys, kind, needles):
    rc = main(["report", _bad_folder(tmp_path, kind), "--out", str(tmp_path / "out")])
    _assert_usage_error(capsys, rc, *needles)
    assert not os.path.exists(tmp_path / "out")


def test_members_swept_values_come_from_summary_json(tmp_path):
    # args.json records the sweep as typed; the members' values are read from
    # summary.json, which the run wrote for each member.
    path = _write_run(tmp_path / "swept", "Pong-v5", [(0, 1.0), (0, 2.0)])
    summary_path = os.path.join(path, "summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    for m, lr in zip(summary["per_member"], ("1e-3", "3e-4"), strict=True):
        m["overrides"] = {"learning_rate": lr}
    with open(summary_path, "w") as f:
        json.dump(summary, f)
    runs = load_run(path)
    assert [r.agent for r in runs] == ["dqn learning_rate=1e-3", "dqn learning_rate=3e-4"]
    assert [r.final_return for r in runs] == [1.0, 2.0]


def test_a_folder_without_summary_json_reads_its_members_from_args_json(tmp_path):
    # An unfinished run of a version that wrote summary.json only at the end.
    path = _write_run(tmp_path / "old", "Pong-v5", [(4, 1.0), (5, 2.0)])
    os.remove(os.path.join(path, "summary.json"))
    runs = load_run(path)
    assert [(r.seed, r.final_return, r.agent) for r in runs] == [(4, 1.0, "dqn"), (5, 2.0, "dqn")]


def test_bad_command_lines_exit_2(tmp_path, capsys, atari_runs):
    _assert_usage_error(capsys, main(["report"]), "DIR")
    _assert_usage_error(capsys, main(["report", atari_runs["pong_a"], atari_runs["pong_a"],
                                      "--out", str(tmp_path / "o")]), "given twice")
    _assert_usage_error(capsys, main(["report", atari_runs["breakout"], "--reps", "0",
                                      "--out", str(tmp_path / "o")]), "--reps")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_usage_error(capsys, main(["report", atari_runs["breakout"], "--out",
                                      str(blocker)]), "--out")


def test_same_seed_in_two_folders_is_an_error(tmp_path, capsys):
    a = _write_run(tmp_path / "a", "Pong-v5", [(0, 1.0), (1, 2.0)])
    b = _write_run(tmp_path / "b", "Pong-v5", [(1, 3.0)])
    _assert_usage_error(capsys, main(["report", a, b, "--out", str(tmp_path / "o")]),
                        "seed 1", "both")
