"""Agents: bundles of pure functions (`base.Agent`), grouped in families that share
a static config, traced hyperparameters and a builder. The named agents (`dqn`,
`rainbow`, ... of the DQN family; `r2d2`, `drqn` of R2D2's; `ngu` of NGU's;
`ddpg`, `td3` of DDPG's; `rdpg` of RDPG's) are data in `jaxrl57.presets`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from jaxrl57.agents import ddpg, dqn, ngu, r2d2, rdpg
from jaxrl57.agents.base import Agent


class AgentFamily(NamedTuple):
    name: str
    make: Callable[..., Agent]  # (config, spec, num_envs) -> Agent
    config_cls: type
    hparams_cls: Any  # .create(**values) -> traced hyperparameters
    default_hparams: dict[str, float]
    continuous: bool = False  # the action space it acts in: continuous, or discrete
    # Names that set several traced hyperparameters to one value (`--set`, `--sweep`).
    hparam_aliases: Mapping[str, tuple[str, ...]] = MappingProxyType({})


# CleanRL's DDPG and TD3 (and Fujimoto et al.'s TD3 code) train the actor and
# the critic at one `learning_rate`: here it sets both.
_ACTOR_CRITIC_ALIASES = MappingProxyType(
    {"learning_rate": ("actor_learning_rate", "critic_learning_rate")})

FAMILIES: dict[str, AgentFamily] = {
    "dqn": AgentFamily("dqn", dqn.make_dqn, dqn.DQNConfig, dqn.DQNHParams,
                       dqn.DEFAULT_HPARAMS),
    "r2d2": AgentFamily("r2d2", r2d2.make_r2d2, r2d2.R2D2Config, r2d2.R2D2HParams,
                        r2d2.DEFAULT_HPARAMS),
    "ngu": AgentFamily("ngu", ngu.make_ngu, ngu.NGUConfig, ngu.NGUHParams,
                       ngu.DEFAULT_HPARAMS),
    "ddpg": AgentFamily("ddpg", ddpg.make_ddpg, ddpg.DDPGConfig, ddpg.DDPGHParams,
                        ddpg.DEFAULT_HPARAMS, continuous=True,
                        hparam_aliases=_ACTOR_CRITIC_ALIASES),
    "rdpg": AgentFamily("rdpg", rdpg.make_rdpg, rdpg.RDPGConfig, rdpg.RDPGHParams,
                        rdpg.DEFAULT_HPARAMS, continuous=True,
                        hparam_aliases=_ACTOR_CRITIC_ALIASES),
}
