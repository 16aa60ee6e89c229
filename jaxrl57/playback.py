"""`jaxrl57 eval RUN_DIR`: play a trained run's agent again, score it, record it.

The run is rebuilt from its `args.json` and its final checkpoint is restored
with the loader of `--resume` (checksummed arrays, no code runs). Each member
(or the one `--member` names) then plays `--episodes` evaluation episodes
under the run's own evaluation protocol, through the code the training rows
evaluate with (`runners.evaluation`): the agent's evaluation actor (its
`eval_epsilon`, or `--epsilon`), one episode per env, cut at the run's
`eval_max_steps` or the env's limit. EnvPool games are evaluation pools:
whole games (no episodic life), unclipped rewards, EnvPool's 108k-frame cap
and no-op starts (`envs.envpool_env`).

Which episodes. On a JAX env with none of `--seed`, `--episodes` and
`--epsilon`, the last row's evaluation is replayed exactly: its key is part of
the checkpoint, so the mean return equals the last `eval_return` of the run's
metrics. `--seed S` plays other episodes. On EnvPool, member m plays on a fresh
pool seeded like its envs of the run's evaluation pool (from the run's seed, or
`--seed`, plus m * eval_episodes); its episodes are the run's first
evaluation's, not those of the last row, which came after earlier evaluations
on the same pool.

Output: a table on stdout and `eval.json` in `--out` (default RUN_DIR/eval):
per member the mean, std, min and max return, the episode lengths and, for
Atari games, the human-normalized score. `--video FILE` (.gif, or .mp4 with
imageio's ffmpeg plugin) records the first episode of the first member
evaluated (`jaxrl57.recording`): JAX games drawn by their `render` function
(`envs.render`: Catch, CartPole, MaskedCartPole, Cave, MemoryChain), Atari games
as the agent sees them (the newest of the stacked 84x84 grey frames).
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from jaxrl57 import envs, recording, reporting
from jaxrl57.evaluation import human_normalized_score
from jaxrl57.request import EvalRequest, TrainRequest, UsageError
from jaxrl57.train import CKPT, OLD_CKPT, _atari_game, build_driver, load_state, resolve_run


def _fail(message: str):
    raise UsageError(message)


def _saved_request(run_dir: str) -> TrainRequest:
    path = os.path.join(run_dir, "args.json")
    if not os.path.isdir(run_dir):
        _fail(f"eval {run_dir}: no such folder")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        _fail(f"eval {run_dir}: no args.json there (not a jaxrl57 run folder)")
    except json.JSONDecodeError:
        _fail(f"eval {run_dir}: args.json is corrupt")
    if not os.path.exists(os.path.join(run_dir, CKPT)):
        if os.path.exists(os.path.join(run_dir, OLD_CKPT)):
            _fail(f"eval {run_dir}: {OLD_CKPT} is of the old pickle format, which is no longer "
                  f"supported (loading it could run code)")
        _fail(f"eval {run_dir}: no checkpoint there yet (the run has not finished a row)")
    try:
        return TrainRequest().resumed_from(saved, run_dir)
    except UsageError:
        _fail(f"eval {run_dir}: args.json is not a jaxrl57 train record")


def replays_last_evaluation(req: EvalRequest, env_id: str) -> bool:
    """Whether `req` plays exactly the run's last evaluation: a JAX env, with the
    run's own episodes, key and epsilon."""
    return (envs.is_jax_env(env_id) and req.seed is None and req.episodes is None
            and req.epsilon is None)


def run_eval(req: EvalRequest) -> int:
    out = req.out or os.path.join(req.run_dir, "eval")
    if req.video is not None:  # before anything is loaded or played
        recording.check_video_path(req.video)
    run_args = _saved_request(req.run_dir)
    recording.check_writable_folder(out, "--out")
    run = resolve_run(run_args)
    K = len(run.seeds)
    if req.member is not None and req.member >= K:
        _fail(f"--member {req.member}: the run has {K} member{'s' if K > 1 else ''} "
              f"(0..{K - 1})")
    driver = build_driver(run_args, run)
    try:
        rows, _ = load_state(driver, os.path.join(req.run_dir, CKPT),
                             run.base.run_config.num_rows)
    finally:
        close = getattr(driver, "close", None)
        if close is not None:
            close()
    from jaxrl57.build import EVAL_SEED_OFFSET

    player = recording.Player(driver, run_args.env, run.env_kwargs,
                              (run.seeds[0] if req.seed is None else req.seed)
                              + EVAL_SEED_OFFSET)
    if req.video is not None and (why := player.can_record()):
        _fail(f"--video: {why}")
    replay = replays_last_evaluation(req, run_args.env)
    episodes = req.episodes or run.base.run_config.eval_episodes
    members = [req.member] if req.member is not None else list(range(K))
    game = _atari_game(run_args.env)
    results = []
    for i, m in enumerate(members):
        if replay:
            key = driver.state.eval_key[m]  # the last row's evaluation, replayed
        else:
            key = jax.random.PRNGKey(0 if req.seed is None else req.seed)
        played = player.play(m, episodes, key, req.epsilon,
                             record=req.video is not None and i == 0)
        returns, lengths = played.returns, played.lengths
        result = {"member": m, "seed": run.seeds[m], "episodes": len(returns),
                  "mean": float(np.mean(returns)), "std": float(np.std(returns)),
                  "min": float(np.min(returns)), "max": float(np.max(returns)),
                  "mean_length": float(np.mean(lengths)), "returns": returns.tolist(),
                  "lengths": lengths.astype(int).tolist()}
        if game:
            result["human_normalized"] = float(human_normalized_score(game, result["mean"]))
        results.append(result)
        if played.frames is not None:
            recording.write_video(req.video, played.frames, recording.video_fps(run_args.env))
    last_row = {r["member"]: r.get("eval_return") for r in rows[-K:]} if rows else {}
    record = {"run": req.run_dir, "agent": run_args.agent, "env": run_args.env,
              "epsilon": req.epsilon, "seed": req.seed, "video": req.video,
              "replays_last_evaluation": replay, "members": results}
    reporting.write_json(os.path.join(out, "eval.json"), record)
    print(f"{run_args.agent} on {run_args.env}: {req.run_dir}")
    print(f"{'member':>6} {'seed':>5} {'episodes':>8} {'mean':>9} {'std':>8} {'min':>8} "
          f"{'max':>8} {'length':>8}" + ("  hns" if game else "") + "  last row's eval")
    for r in results:
        last = last_row.get(r["member"])
        print(f"{r['member']:>6} {r['seed']:>5} {r['episodes']:>8} {r['mean']:>9.2f} "
              f"{r['std']:>8.2f} {r['min']:>8.2f} {r['max']:>8.2f} {r['mean_length']:>8.1f}"
              + (f"  {r['human_normalized']:.3f}" if game else "")
              + (f"  {last:.2f}" if isinstance(last, (int, float)) else ""))
    print(f"wrote {os.path.join(out, 'eval.json')}"
          + (f" and {req.video}" if req.video else ""))
    return 0
