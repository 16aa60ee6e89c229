"""From (agent name, env id, overrides) to the static and traced settings of a run.

Three layers, later ones win: the defaults of the environment family (small
JAX games, classic control, Atari with the papers' values), the preset's
flags and values (all in `jaxrl57.presets`), then the user's `name=value`
overrides. Every name is looked up in exactly one of the
agent family's static config (`DQNConfig`, `R2D2Config`), its traced
hyperparameters (`DQNHParams`, `R2D2HParams`: sweepable), `RunConfig` (loop)
and `EnvPoolConfig` (the EnvPool loops only).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jaxrl57 import presets
from jaxrl57.agents import FAMILIES, AgentFamily
from jaxrl57.runners.config import EnvPoolConfig, RunConfig

AGENTS = presets.AGENTS


class ConfigError(ValueError):
    """Bad user input: unknown names, impossible values."""


MUJOCO_TASKS = ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup",
                "InvertedDoublePendulum", "InvertedPendulum", "Pusher", "Reacher", "Swimmer",
                "Walker2d")


def env_family(env_id: str) -> str:
    if env_id.split("-")[0] in MUJOCO_TASKS:
        return "mujoco"
    if env_id.startswith(("jax:Pendulum", "jax:MaskedPendulum", "Pendulum")):
        return "pendulum"
    if env_id.startswith(("jax:CartPole", "CartPole", "jax:MaskedCartPole")):
        return "cartpole"
    if env_id.startswith("jax:MemoryChain"):
        return "memory"
    if env_id.startswith("jax:Catch"):
        return "catch"
    if env_id.startswith("jax:Cave"):
        return "cave"
    if env_id.startswith("jax:DeepSea"):
        return "deepsea"
    if env_id.startswith("jax:KeyDoor"):
        return "keydoor"
    if env_id.endswith("-v5"):
        return "atari"
    return "classic"


def fields(family: AgentFamily) -> tuple[dict[str, Any], set[str]]:
    """(static field name -> type, traced hyperparameter names) of an agent family."""
    return ({f.name: f.type for f in dataclasses.fields(family.config_cls)},
            {f.name for f in dataclasses.fields(family.hparams_cls)})


STATIC_FIELDS, HPARAM_FIELDS = fields(FAMILIES["dqn"])
FAMILY_DEFAULTS = {"dqn": presets.DQN_FAMILY_DEFAULTS, "r2d2": presets.R2D2_FAMILY_DEFAULTS,
                   "ngu": presets.NGU_FAMILY_DEFAULTS,
                   "ddpg": presets.DDPG_FAMILY_DEFAULTS, "rdpg": presets.RDPG_FAMILY_DEFAULTS}
RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}
ENVPOOL_FIELDS = {f.name for f in dataclasses.fields(EnvPoolConfig)}


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
    agent_config: Any  # the family's static config (DQNConfig, R2D2Config)
    hparams: dict[str, float]
    run_config: RunConfig
    family: AgentFamily = FAMILIES["dqn"]
    # EnvPool settings of the training envs (`presets.ATARI_TRAIN_ENV`), under --env-arg.
    train_env: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The EnvPool loops' own settings.
    envpool: EnvPoolConfig = dataclasses.field(default_factory=EnvPoolConfig)

    @property
    def hparam_fields(self) -> set[str]:
        return fields(self.family)[1]


def dqn_run_updates(run: RunConfig, learning_starts: float, batch_size: int,
                    n_step: int) -> int:
    """Gradient updates a DQN-family run makes (`runners.on_device`, EnvPool loops).

    Each of the run's phases steps the `num_envs` envs `train_every` times, then
    makes `updates_per_train` updates once the replay holds
    `max(learning_starts, batch_size)` transitions. The replay of whole n-step
    transitions holds `num_envs * (s - n_step + 1)` after s steps of each env, so
    this is its exact count. The frame replay also closes n-step windows early
    at episode ends, so it may start learning up to `n_step - 1` env steps
    sooner: this is then a lower bound, short by at most one phase.
    """
    phases = run.num_rows * run.phases_per_row
    needed = -(-max(learning_starts, batch_size) // run.num_envs) + n_step - 1  # env steps
    first = max(1, int(-(-needed // run.train_every)))
    return max(0, phases - first + 1) * run.updates_per_train


def resolve(agent: str, env_id: str, overrides: dict[str, str],
            steps: int | None = None) -> Settings:
    """Merges preset, env family defaults and overrides; raises ConfigError."""
    preset = presets.PRESETS.get(agent)
    if preset is None:
        import difflib
        close = difflib.get_close_matches(agent, AGENTS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown agent {agent!r}{hint}; agents: {', '.join(AGENTS)}")
    agent_family = FAMILIES[preset.family]
    preset_static, preset_hp = preset.static, preset.hparams
    family = env_family(env_id)
    is_dqn = agent_family.name == "dqn"
    family_defaults = FAMILY_DEFAULTS[agent_family.name]
    # An env family a table lacks (an action space the family cannot act in,
    # refused by the agent's builder) takes the table's classic-control values.
    fam_static, fam_hp, fam_run = family_defaults.get(family, family_defaults["classic"])
    static_fields, hparam_fields = fields(agent_family)
    static = {**dataclasses.asdict(agent_family.config_cls()), **fam_static, **preset_static}
    if is_dqn and family != "atari":
        static.update(presets.SMALL_TASK_PRESET_STATIC.get(agent, {}))
    hp = {**agent_family.default_hparams, **fam_hp, **preset_hp}
    if family == "atari" and is_dqn:
        hp.update(presets.DQN_ATARI_HPARAMS.get(agent, {}))
        static.update(presets.DQN_ATARI_STATIC.get(agent, {}))
    if family == "mujoco" and agent in presets.DDPG_MUJOCO:
        static.update(presets.DDPG_MUJOCO[agent][0])
        hp.update(presets.DDPG_MUJOCO[agent][1])
    run = {**dataclasses.asdict(RunConfig()), **fam_run}
    pool = dataclasses.asdict(EnvPoolConfig())
    if family == "atari" and is_dqn:
        run.update(presets.DQN_ATARI_RUN.get(agent, {}))
    if steps is not None:
        run["total_steps"] = steps
    aliases = agent_family.hparam_aliases
    # An alias first, so that a name it covers, also given, wins over it.
    for name, text in sorted(overrides.items(), key=lambda item: item[0] not in aliases):
        if name in aliases:
            for target in aliases[name]:
                hp[target] = parse_value(name, text, float(hp[target]))
        elif name in static_fields:
            static[name] = parse_value(name, text, static[name])
        elif name in hparam_fields:
            hp[name] = parse_value(name, text, float(hp[name]))
        elif name in RUN_FIELDS:
            run[name] = parse_value(name, text, run[name])
        elif name in ENVPOOL_FIELDS:
            pool[name] = parse_value(name, text, pool[name])
        else:
            import difflib
            known = (sorted(static_fields) + sorted(hparam_fields) + sorted(aliases)
                     + sorted(RUN_FIELDS) + sorted(ENVPOOL_FIELDS))
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown setting {name!r}{hint}")
    for name, value in static.items():
        if isinstance(value, list):
            static[name] = tuple(value)
    # Before the derived values below: they divide by loop settings, and an
    # impossible one must fail with its own sentence, not a ZeroDivisionError.
    check(Settings(agent_family.config_cls(**static), hp, RunConfig(**run), agent_family,
                   envpool=EnvPoolConfig(**pool)))
    # A row needs at least one step of the env batch: more rows than that would
    # silently stretch the run past `total_steps`. A family default gives way to
    # a short `--steps`; a `num_rows` the user asked for is an error.
    phase = run["num_envs"] * run["train_every"]
    batches = run["total_steps"] // phase
    if run["num_rows"] > max(batches, 1):
        if "num_rows" in overrides:
            raise ConfigError(
                f"num_rows ({run['num_rows']}) exceeds the steps of the env batch in the run "
                f"(total_steps {run['total_steps']} / (num_envs {run['num_envs']} x "
                f"train_every {run['train_every']}) = {batches}): lower num_rows or raise "
                f"--steps")
        # The most rows whose equal split covers the steps with the fewest extra phases.
        needed = -(-run["total_steps"] // phase)
        run["num_rows"] = min(range(max(batches, 1), 0, -1),
                              key=lambda r: r * -(-needed // r))
    if "lr_decay_updates" in hparam_fields and "lr_decay_updates" not in overrides:
        # Anneal over the updates this run will make.
        r = RunConfig(**run)
        iterations = r.num_rows * r.iterations_per_row
        if is_dqn:  # learning_starts counts transitions
            warmup = hp["learning_starts"] / r.num_envs
        else:  # ... or sequences, one per env every `period` steps after the first
            seq_len = static["burn_in"] + static["trace_length"] + 1
            warmup = seq_len + hp["learning_starts"] * static["period"] / r.num_envs
        hp["lr_decay_updates"] = max(
            1.0, (iterations - warmup) / r.train_every * r.updates_per_train)
    if is_dqn and family == "atari" and "epsilon_decay_start" not in overrides:
        # Epsilon anneals from the end of the replay warm-up (the Lua learner's
        # `eGreedy` counts from `learn_start`; dqn_zoo's schedule begins there).
        hp["epsilon_decay_start"] = hp["learning_starts"]
    if is_dqn and "priority_beta_steps" not in overrides and "priority_beta_steps" not in {
            **preset_hp, **presets.DQN_ATARI_HPARAMS.get(agent, {})}:
        # Schaul et al. 2016, sec. 3.4: beta reaches 1 at the end of learning, so
        # it anneals over the updates of this run (the update after
        # `priority_beta_steps` updates is the last). A preset that sets it keeps
        # its own (Ape-X: a fixed beta).
        updates = dqn_run_updates(RunConfig(**run), hp["learning_starts"],
                                  static["batch_size"], static["n_step"])
        hp["priority_beta_steps"] = float(max(1, updates - 1))
    train_env = (dict(presets.ATARI_TRAIN_ENV.get(agent_family.name, {})) if family == "atari"
                 else {})
    settings = Settings(agent_family.config_cls(**static), hp, RunConfig(**run), agent_family,
                        train_env, EnvPoolConfig(**pool))
    check(settings)
    return settings


# Traced hyperparameters for which infinity is a meaningful value: no gradient
# clipping (Nature DQN, no clipping, is max_grad_norm=inf) and a priority beta
# that never anneals (priority_beta_steps=inf keeps beta at its start, as Ape-X
# does). Every other one must be finite: NaN or inf would train to the end and
# report nonsense.
_MAY_BE_INF = ("max_grad_norm", "priority_beta_steps")

# Allowed ranges of the traced hyperparameters (names a family lacks are skipped):
# (low, high, low included, high included).
_INF = float("inf")
_HPARAM_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.0, _INF, False, True),
    "lr_final_fraction": (0.0, _INF, True, True),
    "lr_decay_updates": (1.0, _INF, True, True),
    "discount": (0.0, 1.0, True, True),
    "epsilon_start": (0.0, 1.0, True, True),
    "epsilon_end": (0.0, 1.0, True, True),
    "epsilon": (0.0, 1.0, True, True),
    "eval_epsilon": (0.0, 1.0, True, True),
    "apex_epsilon": (0.0, 1.0, True, True),
    "epsilon_decay_steps": (0.0, _INF, False, True),
    "epsilon_alpha": (0.0, _INF, True, True),
    "apex_alpha": (0.0, _INF, True, True),
    "learning_starts": (0.0, _INF, True, True),
    "target_period": (1.0, _INF, True, True),
    "target_tau": (0.0, 1.0, False, True),  # 0: the target never moves
    "huber_delta": (0.0, _INF, False, True),
    "max_grad_norm": (0.0, _INF, False, True),
    "optimizer_eps": (0.0, _INF, True, True),
    "rmsprop_decay": (0.0, 1.0, True, False),  # 1: the second moment stays 0
    "priority_alpha": (0.0, _INF, True, True),
    "priority_beta_start": (0.0, 1.0, True, True),
    "priority_beta": (0.0, 1.0, True, True),
    "priority_beta_steps": (0.0, _INF, False, True),
    "priority_eta": (0.0, 1.0, True, True),
    "actor_learning_rate": (0.0, _INF, False, True),
    "critic_learning_rate": (0.0, _INF, False, True),
    "critic_weight_decay": (0.0, _INF, True, True),
    "tau": (0.0, 1.0, False, True),
    "exploration_noise": (0.0, _INF, True, True),
    "ou_theta": (0.0, 1.0, True, True),
    "eval_noise": (0.0, _INF, True, True),
    "target_noise": (0.0, _INF, True, True),
    "target_noise_clip": (0.0, _INF, True, True),
    "policy_delay": (1.0, _INF, True, True),
    "random_steps": (0.0, _INF, True, True),
}
# Counts that the agents cast to integers (a fractional one would be truncated).
_INTEGER_HPARAMS = ("target_period", "policy_delay")


def _range_text(low: float, high: float, low_in: bool, high_in: bool) -> str:
    if high == _INF:
        return f"{'>=' if low_in else '>'} {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check(s: Settings) -> None:
    """Impossible combinations -> ConfigError with one readable sentence."""
    try:
        s.agent_config.validate()
        s.run_config.validate()
        s.envpool.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    hp = s.hparams
    for name, value in hp.items():
        if math.isnan(value) or (math.isinf(value) and name not in _MAY_BE_INF):
            raise ConfigError(f"{name} must be a finite number, got {value:g}")
    for name, (low, high, low_in, high_in) in _HPARAM_RANGES.items():
        if name not in hp:
            continue
        v = hp[name]
        if not ((low <= v if low_in else low < v) and (v <= high if high_in else v < high)):
            raise ConfigError(f"{name} must be {_range_text(low, high, low_in, high_in)}, "
                              f"got {v:g}")
    for name in _INTEGER_HPARAMS:
        if name in hp and not float(hp[name]).is_integer():
            raise ConfigError(f"{name} must be a whole number of updates, got {hp[name]:g}")
    if "v_min" in hp and not hp["v_min"] < hp["v_max"]:
        raise ConfigError(f"v_min ({hp['v_min']:g}) must be below v_max ({hp['v_max']:g})")
    if hp["learning_starts"] > s.agent_config.replay_capacity:
        raise ConfigError(
            f"learning_starts ({hp['learning_starts']:g}) exceeds replay_capacity "
            f"({s.agent_config.replay_capacity}): training would never start")


def field_docs(cls) -> dict[str, str]:
    """The attribute docstrings of a settings class: the string literal under each field,
    a subclass's own where it redeclares a field of its base."""
    import ast
    import inspect
    import textwrap

    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for field, after in zip(body, body[1:], strict=False):
            if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[field.target.id] = " ".join(after.value.value.split())
    return docs


@dataclasses.dataclass(frozen=True)
class SettingRow:
    """One setting of a run as `--list-settings` prints it."""

    name: str
    value: Any
    kind: str  # "agent" (static), "traced" (sweepable), "loop", "envpool", "env"
    doc: str

    @property
    def sweepable(self) -> bool:
        return self.kind == "traced"


def describe(s: Settings) -> list[SettingRow]:
    """Every setting of `s` with its value, kind and documentation."""
    rows = []
    config_docs = field_docs(type(s.agent_config))
    for f in dataclasses.fields(s.agent_config):
        rows.append(SettingRow(f.name, getattr(s.agent_config, f.name), "agent",
                               config_docs.get(f.name, "")))
    hp_docs = field_docs(s.family.hparams_cls)
    for f in dataclasses.fields(s.family.hparams_cls):
        rows.append(SettingRow(f.name, s.hparams[f.name], "traced", hp_docs.get(f.name, "")))
    for name, targets in s.family.hparam_aliases.items():
        values = {s.hparams[t] for t in targets}
        doc = f"Sets {' and '.join(targets)} to one value (a name set itself wins)."
        rows.append(SettingRow(name, values.pop() if len(values) == 1 else "(differ)", "traced",
                               doc))
    run_docs = field_docs(RunConfig)
    for f in dataclasses.fields(RunConfig):
        rows.append(SettingRow(f.name, getattr(s.run_config, f.name), "loop",
                               run_docs.get(f.name, "")))
    pool_docs = field_docs(EnvPoolConfig)
    for f in dataclasses.fields(EnvPoolConfig):
        rows.append(SettingRow(f.name, getattr(s.envpool, f.name), "envpool",
                               pool_docs.get(f.name, "")))
    for name, value in s.train_env.items():
        rows.append(SettingRow(name, value, "env", "setting of the training envs (on Atari, "
                                                   "evaluation plays whole games, unclipped)"))
    return rows


def format_settings(rows: list[SettingRow]) -> str:
    """The table `jaxrl57 train ... --list-settings` prints."""

    def text(value: Any) -> str:
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    width = max(len(r.name) for r in rows)
    value_width = min(max(len(text(r.value)) for r in rows), 16)
    titles = {"agent": "agent config (static: shapes and program structure; --set)",
              "traced": "hyperparameters (traced: --set, or --sweep in one program)",
              "loop": "loop (static; --set)",
              "envpool": "EnvPool loops (static; --set)",
              "env": "training envs (--env-arg)"}
    out, kind = [], None
    for r in rows:
        if r.kind != kind:
            kind = r.kind
            out.append(("" if not out else "\n") + titles[kind])
        out.append(f"  {r.name:<{width}}  {text(r.value):<{value_width}}  {r.doc}".rstrip())
    return "\n".join(out)
