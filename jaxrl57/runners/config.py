"""The loop settings of a run: what every runner reads (`RunConfig`) and what only
the EnvPool loops read (`EnvPoolConfig`). Both are static: they fix the program's
structure, so `--sweep` cannot vary them; `--set NAME=VALUE` sets either."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Static loop settings of every runner."""

    total_steps: int = 100_000
    """Env steps per member."""
    num_envs: int = 8
    """Environments per member, stepped as one batch."""
    train_every: int = 1
    """Env-batch steps between training phases."""
    updates_per_train: int = 1
    """Gradient updates per training phase."""
    num_rows: int = 20
    """Log rows (evaluations, checkpoints) over the run."""
    eval_episodes: int = 10
    """Evaluation episodes per row."""
    eval_max_steps: int = 0
    """Cap on an evaluation episode's steps; 0: the env's own limit."""

    @property
    def phases_per_row(self) -> int:
        """Training phases per row: `train_every` env-batch steps, then the updates."""
        return max(1, math.ceil(
            self.total_steps / (self.num_rows * self.num_envs * self.train_every)))

    @property
    def iterations_per_row(self) -> int:
        """Steps of the batch of environments per row."""
        return self.phases_per_row * self.train_every

    @property
    def steps_per_row(self) -> int:
        return self.iterations_per_row * self.num_envs

    def validate(self) -> None:
        if self.eval_max_steps < 0:
            raise ValueError(f"eval_max_steps must be >= 0, got {self.eval_max_steps}")
        for name in ("total_steps", "num_envs", "train_every", "updates_per_train", "num_rows",
                     "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_rows * self.steps_per_row >= 2**31:
            raise ValueError(f"total_steps must be below 2**31 per member (the step counters "
                             f"are int32), got {self.total_steps}")


@dataclasses.dataclass(frozen=True)
class EnvPoolConfig:
    """Static settings of the EnvPool loops (`runners.envpool_loop`, `runners.pipeline`);
    the on-device runner has no use for them."""

    pipeline: str = "sync"
    """sync (act, step, learn in turn) or async (an actor thread steps the envs while the
    learner updates; runners.pipeline)."""
    queue_size: int = 2
    """async: env-step batches the actor may run ahead of the learner."""
    actor_refresh: int = 1
    """async: learner batches between refreshes of the actor's parameters."""
    actor_lag: int = 2
    """async: the actor acts on batch t with the parameters of batch t - lag."""
    eval_every_rows: int = 1
    """Rows between evaluations (the on-device runner evaluates every row)."""
    # It saves the per-call overhead on a GPU. On a CPU the scan is unrolled
    # (XLA:CPU runs code inside loops slowly, jax-ml/jax#12868) and gains
    # nothing (docs/results.md).
    scan_updates: bool = False
    """A training phase's updates as one jitted lax.scan instead of one call each."""
    # Same episodes, same actions (tested); "xla" was faster on the CPU
    # (docs/results.md). "auto" picks "xla" when JAX's default backend is the
    # CPU, else "python" (EnvPool's GPU targets have not been run here).
    eval_loop: str = "auto"
    """Evaluation as one XLA program through EnvPool's XLA interface (xla), a host loop
    (python), or auto."""

    def validate(self) -> None:
        if self.pipeline not in ("sync", "async"):
            raise ValueError(f"pipeline must be sync or async, not {self.pipeline!r}")
        if self.eval_loop not in ("auto", "xla", "python"):
            raise ValueError(f"eval_loop must be auto, xla or python, not {self.eval_loop!r}")
        for name in ("eval_every_rows", "queue_size", "actor_refresh", "actor_lag"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


__all__ = ["EnvPoolConfig", "RunConfig"]
