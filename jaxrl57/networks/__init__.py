"""flax.linen networks: torsos, heads and the Q-network that joins them.

Heads by output: `QHead`/`DuelingHead`/`NoisyQHead`/`NoisyDuelingHead` give
Q-values [..., A]; `CategoricalHead` C51 logits [..., A, N]; `QuantileHead`
QR-DQN quantiles [..., N, A]; `IQNHead` quantiles at given fractions
[..., T, A] (called with the fractions). Noisy layers draw from the flax RNG
stream "noise" and take `deterministic=True` for their mean weights.
"""

from __future__ import annotations

import flax.linen as nn

from jaxrl57.networks.distributional import CategoricalHead, IQNHead, QuantileHead
from jaxrl57.networks.heads import DuelingHead, QHead
from jaxrl57.networks.noisy import NoisyDense, NoisyDuelingHead, NoisyQHead
from jaxrl57.networks.torsos import ConvTorso, MLPTorso, nature_cnn, small_cnn


class QNetwork(nn.Module):
    """torso -> head. Input one observation or a batch; the head's output.

    Extra arguments go to the head (IQN's fractions, noisy heads' `deterministic`)."""

    torso: nn.Module
    head: nn.Module

    def __call__(self, obs, *head_args, **head_kwargs):
        return self.head(self.torso(obs), *head_args, **head_kwargs)


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
    hidden_sizes=(256, 256), dueling: bool = False, distribution: str = "none",
    num_atoms: int = 51, noisy: bool = False, sigma0: float = 0.5,
) -> QNetwork:
    """The Q-network of the DQN family.

    `distribution`: "none" (Q-values), "c51" (`num_atoms` logits per action),
    "qr" (`num_atoms` quantiles per action) or "iqn" (quantiles at fractions
    given to the call). `dueling` splits the head into value and advantage
    streams (C51 too, as in Rainbow); `noisy` makes the head's layers
    factorised-Gaussian noisy layers (Fortunato et al. 2018).
    """
    body = make_torso(torso, obs_shape, hidden_sizes)
    if torso == "mlp":
        # MLP torsos end at their last hidden layer; dueling streams and IQN's
        # layer after the merge get one hidden layer of that size each.
        head_hidden = (hidden_sizes[-1],) if dueling or distribution == "iqn" else ()
    elif dueling or noisy or distribution == "iqn":
        # Conv torsos end in their dense layer (Mnih et al. 2015) except where the
        # paper puts that layer in the head: each dueling stream has its own
        # (Wang et al. 2016, sec. 4.2: value and advantage streams of one 512-unit
        # layer each), NoisyNets make it noisy (Fortunato et al. 2018, sec. 3.1:
        # the fully connected layers become noisy ones; Rainbow both), and IQN
        # merges the embedding with the conv features and applies it after the
        # merge (Dabney et al. 2018b, sec. 3.1: psi is the conv layers, f the rest).
        head_hidden = (body.dense,)
        body = body.clone(dense=0)
    else:
        head_hidden = ()
    noise = dict(noisy=noisy, sigma0=sigma0)
    if distribution == "c51":
        head = CategoricalHead(num_actions, num_atoms, dueling=dueling,
                               hidden_sizes=head_hidden, **noise)
    elif distribution == "qr":
        head = QuantileHead(num_actions, num_atoms, hidden_sizes=head_hidden, **noise)
    elif distribution == "iqn":
        head = IQNHead(num_actions, hidden_sizes=head_hidden, **noise)
    elif distribution != "none":
        raise ValueError(f"unknown distribution {distribution!r}; choose none, c51, qr or iqn")
    elif noisy:
        head = (NoisyDuelingHead(num_actions, hidden_sizes=head_hidden, sigma0=sigma0)
                if dueling else NoisyQHead(num_actions, hidden_sizes=head_hidden, sigma0=sigma0))
    elif dueling:
        # Both streams backpropagate into the shared conv features; Wang et al.
        # 2016, sec. 4.2, rescale their sum by 1/sqrt(2). The MLP torsos of the
        # small tasks are not the paper's network and keep the plain gradient.
        scale = 1.0 if torso == "mlp" else 2.0**-0.5
        head = DuelingHead(num_actions, hidden_sizes=head_hidden, input_grad_scale=scale)
    else:
        head = QHead(num_actions)
    return QNetwork(body, head)


__all__ = [
    "CategoricalHead", "ConvTorso", "DuelingHead", "IQNHead", "MLPTorso", "NoisyDense",
    "NoisyDuelingHead", "NoisyQHead", "QHead", "QNetwork", "QuantileHead",
    "make_q_network", "make_torso", "nature_cnn", "small_cnn",
]
