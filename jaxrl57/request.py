"""What a command asks for: the command line parsed once into a typed request.

`cli` builds the argparse parser and turns its namespace into a
`TrainRequest` or `ReportRequest`; `train` and `report` take those and never
see argv. The error type and exit statuses live here, below all three, so the
front has no import circle. Nothing here imports JAX: `cli` parses before JAX
starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One member of a run: its seed and its swept hyperparameter values (text)."""

    seed: int
    overrides: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    """`jaxrl57 train`, parsed.

    The first fields are what `args.json` records (and `--resume` reads back);
    `progress`, `tensorboard`, `video_every` and `resume` belong to one invocation only.
    """

    agent: str = "dqn"
    env: str = "jax:CartPole-v1"
    env_arg: tuple[str, ...] = ()  # NAME=VALUE as given, parsed into `env_kwargs`
    steps: int | None = None
    seed: int = 0
    seeds: int = 1
    sweep: tuple[str, ...] = ()  # NAME=V1,V2,... as given, parsed into `members`
    set: tuple[str, ...] = ()  # NAME=VALUE as given, parsed into `overrides`
    out: str | None = None
    checkpoint_every: int = 1
    no_compile_cache: bool = False
    resume: str | None = None
    progress: bool = True
    tensorboard: bool = False
    video_every: int = 0  # record an evaluation episode every this many log rows (0: never)
    list_settings: bool = False  # print the settings of (agent, env, --set, --steps), train nothing

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(Member(s, o) for s, o in zip(*parse_members(self.seed, self.seeds,
                                                                 self.sweep), strict=True))

    @property
    def overrides(self) -> dict[str, str]:
        return parse_sets(self.set)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return parse_env_args(self.env_arg)

    def check(self) -> TrainRequest:
        """Parses every part once, so bad input fails before any work starts."""
        _ = self.members, self.overrides, self.env_kwargs
        if self.checkpoint_every < 1:
            raise UsageError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if self.video_every < 0:
            raise UsageError(f"--video-every must be >= 0, got {self.video_every}")
        return self

    def saved(self) -> dict[str, Any]:
        """The JSON record of `args.json` (the keys written since the format began)."""
        return dict(command="train", agent=self.agent, env=self.env, env_arg=list(self.env_arg),
                    steps=self.steps, seed=self.seed, seeds=self.seeds, sweep=list(self.sweep),
                    set=list(self.set), out=self.out, checkpoint_every=self.checkpoint_every,
                    no_compile_cache=self.no_compile_cache)

    def resumed_from(self, saved: Mapping[str, Any], run_dir: str) -> TrainRequest:
        """This `--resume` request completed by the run's `args.json`: the run's own
        settings come from the file; progress bar, TensorBoard and checkpoint
        period from this invocation."""
        try:
            return dataclasses.replace(
                self, agent=str(saved["agent"]), env=str(saved["env"]),
                env_arg=_strings(saved.get("env_arg")), steps=_opt_int(saved.get("steps")),
                seed=int(saved.get("seed", 0)), seeds=int(saved.get("seeds", 1)),
                sweep=_strings(saved.get("sweep")), set=_strings(saved.get("set")),
                out=run_dir).check()
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise UsageError(f"--resume {run_dir}: args.json is not a jaxrl57 train record "
                             f"({e})") from None


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """`jaxrl57 report`, parsed."""

    dirs: tuple[str, ...]
    out: str = "report"
    reps: int = 2000

    def check(self) -> ReportRequest:
        if self.reps < 1:
            raise UsageError(f"--reps must be >= 1, got {self.reps}")
        if not self.dirs:
            raise UsageError("no run folders given")
        return self


@dataclasses.dataclass(frozen=True)
class EvalRequest:
    """`jaxrl57 eval`, parsed."""

    run_dir: str
    episodes: int | None = None
    epsilon: float | None = None
    seed: int | None = None
    member: int | None = None
    video: str | None = None
    out: str | None = None

    def check(self) -> EvalRequest:
        if self.episodes is not None and self.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {self.episodes}")
        if self.epsilon is not None and not 0.0 <= self.epsilon <= 1.0:
            raise UsageError(f"--epsilon must be in [0, 1], got {self.epsilon}")
        if self.member is not None and self.member < 0:
            raise UsageError(f"--member must be >= 0, got {self.member}")
        return self


def _strings(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _opt_int(value) -> int | None:
    return None if value is None else int(value)


def _pairs(items: Iterable[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """`--set NAME=VALUE` pairs, values as text (`configs.resolve` types them)."""
    return _pairs(items, "--set")


def parse_env_args(items: Iterable[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs; values read as int, float or bool where they parse.

    The makers check names, types and ranges (`envs.make_env`); the number of envs
    and the seed come from the run's own settings, which the drivers pass to the
    makers themselves, so they cannot be env arguments too."""
    out: dict[str, Any] = {}
    for name, value in _pairs(items, "--env-arg").items():
        if name in ("num_envs", "seed"):
            flag = "--set num_envs=N" if name == "num_envs" else "--seed S"
            raise UsageError(f"--env-arg {name}: set it with {flag}")
        for cast in (int, float):
            try:
                out[name] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[name] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def parse_members(seed: int, seeds: int, sweep: Iterable[str]
                  ) -> tuple[list[int], list[dict[str, str]]]:
    """Seeds and hyperparameter overrides of each member: the sweep grid, each
    point with seeds `seed, ..., seed + seeds - 1`."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    grid_axes = []
    for item in sweep:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not vals:
            raise UsageError(f"--sweep expects NAME=V1,V2,..., got {item!r}")
        grid_axes.append([(name.strip(), v) for v in vals])
    combos = [dict(c) for c in itertools.product(*grid_axes)] if grid_axes else [{}]
    members_seeds, overrides = [], []
    for combo in combos:
        for i in range(seeds):
            members_seeds.append(seed + i)
            overrides.append(combo)
    return members_seeds, overrides


__all__ = ["EXIT_BAD_INPUT", "EXIT_NON_FINITE", "EvalRequest", "Member", "ReportRequest",
           "TrainRequest", "UsageError", "parse_env_args", "parse_members", "parse_sets"]
