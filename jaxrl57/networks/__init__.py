"""flax.linen networks: torsos, heads and the Q-network that joins them."""

from __future__ import annotations

import flax.linen as nn

from jaxrl57.networks.heads import DuelingHead, QHead
from jaxrl57.networks.torsos import ConvTorso, MLPTorso, nature_cnn, small_cnn


class QNetwork(nn.Module):
    """torso -> head. Input one observation or a batch; output [..., num_actions]."""

    torso: nn.Module
    head: nn.Module

    def __call__(self, obs):
        return self.head(self.torso(obs))


def make_torso(name: str, obs_shape: tuple[int, ...], hidden_sizes=(256, 256)) -> nn.Module:
    """Builds a torso by name: `mlp`, `nature_cnn` or `small_cnn`."""
    if name == "mlp":
        return MLPTorso(hidden_sizes=tuple(hidden_sizes), obs_ndim=len(obs_shape))
    if name == "nature_cnn":
        # EnvPool Atari stacks frames channels-first: [4, 84, 84].
        return nature_cnn(channels_first=obs_shape[0] < obs_shape[-1])
    if name == "small_cnn":
        return small_cnn(channels_first=False)
    raise ValueError(f"unknown torso {name!r}; choose mlp, nature_cnn or small_cnn")


def make_q_network(
    num_actions: int, obs_shape: tuple[int, ...], *, torso: str = "mlp",
    hidden_sizes=(256, 256), dueling: bool = False,
) -> QNetwork:
    head = (DuelingHead(num_actions, hidden_sizes=(hidden_sizes[-1],) if torso == "mlp" else ())
            if dueling else QHead(num_actions))
    return QNetwork(make_torso(torso, obs_shape, hidden_sizes), head)


__all__ = [
    "ConvTorso", "DuelingHead", "MLPTorso", "QHead", "QNetwork",
    "make_q_network", "make_torso", "nature_cnn", "small_cnn",
]
