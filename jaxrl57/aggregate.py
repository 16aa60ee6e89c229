"""Aggregate scores over games and seeds, with stratified bootstrap intervals.

The statistics and the interval estimates of Agarwal et al. 2021, "Deep
Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS),
written with NumPy and SciPy (the rliable library computes the same things with
a heavier dependency tree):

- the interquartile mean (IQM, sec. 4.2): the mean of the middle 50% of the
  runs, robust to outlier runs like the median yet far less noisy;
- the mean and the median over games of the per-game mean score (the usual
  Atari aggregates, sec. 4.2);
- percentile confidence intervals from the stratified bootstrap (sec. 4.1):
  seeds are resampled with replacement *within* each game, so every resample
  keeps each game's number of runs and the between-game structure.

Scores are given per game ("task") as a sequence of 1-D arrays, one entry per
seed; games may have different numbers of seeds. Every aggregate accepts
arrays with extra leading (batch) axes, `[..., n_k]`, so all bootstrap
resamples are evaluated in one vectorized call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = ["iqm", "aggregate_mean", "aggregate_median", "aggregate_iqm", "AGGREGATES",
           "stratified_resample", "stratified_bootstrap_ci", "IntervalEstimate"]

Scores = Sequence[np.ndarray]  # one [..., n_k] array per game, n_k seeds


def iqm(x, axis=-1):
    """Interquartile mean (Agarwal et al. 2021, sec. 4.2): the mean of the middle 50%.

    `scipy.stats.trim_mean(x, 0.25)`: the lowest and highest `floor(n / 4)` values
    along `axis` are cut off and the rest averaged (so for n < 4 it is the plain
    mean), as in rliable's `aggregate_iqm`.
    """
    return stats.trim_mean(np.asarray(x, dtype=float), proportiontocut=0.25, axis=axis)


def _check(scores: Scores) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=float) for s in scores]
    if not arrays:
        raise ValueError("no games: scores must hold at least one array of per-seed scores")
    for k, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[-1] < 1:
            raise ValueError(f"game {k}: expected at least one seed, got shape {a.shape}")
    return arrays


def aggregate_mean(scores: Scores) -> np.ndarray:
    """Mean over games of each game's mean score over seeds. Args: scores, [..., n_k] each."""
    arrays = _check(scores)
    return np.mean(np.stack([a.mean(axis=-1) for a in arrays], axis=-1), axis=-1)


def aggregate_median(scores: Scores) -> np.ndarray:
    """Median over games of each game's mean score over seeds (the classic Atari median)."""
    arrays = _check(scores)
    return np.median(np.stack([a.mean(axis=-1) for a in arrays], axis=-1), axis=-1)


def aggregate_iqm(scores: Scores) -> np.ndarray:
    """IQM of all runs of all games pooled (Agarwal et al. 2021, sec. 4.2).

    As in rliable, the `(game, seed)` scores are pooled before trimming, so a game
    with more seeds weighs more.
    """
    arrays = _check(scores)
    return iqm(np.concatenate(arrays, axis=-1), axis=-1)


AGGREGATES: dict[str, Callable[[Scores], np.ndarray]] = {
    "mean": aggregate_mean, "median": aggregate_median, "iqm": aggregate_iqm}


def stratified_resample(scores: Scores, reps: int, rng: np.random.Generator
                        ) -> list[np.ndarray]:
    """`reps` stratified bootstrap resamples (Agarwal et al. 2021, sec. 4.1).

    Args: scores, one 1-D array [n_k] per game. Returns one [reps, n_k] array per game
    whose rows are drawn with replacement from that game's own seeds only.
    """
    arrays = _check(scores)
    out = []
    for a in arrays:
        if a.ndim != 1:
            raise ValueError(f"expected 1-D per-game scores, got shape {a.shape}")
        out.append(a[rng.integers(0, a.shape[0], size=(reps, a.shape[0]))])
    return out


class IntervalEstimate(NamedTuple):
    """A point estimate with its bootstrap confidence interval `[low, high]`."""

    value: float
    low: float
    high: float


def stratified_bootstrap_ci(scores: Scores, statistic: Callable[[Scores], np.ndarray],
                            *, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> IntervalEstimate:
    """Point estimate and percentile stratified-bootstrap CI (Agarwal et al. 2021, sec. 4.1).

    Args: scores, one 1-D array [n_k] of per-seed scores per game; statistic, a function
    of such a list that also accepts [reps, n_k] arrays and returns [reps] (the
    aggregates of this module do). The interval is the `(1 - confidence) / 2` and
    `(1 + confidence) / 2` quantiles of the statistic over `reps` resamples in which
    seeds are drawn with replacement within each game (with one game, the ordinary
    bootstrap). A game with a single seed contributes no resampling spread.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    arrays = _check(scores)
    point = float(statistic(arrays))
    boot = np.asarray(statistic(stratified_resample(arrays, reps, np.random.default_rng(seed))))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return IntervalEstimate(point, float(low), float(high))
