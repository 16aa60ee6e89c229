"""`jaxrl57 train` and `jaxrl57 report`: the command line of the toolkit.

    jaxrl57 train [AGENT] [--env ENV] [--steps N] [--seed S] [--out DIR]
                  [--seeds K] [--sweep NAME=V1,V2,...] [--set NAME=VALUE ...]
    jaxrl57 train --resume DIR
    jaxrl57 report DIR [DIR ...] [--out OUT]    (see jaxrl57.report)

With no arguments it trains `dqn` on `jax:CartPole-v1` (the CartPole-v1
dynamics written in JAX, so the whole run is one compiled program). `--seeds`
and `--sweep` train all members in ONE compiled program (`jax.vmap`).
Bad input ends with one `jaxrl57: error: ...` line and exit status 2; a
training whose loss or parameters become non-finite stops with one such line
and exit status 3, its last good checkpoint kept.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


class UsageError(Exception):
    """Bad command-line input."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _agent_names() -> tuple[str, ...]:
    from jaxrl57.configs import AGENTS  # imports JAX: only when the parser is built

    return AGENTS


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxrl57", description="Value-based deep RL in JAX, DQN to Agent57.")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser(
        "train", help="train an agent",
        epilog="exit status: 0 done; 2 bad input, or a corrupt or mismatched checkpoint; "
               f"{EXIT_NON_FINITE} the loss or the parameters of a member became non-finite "
               "(NaN or inf): the run stops and keeps its last good checkpoint")
    train.error = parser.error  # type: ignore[method-assign]
    train.add_argument("agent", nargs="?", default="dqn",
                       help=f"preset: {', '.join(_agent_names())} (default dqn)")
    train.add_argument("--env", default="jax:CartPole-v1",
                       help="env id: jax:CartPole-v1, jax:Catch, jax:Cave, "
                            "jax:MaskedCartPole-v1, jax:MemoryChain, or an EnvPool id "
                            "such as CartPole-v1 or Breakout-v5 (default jax:CartPole-v1)")
    train.add_argument("--env-arg", action="append", default=[], metavar="NAME=VALUE",
                       help="argument of the environment's maker, e.g. size=16 for jax:Catch, "
                            "frames=2 for jax:Cave, or an EnvPool option")
    train.add_argument("--steps", type=int, default=None, help="env steps per member")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--seeds", type=int, default=1,
                       help="train K seeds (seed, seed+1, ...) in one compiled program")
    train.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="sweep a traced hyperparameter in one compiled program "
                            "(repeat for a grid)")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a setting (agent config, hyperparameter or loop)")
    train.add_argument("--out", default=None, help="output folder (default runs/AGENT-ENV-SEED)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run saved in DIR from its last checkpoint")
    train.add_argument("--checkpoint-every", type=int, default=1, metavar="ROWS",
                       help="write a checkpoint every ROWS log rows (default 1)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write every metrics.csv value as TensorBoard scalars to "
                            "OUT/tensorboard (needs tensorboardX: pip install "
                            "'jaxrl57[tensorboard]')")
    report = sub.add_parser("report", help="aggregate training runs into a table and plots")
    report.error = parser.error  # type: ignore[method-assign]
    report.add_argument("dirs", nargs="+", metavar="DIR",
                        help="run folders written by `jaxrl57 train` (games x seeds)")
    report.add_argument("--out", default="report",
                        help="output folder for report.csv, report.json and the plots "
                             "(default report)")
    report.add_argument("--reps", type=int, default=2000,
                        help="bootstrap resamples of the confidence intervals (default 2000)")
    return parser


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


_first_call = True


def main(argv: list[str] | None = None) -> int:
    global _first_call
    # Wall time counts from process start (imports included) for the first run
    # of a process, from the call for later in-process runs.
    start = _START if _first_call else time.perf_counter()
    _first_call = False
    argv = sys.argv[1:] if argv is None else argv
    from jaxrl57.runners.devices import expose_host_cores

    # Before JAX starts (building the parser imports it): a sweep's members
    # share out the cores.
    expose_host_cores()
    try:
        args = build_parser().parse_args(argv or ["train"])
        if args.command == "report":
            from jaxrl57.report import run_report
            return run_report(args)
        if args.command != "train":
            raise UsageError("the commands are 'train' and 'report' (try: jaxrl57 --help)")
        from jaxrl57.train import run_training
        return run_training(args, start)
    except UsageError as e:
        print(f"jaxrl57: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxrl57: interrupted; resume with --resume", file=sys.stderr)
        return 130


def parse_env_args(items: list[str]) -> dict:
    """`NAME=VALUE` pairs; values read as int, float or bool where they parse.

    The makers check names, types and ranges (`envs.make_env`); the number of envs
    and the seed come from the run's own settings, which the drivers pass to the
    makers themselves, so they cannot be env arguments too."""
    out = {}
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


def parse_members(args) -> tuple[list[int], list[dict[str, str]]]:
    """Seeds and hyperparameter overrides of each member (sweep grid x seeds)."""
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    grid_axes = []
    for item in args.sweep:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not vals:
            raise UsageError(f"--sweep expects NAME=V1,V2,..., got {item!r}")
        grid_axes.append([(name.strip(), v) for v in vals])
    combos = [dict(c) for c in itertools.product(*grid_axes)] if grid_axes else [{}]
    seeds, overrides = [], []
    for combo in combos:
        for i in range(args.seeds):
            seeds.append(args.seed + i)
            overrides.append(combo)
    return seeds, overrides


__all__ = ["main", "build_parser", "parse_env_args", "parse_members", "UsageError"]
