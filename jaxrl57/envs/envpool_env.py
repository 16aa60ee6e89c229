"""EnvPool adapter: a batch of C++ environments behind a numpy interface with clean
transitions and true episode statistics.

EnvPool's own auto-reset (gymnasium API, sync mode): the step that ends an episode returns
the episode's final observation with `terminated | truncated`; the NEXT `step` call ignores
that env's action and returns the first observation of a new episode with reward 0 and both
flags False. A runner that feeds it blindly stores a bogus transition.

`EnvPoolVec` hides this. After every EnvPool step, for the envs that just ended it at once
performs EnvPool's reset step on those envs only (`step(..., env_id=done_ids)`, which sync
mode supports), so that each `EnvPoolVec.step` call is one real transition for EVERY env:

    out = envs.step(actions)   # out: EnvPoolStep(obs, reward, terminated, truncated, final_obs)

    final_obs[i]: the observation reached by the transition (`s_{t+1}` for bootstrapping);
    obs[i]:       the observation to act on next: `final_obs[i]` if the episode goes on, the
                  first observation of the new episode if `terminated[i] | truncated[i]`.
    reward[i] (float32), terminated[i], truncated[i] (bool): of this transition.

This is the same contract as the JAX envs (`base.py`) once a runner has reset them: store
`(obs_t, a_t, r, final_obs, terminated)`, then act on `obs`. `final_obs` is `obs` itself
(same object, no copy) when no env ended.

Atari (`*-v5`): `noop_max=30`, `repeat_action_probability=0.25` (sticky actions, Machado
et al. 2018), `stack_num=4`, 84x84 gray frames, so obs are uint8 `[4, 84, 84]`, and the
whole game with its real rewards (`episodic_life=False`, `reward_clip=False`). Whether a
lost life ends a TRAINING episode and whether training rewards are clipped is the agent's
choice, not the environment's (Mnih et al. 2015 do both, Kapturowski et al. 2019 neither):
the caller passes it as overrides (`configs` keeps each agent family's). Any default can
be overridden (`img_height=...`, `episodic_life=...`, ...), except that evaluation envs
(`train=False`) always play the whole game with unclipped rewards. With `episodic_life`,
a lost life sets `terminated` (the transition's discount is 0) but EnvPool keeps playing
the same game.

MuJoCo (`HalfCheetah-v4`, `Hopper-v4`, `Walker2d-v4`, ...): EnvPool's observations and
actions are float64. The agent sees float32 observations (`EnvSpec.obs_dtype`; JAX
computes in float32 unless x64 is enabled, and the cast on the host halves what crosses
to the device and what replay stores), and actions are cast to the dtype of the pool's
action spec before they are sent, whatever the agent computed them in. Episode ends
follow gymnasium's v4 tasks: Hopper and Walker2d set `terminated` when the body becomes
unhealthy (the transition's discount is 0), and every task sets `truncated` at EnvPool's
`max_episode_steps` (1000), where the return bootstraps from `final_obs`.

Episode statistics are those of the REAL game: the undiscounted sum of the unclipped
rewards (EnvPool's `info["reward"]` for Atari) and the number of agent steps, summed
across lives; a game ends when EnvPool's `info["terminated"]` (game over; for non-Atari
envs the `terminated` flag) or `truncated` is set. `pop_episode_stats()` returns and
clears the games completed since the last call.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from jaxrl57.envs.base import EnvSpec

ATARI_DEFAULTS = {
    "episodic_life": False,
    "reward_clip": False,
    "noop_max": 30,
    "repeat_action_probability": 0.25,
    "stack_num": 4,
    "img_height": 84,
    "img_width": 84,
    "gray_scale": True,
}


class EnvPoolStep(NamedTuple):
    """One transition for each of E envs (see the module docstring).

    obs, final_obs: [E, *obs_shape]; reward: float32 [E]; terminated, truncated: bool [E].
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray


class EpisodeStats(NamedTuple):
    """Completed games, in completion order: returns float64 [N], lengths int64 [N],
    and the index int64 [N] of the env that played each."""

    returns: np.ndarray
    lengths: np.ndarray
    env_ids: np.ndarray


def _import_envpool():
    # gymnasium warns on every float64 Box bound EnvPool builds; it is noise for users.
    warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
    try:
        import envpool
    except ImportError as e:  # pragma: no cover - depends on the platform
        raise ImportError("EnvPool environments need `pip install envpool` (Linux).") from e
    return envpool


def is_atari(env_id: str) -> bool:
    """True for EnvPool's Atari ids (those whose config has `episodic_life`)."""
    envpool = _import_envpool()
    return "episodic_life" in envpool.make_spec(env_id).config._fields


def envpool_kwargs(env_id: str, *, train: bool = True, **overrides: Any) -> dict[str, Any]:
    """The EnvPool config this module uses for `env_id`: the Atari protocol defaults, then
    `overrides` (a training env's lost-life and reward-clipping settings among them); for
    evaluation (`train=False`) Atari envs play the whole game with unclipped rewards
    whatever the overrides say, so every agent is scored on the same game."""
    kwargs: dict[str, Any] = {}
    atari = is_atari(env_id)
    if atari:
        kwargs.update(ATARI_DEFAULTS)
    kwargs.update(overrides)
    if atari and not train:
        kwargs.update(episodic_life=False, reward_clip=False)
    return kwargs


def agent_obs_dtype(dtype: Any) -> type:
    """The dtype the agent sees for EnvPool observations of `dtype`: float32 for
    float64 (MuJoCo), else `dtype` itself (uint8 frames, float32)."""
    dtype = np.dtype(dtype)
    return np.float32 if dtype == np.float64 else dtype.type


def pool_action_dtype(pool_spec: Any) -> np.dtype:
    """The dtype EnvPool's C++ side takes actions in: int32 for discrete actions,
    float32 (classic control) or float64 (MuJoCo) for continuous ones."""
    return np.dtype(pool_spec.action_array_spec["action"].dtype)


def _spec_from_envpool(env_id: str, pool_spec: Any) -> EnvSpec:
    obs_space, act_space = pool_spec.observation_space, pool_spec.action_space
    common = dict(
        name=env_id,
        obs_shape=tuple(obs_space.shape),
        obs_dtype=agent_obs_dtype(obs_space.dtype),
        max_episode_steps=int(pool_spec.config.max_episode_steps),
    )
    if hasattr(act_space, "n"):
        return EnvSpec(num_actions=int(act_space.n), **common)
    return EnvSpec(
        action_low=tuple(float(v) for v in np.ravel(act_space.low)),
        action_high=tuple(float(v) for v in np.ravel(act_space.high)),
        **common,
    )


# Options `envpool.make` takes besides its config fields (envpool.registration).
_MAKE_OPTIONS = ("from_pixels", "render_mode", "render_env_id")
# Config fields that are sizes or counts: 0 or less builds a pool that fails later.
_POSITIVE_OPTIONS = ("max_episode_steps", "stack_num", "frame_skip", "img_height", "img_width")


def _check_overrides(envpool: Any, env_id: str, overrides: dict[str, Any]) -> None:
    """ValueError, one line, for a name EnvPool's config of `env_id` does not have or a
    value of the wrong type: EnvPool itself answers with a pybind11 overload list."""
    defaults = envpool.make_spec(env_id).config._asdict()
    unknown = [k for k in overrides if k not in defaults and k not in _MAKE_OPTIONS]
    if unknown:
        accepted = sorted(k for k in defaults
                          if k not in ("base_path", "env_seed", "num_envs", "seed"))
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} "
                         f"(accepted: {', '.join(accepted)})")
    for name, value in overrides.items():
        default = defaults.get(name)
        if isinstance(default, bool):  # EnvPool takes 0 and 1 too
            ok, kind = isinstance(value, bool) or value in (0, 1), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            kind = "a number"
        elif isinstance(default, str):
            ok, kind = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        if name in _POSITIVE_OPTIONS and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def envpool_spec(env_id: str, *, train: bool = True, **overrides: Any) -> EnvSpec:
    """The `EnvSpec` of one env of `make_envpool(env_id, ..., train=train, **overrides)`,
    without creating any environment. Bad overrides raise a one-line ValueError."""
    envpool = _import_envpool()
    overrides.pop("num_envs", None)
    overrides.pop("seed", None)
    _check_overrides(envpool, env_id, overrides)
    try:
        pool_spec = envpool.make_spec(env_id, **envpool_kwargs(env_id, train=train,
                                                               **overrides))
    except (AssertionError, RuntimeError, TypeError) as e:  # EnvPool's own checks
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"EnvPool rejected {overrides}: {first}") from None
    return _spec_from_envpool(env_id, pool_spec)


class EnvPoolVec:
    """`num_envs` EnvPool environments in sync mode with clean transitions.

    Attributes:
      spec: `EnvSpec` of one env.
      num_envs: E.
      pool: the underlying EnvPool object (gymnasium API).
    """

    def __init__(self, env_id: str, num_envs: int, seed: int, *, train: bool = True,
                 **overrides: Any):
        envpool = _import_envpool()
        kwargs = envpool_kwargs(env_id, train=train, **overrides)
        self.pool = envpool.make(
            env_id, env_type="gymnasium", num_envs=num_envs, seed=seed, **kwargs
        )
        self.spec = _spec_from_envpool(env_id, self.pool.spec)
        self.num_envs = num_envs
        self._action_dtype = pool_action_dtype(self.pool.spec)
        self._obs_dtype = np.dtype(self.spec.obs_dtype)
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self._done_returns: list[float] = []
        self._done_lengths: list[int] = []
        self._done_envs: list[int] = []

    def reset(self) -> np.ndarray:
        """Reset every env (starts new games, drops the running statistics); obs [E, ...]."""
        obs, _ = self.pool.reset()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs(obs)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(self._obs_dtype, copy=False)

    def step(self, actions: Any) -> EnvPoolStep:
        """Step every env with `actions` [E] (or [E, action_dim]); see the module docstring."""
        actions = np.asarray(actions).astype(self._action_dtype, copy=False)
        obs, reward, terminated, truncated, info = self.pool.step(actions)
        obs = self._obs(obs)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        raw_reward = np.asarray(info.get("reward", reward), np.float64)
        game_over = np.asarray(info.get("terminated", terminated), bool) | truncated

        self._returns += raw_reward
        self._lengths += 1
        for i in np.flatnonzero(game_over):
            self._done_returns.append(float(self._returns[i]))
            self._done_lengths.append(int(self._lengths[i]))
            self._done_envs.append(int(i))
        self._returns[game_over] = 0.0
        self._lengths[game_over] = 0

        final_obs = obs
        done_ids = np.flatnonzero(terminated | truncated).astype(np.int32)
        if done_ids.size:
            # EnvPool ignores the action of the step after a done: this is its reset step.
            dummy = np.zeros((done_ids.size, *actions.shape[1:]), actions.dtype)
            reset_obs, _, _, _, reset_info = self.pool.step(dummy, done_ids)
            order = np.asarray(reset_info["env_id"], np.int64)
            obs = obs.copy()
            obs[order] = self._obs(reset_obs)
            self._returns[order] += np.asarray(reset_info.get("reward", 0.0), np.float64)
        return EnvPoolStep(obs, reward, terminated, truncated, final_obs)

    def pop_episode_stats(self) -> EpisodeStats:
        """Returns and lengths of the games completed since the last call, then forgets them."""
        stats = EpisodeStats(
            np.asarray(self._done_returns, np.float64), np.asarray(self._done_lengths, np.int64),
            np.asarray(self._done_envs, np.int64))
        self._done_returns, self._done_lengths, self._done_envs = [], [], []
        return stats

    def pop_episode_returns(self) -> np.ndarray:
        """Undiscounted returns float64 [N] of the games completed since the last pop."""
        return self.pop_episode_stats().returns

    def close(self) -> None:
        close = getattr(self.pool, "close", None)
        if close is not None:
            close()


def make_envpool(env_id: str, num_envs: int, seed: int, *, train: bool = True,
                 **overrides: Any) -> EnvPoolVec:
    """`num_envs` EnvPool envs `env_id` (e.g. `CartPole-v1`, `Breakout-v5`) seeded from `seed`.

    `overrides` are passed to `envpool.make` last (e.g. `num_threads`, `img_height`, and
    the agent's `episodic_life` and `reward_clip` for training); with `train=False`
    (evaluation) Atari envs play the whole game with unclipped rewards regardless.
    """
    return EnvPoolVec(env_id, num_envs, seed, train=train, **overrides)
