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
and exit status 3, its last good checkpoint kept. Compiled programs are kept in a
persistent cache (`configure_compile_cache`; off with `--no-compile-cache`), so a
second run of the same configuration does not compile again.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from jaxrl57.request import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_NON_FINITE,
    EvalRequest,
    ReportRequest,
    TrainRequest,
    UsageError,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _agent_names() -> tuple[str, ...]:
    from jaxrl57.configs import AGENTS  # imports JAX: only when the parser is built

    return AGENTS


CACHE_DIR_ENV = "JAXRL57_CACHE_DIR"
NO_CACHE_ENV = "JAXRL57_NO_COMPILE_CACHE"
_NO_CACHE_HELP = (
    "do not use the persistent compilation cache (compiled programs kept in "
    f"${CACHE_DIR_ENV}, default $XDG_CACHE_HOME/jaxrl57/jax or ~/.cache/jaxrl57/jax, so a "
    f"second run of the same configuration skips compiling); also {NO_CACHE_ENV}=1. "
    "A cache folder set through JAX's own JAX_COMPILATION_CACHE_DIR is JAX's and left as set")


def compile_cache_dir() -> str:
    """The persistent compilation cache's folder: `$JAXRL57_CACHE_DIR`, else
    `jaxrl57/jax` under the XDG cache folder (`$XDG_CACHE_HOME`, default ~/.cache)."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.path.expanduser(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxrl57", "jax")


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        # Creating the folder can succeed where writing into it fails (a folder
        # someone else made, a read-only mount); JAX would then warn on every write.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


_cache_dir_ours: str | None = None  # the folder this module gave JAX, if any


def configure_compile_cache(disabled: bool = False) -> str | None:
    """Points JAX's persistent compilation cache at `compile_cache_dir()`, or turns
    it off (`disabled`, or `JAXRL57_NO_COMPILE_CACHE` set to anything but 0/empty).

    Must run before the first compilation of the process to cover it. A folder
    that cannot be created or written (a read-only home) leaves the cache off:
    a run never fails for its cache. A cache folder set through JAX's own
    configuration (JAX_COMPILATION_CACHE_DIR, or `jax.config` in a caller's
    process) is left as it is. Returns the folder in use, or None.
    """
    global _cache_dir_ours
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    current = jax.config.jax_compilation_cache_dir
    if current is not None and current != _cache_dir_ours:
        return current
    disabled = disabled or os.environ.get(NO_CACHE_ENV, "") not in ("", "0")
    path = None if disabled else compile_cache_dir()
    if path is not None and not _writable_dir(path):
        path = None
    if path != current:
        jax.config.update("jax_compilation_cache_dir", path)
        if path is not None and "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            # JAX's default writes only programs that took >= 1 s to compile; most
            # programs of a small run (evaluation, init, the row program on a fast
            # machine) take less and would compile again on every run.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        compilation_cache.reset_cache()  # the cache reads its folder once
    _cache_dir_ours = path
    return path


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
                       help="env id: jax:CartPole-v1, jax:Catch, jax:Cave, jax:DeepSea, "
                            "jax:MaskedCartPole-v1, jax:MemoryChain, jax:Pendulum-v1, "
                            "jax:MaskedPendulum-v1 (continuous actions), or an EnvPool id "
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
    train.add_argument("--no-compile-cache", action="store_true", help=_NO_CACHE_HELP)
    train.add_argument("--list-settings", action="store_true",
                       help="print every setting of AGENT on ENV (with --set and --steps "
                            "applied): its value, whether --sweep can vary it in one program, "
                            "and what it means; then exit without training")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write every metrics.csv value as TensorBoard scalars to "
                            "OUT/tensorboard (needs tensorboardX: pip install "
                            "'jaxrl57[tensorboard]')")
    train.add_argument("--video-every", type=int, default=0, metavar="ROWS",
                       help="record member 0's first evaluation episode every ROWS log rows "
                            "into OUT/videos (.mp4 with imageio-ffmpeg, else .gif; needs "
                            "imageio: pip install 'jaxrl57[video]')")
    report = sub.add_parser("report", help="aggregate training runs into a table and plots")
    report.error = parser.error  # type: ignore[method-assign]
    report.add_argument("dirs", nargs="+", metavar="DIR",
                        help="run folders written by `jaxrl57 train` (games x seeds)")
    report.add_argument("--out", default="report",
                        help="output folder for report.csv, report.json and the plots "
                             "(default report)")
    report.add_argument("--reps", type=int, default=2000,
                        help="bootstrap resamples of the confidence intervals (default 2000)")
    report.add_argument("--no-compile-cache", action="store_true", help=_NO_CACHE_HELP)
    ev = sub.add_parser("eval", help="play a trained run's agent again: returns, lengths, "
                                     "human-normalized score, a video")
    ev.error = parser.error  # type: ignore[method-assign]
    ev.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of `jaxrl57 train`")
    ev.add_argument("--episodes", type=int, default=None,
                    help="episodes per member (default: the run's eval_episodes)")
    ev.add_argument("--epsilon", type=float, default=None,
                    help="evaluation epsilon (default: the run's eval_epsilon)")
    ev.add_argument("--seed", type=int, default=None,
                    help="play other episodes (default: a JAX env replays the run's last "
                         "evaluation)")
    ev.add_argument("--member", type=int, default=None,
                    help="evaluate this member of a sweep only (default: every member)")
    ev.add_argument("--video", default=None, metavar="FILE",
                    help="record the first episode to FILE (.gif, or .mp4 with imageio-ffmpeg)")
    ev.add_argument("--out", default=None,
                    help="folder for eval.json (default RUN_DIR/eval)")
    ev.add_argument("--no-compile-cache", action="store_true", help=_NO_CACHE_HELP)
    return parser


_first_call = True


def request_of(args: argparse.Namespace) -> TrainRequest | ReportRequest | EvalRequest:
    """The typed request of a parsed command line (every part checked)."""
    if args.command == "report":
        return ReportRequest(dirs=tuple(args.dirs), out=args.out, reps=args.reps).check()
    if args.command == "eval":
        return EvalRequest(run_dir=args.run_dir, episodes=args.episodes, epsilon=args.epsilon,
                           seed=args.seed, member=args.member, video=args.video,
                           out=args.out).check()
    if args.command != "train":
        raise UsageError("the commands are 'train', 'eval' and 'report' (try: jaxrl57 --help)")
    return TrainRequest(
        agent=args.agent, env=args.env, env_arg=tuple(args.env_arg), steps=args.steps,
        seed=args.seed, seeds=args.seeds, sweep=tuple(args.sweep), set=tuple(args.set),
        out=args.out, checkpoint_every=args.checkpoint_every,
        no_compile_cache=args.no_compile_cache, resume=args.resume,
        progress=not args.no_progress, tensorboard=args.tensorboard, video_every=args.video_every,
        list_settings=args.list_settings).check()


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
        configure_compile_cache(disabled=getattr(args, "no_compile_cache", False))
        request = request_of(args)
        if isinstance(request, ReportRequest):
            from jaxrl57.report import run_report
            return run_report(request)
        if isinstance(request, EvalRequest):
            from jaxrl57.playback import run_eval
            return run_eval(request)
        if request.list_settings:
            from jaxrl57.train import list_settings
            return list_settings(request)
        from jaxrl57.train import run_training
        return run_training(request, start)
    except UsageError as e:
        print(f"jaxrl57: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxrl57: interrupted; resume with --resume", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "configure_compile_cache", "compile_cache_dir",
           "request_of"]


if __name__ == "__main__":
    sys.exit(main())
