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

Which episodes. On a JAX env with neither `--seed` nor `--episodes`, the last
row's evaluation is replayed exactly: its key is part of the checkpoint, so the
mean return equals the last `eval_return` of the run's metrics. `--seed S`
plays other episodes. On EnvPool, the pool is a fresh one seeded like the
run's evaluation pool (the seed, or `--seed`); its episodes are not those of
the run's last row, which came after earlier evaluations on the same pool.

Output: a table on stdout and `eval.json` in `--out` (default RUN_DIR/eval):
per member the mean, std, min and max return, the episode lengths and, for
Atari games, the human-normalized score. `--video FILE` (.gif, or .mp4 with
imageio's ffmpeg plugin) records the first episode of the first member
evaluated: JAX games drawn by their `render` function (`envs.render`: Catch,
CartPole, MaskedCartPole, Cave, MemoryChain), Atari
games as the agent sees them (the newest of the stacked 84x84 grey frames).
"""

from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np

from jaxrl57 import envs, reporting
from jaxrl57.evaluation import human_normalized_score
from jaxrl57.request import EvalRequest, TrainRequest, UsageError
from jaxrl57.train import CKPT, _atari_game, build_driver, load_state, resolve_run

VIDEO_FPS = {"jax:Catch": 4}  # a Catch episode is a handful of steps
DEFAULT_FPS = 30


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
        _fail(f"eval {run_dir}: no checkpoint there yet (the run has not finished a row)")
    try:
        return TrainRequest().resumed_from(saved, run_dir)
    except UsageError:
        _fail(f"eval {run_dir}: args.json is not a jaxrl57 train record")


def _member_view(driver, member: int, epsilon: float | None):
    """What member `member`'s actor reads, with `--epsilon` as its evaluation epsilon."""
    learner = driver.state["agent"] if isinstance(driver.state, dict) else driver.state.agent
    view = driver.agent.view(jax.tree.map(lambda x: x[member], learner))
    if epsilon is not None:
        hparams = view.hparams.replace(eval_epsilon=np.float32(epsilon))
        view = view._replace(hparams=hparams)
    return view


def _play_jax(driver, member: int, req: EvalRequest, record: bool):
    """(returns, lengths, frames or None) of one member on the run's JAX env."""
    from jaxrl57.runners.evaluation import make_scan_episodes

    run, env = driver.run, driver.env
    if record and env.render is None:
        _fail(f"--video: {env.spec.name} has no render function")
    n = req.episodes or run.eval_episodes
    if req.seed is None and req.episodes is None:
        key = driver.state.eval_key[member]  # the last row's evaluation, replayed
    else:
        key = jax.random.PRNGKey(0 if req.seed is None else req.seed)
    play = jax.jit(make_scan_episodes(driver.agent, env, n, run.eval_max_steps, record=record))
    episodes = play(_member_view(driver, member, req.epsilon), key)
    frames = None
    if record:
        states = jax.tree.map(lambda x: x[: int(episodes.lengths[0]) + 1],
                              episodes.first_states)
        frames = np.asarray(jax.jit(jax.vmap(env.render))(states))
    return np.asarray(episodes.returns), np.asarray(episodes.lengths), frames


def _play_envpool(driver, member: int, req: EvalRequest, run_args: TrainRequest,
                  env_kwargs: dict, record: bool):
    """(returns, lengths, frames or None) of one member on a fresh evaluation pool."""
    from jaxrl57.build import EVAL_SEED_OFFSET
    from jaxrl57.envs.envpool_env import make_envpool
    from jaxrl57.runners.devices import over_members
    from jaxrl57.runners.evaluation import MemberActor, eval_horizon, host_episodes, member_actor

    run, agent = driver.run, driver.agent
    n = req.episodes or run.eval_episodes
    seed = (run_args.seed if req.seed is None else req.seed) + EVAL_SEED_OFFSET
    pool = make_envpool(run_args.env, n, seed, train=False, **env_kwargs)
    if record and len(pool.spec.obs_shape) != 3:
        _fail(f"--video: {run_args.env} observations are not frames; record a JAX env "
              f"(jax:CartPole-v1, jax:Catch) or an Atari game")
    actor = member_actor(agent, functools.partial(over_members, num_members=1))
    actor = MemberActor(init=jax.jit(actor.init, static_argnums=1), act=jax.jit(actor.act),
                        observe=jax.jit(actor.observe))
    view = jax.tree.map(lambda x: x[None], _member_view(driver, member, req.epsilon))
    key = jax.random.PRNGKey(0 if req.seed is None else req.seed)[None]
    split2 = jax.jit(jax.vmap(jax.random.split, out_axes=1))
    horizon = eval_horizon(pool.spec.max_episode_steps, run.eval_max_steps)
    returns, lengths, obs = host_episodes(pool, actor, view, key, split2, 1, horizon,
                                          record_first=record)
    frames = None
    if record:  # the newest of the stacked grey frames, as RGB
        frames = np.stack([np.repeat(o[-1][..., None], 3, axis=-1) for o in obs])
    return returns, lengths, frames


def _write_video(path: str, frames: np.ndarray, fps: int) -> None:
    import imageio.v3 as iio

    try:
        if path.lower().endswith(".gif"):
            iio.imwrite(path, frames, extension=".gif", duration=1000 / fps, loop=0)
        else:
            iio.imwrite(path, frames, extension=".mp4", fps=fps)
    except (ImportError, ValueError, OSError) as e:
        _fail(f"--video {path}: {e} (an .mp4 needs imageio's ffmpeg plugin: "
              f"pip install imageio-ffmpeg)")


def run_eval(req: EvalRequest) -> int:
    if req.video is not None:
        try:
            import imageio  # noqa: F401
        except ImportError:
            _fail("--video needs imageio: pip install 'jaxrl57[video]'")
    run_args = _saved_request(req.run_dir)
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
    members = [req.member] if req.member is not None else list(range(K))
    game = _atari_game(run_args.env)
    results = []
    for i, m in enumerate(members):
        record = req.video is not None and i == 0
        if envs.is_jax_env(run_args.env):
            returns, lengths, frames = _play_jax(driver, m, req, record)
        else:
            returns, lengths, frames = _play_envpool(driver, m, req, run_args, run.env_kwargs,
                                                     record)
        result = {"member": m, "seed": run.seeds[m], "episodes": len(returns),
                  "mean": float(np.mean(returns)), "std": float(np.std(returns)),
                  "min": float(np.min(returns)), "max": float(np.max(returns)),
                  "mean_length": float(np.mean(lengths)), "returns": returns.tolist(),
                  "lengths": lengths.astype(int).tolist()}
        if game:
            result["human_normalized"] = float(human_normalized_score(game, result["mean"]))
        results.append(result)
        if frames is not None:
            _write_video(req.video, frames, VIDEO_FPS.get(run_args.env, DEFAULT_FPS))
    out = req.out or os.path.join(req.run_dir, "eval")
    os.makedirs(out, exist_ok=True)
    last_row = {r["member"]: r.get("eval_return") for r in rows[-K:]} if rows else {}
    record = {"run": req.run_dir, "agent": run_args.agent, "env": run_args.env,
              "epsilon": req.epsilon, "seed": req.seed, "video": req.video,
              "replays_last_evaluation": envs.is_jax_env(run_args.env)
              and req.seed is None and req.episodes is None,
              "members": results}
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
