"""The log row: what every runner reports after each row of a run, defined once.

A row's fields are `ROW_FIELDS` and the agent's update metrics (`metric_names`
without `"updated"`). The on-device runner builds its rows inside the compiled
program (`jax.numpy`), the EnvPool drivers on the host from the episodes and
metrics they collected (`numpy`, float64); both call `log_row` with the sums of
the row, so the two cannot drift apart (what a mean is over, when it is NaN).
"""

from __future__ import annotations

ROW_FIELDS = ("env_steps", "updates", "episode_return", "episode_length", "episodes",
              "eval_return")


def log_row(xp, *, env_steps, updates, return_sum, length_sum, episodes, eval_return,
            metric_sums: dict, updates_done) -> dict:
    """One member's row from the sums of a row: the mean return and length of the
    episodes that ended in it (NaN when none did), and the mean of each update
    metric over the updates that ran in it (NaN when none did).

    xp: `jax.numpy` (traced, inside a program) or `numpy` (on the host)."""
    safe = xp.maximum(episodes, 1)
    row = {
        "env_steps": env_steps,
        "updates": updates,
        "episode_return": xp.where(episodes > 0, return_sum / safe, xp.nan),
        "episode_length": xp.where(episodes > 0, length_sum / safe, xp.nan),
        "episodes": episodes,
        "eval_return": eval_return,
    }
    n = xp.maximum(updates_done, 1.0)
    row.update({k: xp.where(updates_done > 0, v / n, xp.nan) for k, v in metric_sums.items()})
    return row
