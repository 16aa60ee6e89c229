"""Playing a trained driver's members again, and writing videos of their episodes.

Shared by `jaxrl57 eval` (`jaxrl57.playback`) and `jaxrl57 train --video-every`
(`jaxrl57.train`), below both. Episodes are played by the code the training
rows evaluate with (`runners.evaluation`), with the agent's evaluation actor:

- JAX envs: `make_scan_episodes`, one jitted program per (episodes, record)
  pair, shared by all members (the member index is traced);
- EnvPool envs: `host_episodes` on an evaluation pool (no episodic life,
  unclipped rewards, EnvPool's frame cap and no-op starts) seeded like member
  m's envs of the run's evaluation pool.

A JAX game's frames are drawn by its `render` function (`envs.render`); an
Atari game's are the agent's newest stacked 84x84 grey frame, as RGB.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import jax
import numpy as np

from jaxrl57 import envs
from jaxrl57.request import UsageError

VIDEO_FPS = {"jax:Catch": 4}  # a Catch episode is a handful of steps
DEFAULT_FPS = 30
VIDEO_EXTENSIONS = (".gif", ".mp4")


class Played(NamedTuple):
    """Episodes of one member: returns and lengths `[n]`, the first episode's frames
    `[T + 1, H, W, 3]` uint8 (None unless recorded)."""

    returns: np.ndarray
    lengths: np.ndarray
    frames: np.ndarray | None


def mp4_supported() -> bool:
    """Whether imageio can write .mp4 here (its ffmpeg plugin is installed)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def check_video_path(path: str, flag: str = "--video") -> None:
    """Raises UsageError, before anything is played, for a video `path` that cannot
    be written: another extension, a missing or read-only folder, no imageio, or an
    .mp4 without imageio's ffmpeg plugin."""
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        raise UsageError(f"{flag} {path}: give a .gif or .mp4 file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write into {folder}")
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise UsageError(f"{flag} needs imageio: pip install 'jaxrl57[video]'") from None
    if path.lower().endswith(".mp4") and not mp4_supported():
        raise UsageError(f"{flag} {path}: an .mp4 needs imageio's ffmpeg plugin (pip install "
                         f"imageio-ffmpeg); or give a .gif")


def check_writable_folder(folder: str, flag: str) -> None:
    """Creates `folder` if needed; UsageError if it cannot be created or written."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag}: cannot create {folder} ({e.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write into {folder}")


def write_video(path: str, frames: np.ndarray, fps: int) -> None:
    """Encodes `frames` `[T, H, W, 3]` uint8 with imageio (GIF by pillow, MP4 by ffmpeg)."""
    import imageio.v3 as iio

    try:
        if path.lower().endswith(".gif"):
            iio.imwrite(path, frames, extension=".gif", duration=1000 / fps, loop=0)
        else:
            iio.imwrite(path, frames, extension=".mp4", fps=fps)
    except OSError as e:
        raise UsageError(f"cannot write video {path}: {e.strerror or e}") from None


def video_fps(env_id: str) -> int:
    return VIDEO_FPS.get(env_id, DEFAULT_FPS)


class Player:
    """Plays evaluation episodes of the members of a driver whose state is trained
    (or restored): `play(member, episodes, key, epsilon, record)`.

    `env_id`, `env_kwargs` and `eval_seed` (the run's first seed plus
    `build.EVAL_SEED_OFFSET`) say how to build EnvPool evaluation pools; JAX
    drivers carry their env."""

    def __init__(self, driver, env_id: str, env_kwargs: dict, eval_seed: int):
        self.driver, self.env_id, self.env_kwargs = driver, env_id, env_kwargs
        self.eval_seed = eval_seed
        self.is_jax = envs.is_jax_env(env_id)
        agent = driver.agent
        # The member is traced: one program for every member, and only the
        # view's leaves of that member are read (never the replay).
        self._view = jax.jit(lambda learner, m: agent.view(jax.tree.map(lambda x: x[m], learner)))
        self._pools: dict[tuple[int, int], object] = {}

    def learner(self):
        state = self.driver.state
        return state["agent"] if isinstance(state, dict) else state.agent

    def view(self, member: int, epsilon: float | None = None):
        """What member `member`'s actor reads, with `epsilon` as its evaluation epsilon."""
        view = self._view(self.learner(), np.int32(member))
        if epsilon is not None and not hasattr(view.hparams, "eval_epsilon"):
            raise UsageError(f"--epsilon: {self.env_id} has continuous actions, whose agents "
                             f"have no evaluation epsilon (their evaluation noise is eval_noise)")
        if epsilon is not None:
            view = view._replace(hparams=view.hparams.replace(eval_epsilon=np.float32(epsilon)))
        return view

    def can_record(self) -> str:
        """'' if this env's episodes can be recorded, else why not."""
        if self.is_jax:
            env = self.driver.env
            return "" if env.render is not None else f"{env.spec.name} has no render function"
        spec = envs.env_spec(self.env_id, **self.env_kwargs)
        if len(spec.obs_shape) != 3:
            return (f"{self.env_id} observations are not frames; record a JAX env "
                    f"(jax:CartPole-v1, jax:Catch) or an Atari game")
        return ""

    def play(self, member: int, episodes: int, key, epsilon: float | None = None,
             record: bool = False) -> Played:
        view = self.view(member, epsilon)
        if self.is_jax:
            return self._play_jax(view, episodes, key, record)
        return self._play_envpool(member, view, episodes, key, record)

    @functools.cache  # noqa: B019 (one Player per command)
    def _scan_episodes(self, episodes: int, record: bool):
        from jaxrl57.runners.evaluation import make_scan_episodes

        run, env = self.driver.run, self.driver.env
        play = jax.jit(make_scan_episodes(self.driver.agent, env, episodes,
                                          run.eval_max_steps, record=record))
        draw = jax.jit(jax.vmap(env.render)) if record else None
        return play, draw

    def _play_jax(self, view, episodes: int, key, record: bool) -> Played:
        play, draw = self._scan_episodes(episodes, record)
        played = play(view, key)
        frames = None
        if record:
            states = jax.tree.map(lambda x: x[: int(played.lengths[0]) + 1], played.first_states)
            frames = np.asarray(draw(states))
        return Played(np.asarray(played.returns), np.asarray(played.lengths), frames)

    @functools.cached_property
    def _member_actor(self):
        from jaxrl57.runners.devices import over_members
        from jaxrl57.runners.evaluation import MemberActor, member_actor

        actor = member_actor(self.driver.agent, functools.partial(over_members, num_members=1))
        return MemberActor(init=jax.jit(actor.init, static_argnums=1), act=jax.jit(actor.act),
                           observe=jax.jit(actor.observe))

    def _pool(self, member: int, episodes: int):
        """Member `member`'s evaluation envs: the run's pool gives member m the
        seeds from `eval_seed + m * eval_episodes` on."""
        from jaxrl57.envs.envpool_env import make_envpool

        if (member, episodes) not in self._pools:
            seed = self.eval_seed + member * self.driver.run.eval_episodes
            self._pools[member, episodes] = make_envpool(self.env_id, episodes, seed,
                                                         train=False, **self.env_kwargs)
        return self._pools[member, episodes]

    def _play_envpool(self, member: int, view, episodes: int, key, record: bool) -> Played:
        from jaxrl57.runners.evaluation import eval_horizon, host_episodes

        pool = self._pool(member, episodes)
        split2 = _split2()
        horizon = eval_horizon(pool.spec.max_episode_steps, self.driver.run.eval_max_steps)
        returns, lengths, obs = host_episodes(
            pool, self._member_actor, jax.tree.map(lambda x: x[None], view), key[None],
            split2, 1, horizon, record_first=record)
        frames = None
        if record:  # the newest of the stacked grey frames, as RGB
            frames = np.stack([np.repeat(o[-1][..., None], 3, axis=-1) for o in obs])
        return Played(returns, lengths, frames)


@functools.cache
def _split2():
    return jax.jit(jax.vmap(jax.random.split, out_axes=1))
