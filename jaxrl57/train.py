"""The training driver behind `jaxrl57 train`: settings, members, loop, outputs.

A run folder holds `args.json` (what was asked), `checkpoint.jaxrl57` (complete
state: params, optimizer, replay, env states, RNG, counters, and the metric
rows so far; `jaxrl57.checkpoint`), `metrics.csv`, `summary.json` (the members
and their last evaluation, rewritten after every row; `jaxrl57 report` reads
the members from it) and `learning_curve.png`. Checkpoints are written after
every `--checkpoint-every` log rows, before the rows are appended to
metrics.csv, so `--resume` restarts from a consistent point and rewrites
metrics.csv from the checkpoint's rows.

After every row the loss and the parameters of every member are checked: a
non-finite one stops the run with exit status `EXIT_NON_FINITE` before that
row's state can be checkpointed, so the last checkpoint is the last good state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import jax
import numpy as np

from jaxrl57 import checkpoint, configs, envs, recording, reporting
from jaxrl57.evaluation import canonical_game_name, human_normalized_score
from jaxrl57.request import EXIT_NON_FINITE, TrainRequest, UsageError

CKPT = "checkpoint.jaxrl57"
OLD_CKPT = "checkpoint.ckpt"  # the pickle format: refused, never read


def _fail(message: str):
    raise UsageError(message)


def _load_args(run_dir: str) -> dict:
    path = os.path.join(run_dir, "args.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        _fail(f"--resume {run_dir}: no args.json there (not a jaxrl57 run folder)")
    except json.JSONDecodeError:
        _fail(f"--resume {run_dir}: args.json is corrupt")


def list_settings(args: TrainRequest) -> int:
    """`jaxrl57 train AGENT --env ENV --list-settings`: every setting of the run, with its
    value, kind and doc (`configs.describe`)."""
    from jaxrl57 import envs

    if args.resume:  # the run's own settings
        args = args.resumed_from(_load_args(args.resume), args.resume)
    try:
        envs.env_spec(args.env, **args.env_kwargs)
    except envs.UnknownEnvError as e:
        _fail(str(e))
    except (TypeError, ValueError) as e:
        _fail(f"bad --env-arg for {args.env}: {e}")
    try:
        settings = configs.resolve(args.agent, args.env, args.overrides, steps=args.steps)
    except configs.ConfigError as e:
        _fail(str(e))
    # The user's env arguments over the family's training-env settings, as the drivers merge them.
    settings.train_env = {**settings.train_env, **args.env_kwargs}
    print(f"{args.agent} on {args.env}")
    print(configs.format_settings(configs.describe(settings)))
    return 0


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A run's request resolved: settings of the run and of each member, seeds,
    env arguments."""

    base: configs.Settings
    member_settings: list
    seeds: list[int]
    member_overrides: list[dict]
    env_kwargs: dict


def resolve_run(args: TrainRequest) -> ResolvedRun:
    """The settings of the run `args` asks for, checked against the env and the
    machine's memory before anything is allocated; bad ones exit 2."""
    members = args.members
    seeds = [m.seed for m in members]
    member_overrides = [dict(m.overrides) for m in members]
    overrides = args.overrides
    env_kwargs = args.env_kwargs
    try:
        spec = envs.env_spec(args.env, **env_kwargs)
    except envs.UnknownEnvError as e:
        _fail(str(e))
    except (TypeError, ValueError) as e:
        _fail(f"bad --env-arg for {args.env}: {e}")
    try:
        base = configs.resolve(args.agent, args.env, overrides, steps=args.steps)
        member_settings = [configs.resolve(args.agent, args.env, {**overrides, **mo},
                                           steps=args.steps) for mo in member_overrides]
    except configs.ConfigError as e:
        _fail(str(e))
    for mo in member_overrides:
        for name in mo:
            if name not in base.hparam_fields and name not in base.family.hparam_aliases:
                _fail(f"--sweep {name}: only traced hyperparameters can be swept in one "
                      f"program ({name} sets shapes or the loop); sweepable: "
                      f"{', '.join(sorted(base.hparam_fields | set(base.family.hparam_aliases)))}")
    if base.family.continuous == spec.discrete:
        need, has = (("continuous", f"{spec.num_actions} discrete actions") if spec.discrete
                     else ("discrete", "a continuous action space"))
        _fail(f"agent {args.agent!r} needs {need} actions, but {args.env} has {has}")
    from jaxrl57.runners.devices import member_sharding
    from jaxrl57.runners.footprint import check_fits

    # Before any allocation: a state too large for the machine would otherwise
    # fail inside XLA. The on-device driver spreads members over the devices.
    per_device = (len(seeds) // member_sharding(len(seeds)).mesh.devices.size
                  if envs.is_jax_env(args.env) else len(seeds))
    try:
        check_fits(base, spec, len(seeds), members_per_device=per_device)
    except ValueError as e:  # too large, or settings the env cannot take
        _fail(str(e))
    return ResolvedRun(base, member_settings, seeds, member_overrides, env_kwargs)


def build_driver(args: TrainRequest, run: ResolvedRun):
    """The run's driver (`build.make_driver`), or exit 2 for a pipeline the env or the
    members cannot take."""
    pipeline = run.base.envpool.pipeline
    if envs.is_jax_env(args.env) and pipeline != "sync":
        _fail(f"pipeline={pipeline} drives EnvPool envs; {args.env} runs "
              f"on the device (drop --set pipeline=...)")
    if pipeline == "async" and len(run.seeds) > 1:
        _fail("--seeds/--sweep with pipeline=async are not supported yet; use pipeline=sync")
    from jaxrl57.build import make_driver

    try:
        return make_driver(args.env, run.base, [s.hparams for s in run.member_settings],
                           run.seeds, env_kwargs=run.env_kwargs)
    except ValueError as e:  # settings the env cannot take (e.g. replay_storage=frames)
        _fail(str(e))


def load_state(driver, path: str, num_rows: int) -> tuple[list[dict], float]:
    """Restores the checkpoint at `path` into `driver` (exit 2 if it is corrupt or
    of another run); returns its metric rows and wall time."""
    template = _release_state(driver)
    try:
        state, meta = checkpoint.load(path, like=template)
        rows, wall = _checked_meta(path, meta, driver.num_members, num_rows)
    except checkpoint.CheckpointError as e:
        _fail(str(e))
    driver.set_state(state)
    return rows, wall


def run_training(args: TrainRequest, start_time: float) -> int:
    """`jaxrl57 train`: build the driver the request names, train, write the run folder."""
    if args.resume:
        args = args.resumed_from(_load_args(args.resume), args.resume)
    run = resolve_run(args)
    base, seeds, member_overrides = run.base, run.seeds, run.member_overrides

    out = args.out or os.path.join("runs", f"{args.agent}-{args.env.replace(':', '_')}"
                                           f"-s{args.seed}")
    os.makedirs(out, exist_ok=True)
    if not args.resume:
        reporting.write_json(os.path.join(out, "args.json"), args.saved())
    if args.video_every:  # before any training: imageio is there, the folder writable
        recording.check_writable_folder(os.path.join(out, "videos"), "--video-every")
        recording.check_video_path(os.path.join(out, "videos", "row.gif"), "--video-every")
    driver = build_driver(args, run)
    videos = _video_recorder(args, run, driver, out) if args.video_every else None

    ckpt_path = os.path.join(out, CKPT)
    rows: list[dict] = []
    prior_wall = 0.0
    if args.resume:
        if not os.path.exists(ckpt_path):
            if os.path.exists(os.path.join(out, OLD_CKPT)):
                _fail(f"--resume {out}: {OLD_CKPT} is of the old pickle format, which is no "
                      f"longer supported (loading it could run code); start a new run")
            _fail(f"--resume {out}: no checkpoint there yet")
        rows, prior_wall = load_state(driver, ckpt_path, base.run_config.num_rows)
    try:
        return _loop(args, driver, base, seeds, member_overrides, out, rows, prior_wall,
                     start_time, videos)
    finally:
        close = getattr(driver, "close", None)  # the async pipeline's actor thread
        if close is not None:
            close()


def _video_recorder(args: TrainRequest, run: ResolvedRun, driver, out: str):
    """`record(row, env_steps)` for `--video-every`: member 0's first evaluation
    episode of the row, written to OUT/videos. On a JAX env it is the row's own
    evaluation episode 0 (the key the row evaluated with); on EnvPool, an episode
    of a one-env evaluation pool seeded like member 0's first evaluation env."""
    from jaxrl57.build import EVAL_SEED_OFFSET

    player = recording.Player(driver, args.env, run.env_kwargs,
                              run.seeds[0] + EVAL_SEED_OFFSET)
    if why := player.can_record():
        _fail(f"--video-every: {why}")
    folder = os.path.join(out, "videos")
    ext = ".mp4" if recording.mp4_supported() else ".gif"

    def record(row: int, env_steps: int) -> None:
        if player.is_jax:  # all of the row's episodes: episode 0 is the row's own
            key, episodes = driver.state.eval_key[0], run.base.run_config.eval_episodes
        else:
            key, episodes = jax.random.PRNGKey(run.seeds[0] + row), 1
        frames = player.play(0, episodes, key, record=True).frames
        recording.write_video(os.path.join(folder, f"row{row:04d}-{env_steps}steps{ext}"),
                              frames, recording.video_fps(args.env))

    return record


def _release_state(driver):
    """The driver's state template as shapes, dtypes and shardings, after freeing
    the freshly initialised state it replaces: a restore then never holds two
    copies of a state whose replay can take most of the memory."""
    close = getattr(driver, "close", None)  # the async pipeline's actor thread
    if close is not None:
        close()
    live = driver.state_template()
    template = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        if isinstance(x, jax.Array) else x, live)
    for x in jax.tree.leaves(live):
        if isinstance(x, jax.Array) and not x.is_deleted():
            x.delete()
    return template


def _checked_meta(path: str, meta: dict, num_members: int, num_rows: int):
    """(rows, wall_s) of a checkpoint's metadata, or CheckpointError: they set
    where the resumed run starts, so they must agree with the run."""
    rows, wall = meta.get("rows"), meta.get("wall_s", 0.0)
    if (not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows)
            or len(rows) % num_members or len(rows) // num_members > num_rows
            or not isinstance(wall, (int, float))):
        raise checkpoint.CheckpointError(
            f"checkpoint {path} is corrupt (its metrics rows do not fit this run)")
    return rows, float(wall)


def _atari_game(env_id: str) -> str | None:
    """The Atari-57 game of an EnvPool id, or None (then no human-normalized column)."""
    if envs.is_jax_env(env_id):
        return None
    try:
        return canonical_game_name(env_id)
    except ValueError:
        return None


def _tensorboard_writer(out: str):
    """A TensorBoard event writer for OUT/tensorboard, or exit 2 without tensorboardX."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        _fail("--tensorboard needs tensorboardX: pip install 'jaxrl57[tensorboard]'")
    return SummaryWriter(os.path.join(out, "tensorboard"))


def _log_scalars(writer, rows: list[dict], header: list[str]) -> None:
    """Each finite value of the rows as scalar `NAME/member_M` at step `env_steps`."""
    for r in rows:
        for name in header:
            value = r.get(name)
            if name in ("member", "seed", "env_steps") or value is None:
                continue
            if math.isfinite(float(value)):
                writer.add_scalar(f"{name}/member_{r['member']}", float(value),
                                  global_step=int(r["env_steps"]))
    writer.flush()


def _loop(args, driver, base, seeds, member_overrides, out, rows, prior_wall, start_time,
          videos=None):
    run_cfg = base.run_config
    total_rows = run_cfg.num_rows
    K = len(seeds)
    game = _atari_game(args.env)
    header = ["member", "seed", "env_steps", "episode_return", "episode_length", "episodes",
              "eval_return", *(["eval_hns"] if game else []), "updates",
              *driver.metric_names, "sps", "wall_s"]
    ckpt_path = os.path.join(out, CKPT)
    tensorboard = _tensorboard_writer(out) if args.tensorboard else None
    progress = None
    if args.progress:
        from tqdm import tqdm
        progress = tqdm(total=run_cfg.steps_per_row * total_rows * K, unit="step",
                        unit_scale=True, dynamic_ncols=True, file=sys.stderr,
                        desc=f"{args.agent} {args.env}")
        progress.update(len(rows) // max(K, 1) * run_cfg.steps_per_row * K)
    reporting.write_csv(os.path.join(out, "metrics.csv"), header, rows)
    t_loop = time.perf_counter()
    wall0 = prior_wall + (t_loop - start_time)
    done_rows = saved_rows = len(rows) // K  # resumed runs start from their checkpoint
    while done_rows < total_rows:
        t0 = time.perf_counter()
        new = driver.run_row()  # list of K dicts
        dt = time.perf_counter() - t0
        done_rows += 1
        wall = wall0 + (time.perf_counter() - t_loop)
        for m, r in enumerate(new):
            r.update(member=m, seed=seeds[m], sps=run_cfg.steps_per_row * K / dt, wall_s=wall)
            if game:
                r["eval_hns"] = float(human_normalized_score(game, r["eval_return"]))
        rows.extend(new)
        bad = _non_finite_members(new, driver.all_finite(), rows[-2 * K:-K] if done_rows > 1
                                  else None)
        if bad:
            # This row's state is never saved: the checkpoint keeps the last good one.
            reporting.write_csv(os.path.join(out, "metrics.csv"), header, rows)
            if progress is not None:
                progress.close()
            if tensorboard is not None:
                tensorboard.close()
            kept = (f"the checkpoint of row {saved_rows} is kept in {ckpt_path}" if saved_rows
                    else "no checkpoint was written before it")
            print(f"jaxrl57: error: training became non-finite at row {done_rows} "
                  f"({done_rows * run_cfg.steps_per_row} env steps per member): {bad}; "
                  f"stopped, {kept}", file=sys.stderr)
            return EXIT_NON_FINITE
        if done_rows % max(args.checkpoint_every, 1) == 0 or done_rows == total_rows:
            checkpoint.save(ckpt_path, driver.get_state(), {"rows": rows, "wall_s": wall})
            saved_rows = done_rows
        if videos is not None and done_rows % args.video_every == 0:
            videos(done_rows, done_rows * run_cfg.steps_per_row)
        reporting.write_csv(os.path.join(out, "metrics.csv"), header, rows)
        # After every row, so an unfinished run's members are on record for `report`.
        reporting.write_json(os.path.join(out, "summary.json"),
                             _summary(args, base, seeds, member_overrides, rows, wall))
        if tensorboard is not None:
            _log_scalars(tensorboard, new, header)
        if progress is not None:
            progress.update(run_cfg.steps_per_row * K)
            rets = [r["episode_return"] for r in new if not math.isnan(r["episode_return"])]
            evals = [r["eval_return"] for r in new if not math.isnan(r["eval_return"])]
            progress.set_postfix_str(
                (f"return {np.mean(rets):.3g}" if rets else "return -")
                + (f" eval {np.mean(evals):.3g}" if evals else ""))
    if progress is not None:
        progress.close()
    if tensorboard is not None:
        tensorboard.close()

    wall = prior_wall + (time.perf_counter() - start_time)
    summary = _summary(args, base, seeds, member_overrides, rows, wall)
    reporting.write_json(os.path.join(out, "summary.json"), summary)
    reporting.plot_learning_curves(os.path.join(out, "learning_curve.png"), rows,
                                   f"{args.agent} on {args.env}")
    print(f"final eval return {summary['final_eval_return']:.4g} after "
          f"{summary['env_steps']} env steps per member, {wall:.1f} s wall; outputs in {out}",
          file=sys.stderr)
    return 0



def _summary(args: TrainRequest, base, seeds, member_overrides, rows: list[dict],
             wall: float) -> dict:
    """`summary.json`: the members (seed and swept values) and their last evaluation."""
    run_cfg = base.run_config
    K = len(seeds)
    done_rows = len(rows) // K
    last = rows[-K:]
    env_steps = done_rows * run_cfg.steps_per_row
    # Steps/s of the training loop; the first row (compilation) is left out when
    # there are others.
    timed = rows[::K][1:] or rows[::K]
    train_s = sum(run_cfg.steps_per_row * K / r["sps"] for r in timed)
    return _nan_to_none({
        "agent": args.agent, "env": args.env, "members": K,
        "rows_done": done_rows, "finished": done_rows == run_cfg.num_rows,
        "env_steps": env_steps, "total_env_steps": env_steps * K,
        "wall_s": wall, "sps": len(timed) * run_cfg.steps_per_row * K / max(train_s, 1e-9),
        "final_eval_return": _mean_or_nan([r["eval_return"] for r in last]),
        "per_member": [
            {"member": m, "seed": seeds[m], "overrides": member_overrides[m],
             "final_eval_return": last[m]["eval_return"],
             "final_episode_return": last[m]["episode_return"]}
            for m in range(K)],
        "agent_config": dataclasses.asdict(base.agent_config),
        "run_config": dataclasses.asdict(run_cfg),
        "envpool_config": dataclasses.asdict(base.envpool),
        "hparams": base.hparams,
    })

def _mean_or_nan(values) -> float:
    """The mean of the finite values; NaN, without a warning, when there are none (an
    EnvPool row between evaluations)."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _non_finite_members(new: list[dict], params_finite, previous: list[dict] | None) -> str:
    """Which members of a row went non-finite, as text ('' if none): the loss of a
    row that made updates (a row without updates logs a NaN loss) or any parameter
    (`params_finite`: [K] bool, the driver's one reduction over the params)."""
    found = []
    for m, r in enumerate(new):
        what = []
        updated = r["updates"] > (previous[m]["updates"] if previous else 0)
        if updated and "loss" in r and not math.isfinite(r["loss"]):
            what.append(f"loss {r['loss']}")
        if not params_finite[m]:
            what.append("parameters")
        if what:
            found.append(f"member {m} (seed {r['seed']}) {' and '.join(what)}")
    return ", ".join(found)


def _nan_to_none(x):
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
