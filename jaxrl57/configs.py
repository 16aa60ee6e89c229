"""From (agent name, env id, overrides) to the static and traced settings of a run.

Three layers, later ones win: the preset's algorithm flags (`agents.dqn.PRESETS`),
the defaults of the environment family (small JAX games, classic control,
Atari with the papers' values), then the user's `name=value` overrides. Every
name is looked up in exactly one of `DQNConfig` (static), `DQNHParams`
(traced, sweepable) and `RunConfig` (loop).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrl57.agents import dqn
from jaxrl57.runners.on_device import RunConfig

AGENTS = tuple(dqn.PRESETS)


class ConfigError(ValueError):
    """Bad user input: unknown names, impossible values."""


def env_family(env_id: str) -> str:
    if env_id.startswith("jax:CartPole") or env_id.startswith("CartPole"):
        return "cartpole"
    if env_id.startswith("jax:Catch"):
        return "catch"
    if env_id.startswith("jax:Cave"):
        return "cave"
    if env_id.endswith("-v5"):
        return "atari"
    return "classic"


# Per-family defaults: (static agent config, traced hparams, loop config).
_FAMILY: dict[str, tuple[dict, dict, dict]] = {
    # Tuned to solve CartPole-v1 in well under 30 s on a 2-core CPU, with
    # `--sweep` and `--seeds`. The learning rate anneals to 5 % over the run so
    # the final greedy policy is stable; the squared loss (huber_delta 100, as
    # CleanRL and PureJaxRL use here) beat Huber-1 on 3 of 4 seeds. 64x64 ends
    # at >= 475 on 7 of seeds 0-7 (128x128: 6 of 8) at a third of the compute
    # (docs/results.md).
    "cartpole": (
        dict(hidden_sizes=(64, 64), replay_capacity=50_000, batch_size=64),
        dict(learning_rate=2.3e-3, lr_final_fraction=0.05, epsilon_decay_steps=8_000,
             huber_delta=100.0, epsilon_end=0.04, learning_starts=1_000, target_period=128,
             v_min=0.0, v_max=100.0),  # C51 support: returns of 1 per step, discount 0.99
        dict(total_steps=70_000, num_envs=8, train_every=1, updates_per_train=4, num_rows=10,
             eval_episodes=10),
    ),
    "classic": (
        dict(hidden_sizes=(128, 128), replay_capacity=50_000, batch_size=64),
        dict(learning_rate=1e-3, epsilon_decay_steps=20_000, learning_starts=1_000,
             target_period=200),
        dict(total_steps=100_000, num_envs=8, updates_per_train=2, num_rows=20),
    ),
    "catch": (
        dict(hidden_sizes=(64, 64), replay_capacity=10_000, batch_size=32),
        dict(learning_rate=1e-3, lr_final_fraction=0.05, epsilon_decay_steps=5_000,
             learning_starts=500, target_period=100, discount=0.99, v_min=-1.0, v_max=1.0),
        dict(total_steps=40_000, num_envs=8, updates_per_train=1, num_rows=10,
             eval_episodes=100),
    ),
    "cave": (
        dict(torso="small_cnn", replay_capacity=50_000, batch_size=32),
        dict(learning_rate=2.5e-4, epsilon_decay_steps=50_000, learning_starts=5_000,
             target_period=1_000),
        dict(total_steps=200_000, num_envs=8, updates_per_train=2, num_rows=20,
             eval_episodes=8),
    ),
    # Mnih et al. 2015: batch 32, replay 1M, one update every 4 agent steps,
    # centered RMSProp; epsilon and replay start counted in agent steps.
    "atari": (
        dict(torso="nature_cnn", replay_capacity=1_000_000, batch_size=32, optimizer="rmsprop"),
        dict(dqn.NATURE_ATARI_HPARAMS),
        dict(total_steps=10_000_000, num_envs=1, train_every=4, updates_per_train=1,
             num_rows=200, eval_episodes=10),
    ),
}

STATIC_FIELDS = {f.name: f.type for f in dataclasses.fields(dqn.DQNConfig)}
HPARAM_FIELDS = {f.name for f in dataclasses.fields(dqn.DQNHParams)}
RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def parse_value(name: str, text: str, current: Any) -> Any:
    """Parses `text` to the type of `current` (tuples as comma/x separated ints)."""
    try:
        if isinstance(current, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, tuple):
            return tuple(int(v) for v in text.replace("x", ",").split(",") if v)
        if isinstance(current, int):
            return int(float(text)) if float(text).is_integer() else int(text)
        if isinstance(current, float):
            return float(text)
        return text
    except ValueError:
        raise ConfigError(f"cannot read {name}={text!r} as {type(current).__name__}") from None


@dataclasses.dataclass
class Settings:
    agent_config: dqn.DQNConfig
    hparams: dict[str, float]
    run_config: RunConfig


def resolve(agent: str, env_id: str, overrides: dict[str, str],
            steps: int | None = None) -> Settings:
    """Merges preset, env family defaults and overrides; raises ConfigError."""
    if agent not in dqn.PRESETS:
        import difflib
        close = difflib.get_close_matches(agent, AGENTS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown agent {agent!r}{hint}; agents: {', '.join(AGENTS)}")
    preset_static, preset_hp = dqn.PRESETS[agent]
    family = env_family(env_id)
    fam_static, fam_hp, fam_run = _FAMILY[family]
    static = {**dataclasses.asdict(dqn.DQNConfig()), **fam_static, **preset_static}
    hp = {**dqn.DEFAULT_HPARAMS, **fam_hp, **preset_hp}
    if family == "atari":
        hp.update(dqn.ATARI_PRESET_HPARAMS.get(agent, {}))
    run = {**dataclasses.asdict(RunConfig()), **fam_run}
    if steps is not None:
        run["total_steps"] = steps
    for name, text in overrides.items():
        if name in STATIC_FIELDS:
            static[name] = parse_value(name, text, static[name])
        elif name in HPARAM_FIELDS:
            hp[name] = parse_value(name, text, float(hp[name]))
        elif name in RUN_FIELDS:
            run[name] = parse_value(name, text, run[name])
        else:
            import difflib
            known = sorted(STATIC_FIELDS) + sorted(HPARAM_FIELDS) + sorted(RUN_FIELDS)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown setting {name!r}{hint}")
    static["hidden_sizes"] = tuple(static["hidden_sizes"])
    if "lr_decay_updates" not in overrides:
        # Anneal over the updates this run will make.
        r = RunConfig(**run)
        iterations = r.num_rows * r.iterations_per_row
        warmup = hp["learning_starts"] / r.num_envs
        hp["lr_decay_updates"] = max(
            1.0, (iterations - warmup) / r.train_every * r.updates_per_train)
    settings = Settings(dqn.DQNConfig(**static), hp, RunConfig(**run))
    check(settings)
    return settings


def check(s: Settings) -> None:
    """Impossible combinations -> ConfigError with one readable sentence."""
    try:
        s.agent_config.validate()
        s.run_config.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    hp = s.hparams
    if hp["learning_starts"] > s.agent_config.replay_capacity:
        raise ConfigError(
            f"learning_starts ({hp['learning_starts']:g}) exceeds replay_capacity "
            f"({s.agent_config.replay_capacity}): training would never start")
    if not 0.0 <= hp["discount"] <= 1.0:
        raise ConfigError(f"discount must be in [0, 1], got {hp['discount']:g}")
    if hp["learning_rate"] <= 0:
        raise ConfigError(f"learning_rate must be > 0, got {hp['learning_rate']:g}")
    for name in ("epsilon_start", "epsilon_end", "eval_epsilon", "target_tau"):
        if not 0.0 <= hp[name] <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {hp[name]:g}")
