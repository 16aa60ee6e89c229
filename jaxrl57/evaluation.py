"""Human-normalized scores on the Atari-57 benchmark.

``ATARI_SCORES`` maps each game (EnvPool / Gym spelling, e.g. ``SpaceInvaders``) to its
published ``(random, human)`` scores: the random-agent and professional-human-tester
returns (up to 30 random no-op starts, episodes capped at 108,000 frames) first published
for 49 games by Mnih et al. 2015 (Nature DQN) and extended to all 57 by later work; this is
the table of the Agent57 paper's appendix (Badia et al. 2020b), also used by Ape-X, R2D2
and NGU.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["ATARI_57", "ATARI_SCORES", "human_normalized_score", "canonical_game_name"]

ATARI_SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "Asteroids": (719.1, 47388.7),
    "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5),
    "Berzerk": (123.7, 2630.4),
    "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9),
    "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4),
    "Enduro": (0.0, 860.5),
    "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4),
    "Hero": (1027.0, 30826.4),
    "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6),
    "NameThisGame": (2292.3, 8049.0),
    "Phoenix": (761.4, 7242.6),
    "Pitfall": (-229.4, 6463.7),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "Riverraid": (1338.5, 17118.0),
    "RoadRunner": (11.5, 7845.0),
    "Robotank": (2.2, 11.9),
    "Seaquest": (68.4, 42054.7),
    "Skiing": (-17098.1, -4336.9),
    "Solaris": (1236.3, 12326.7),
    "SpaceInvaders": (148.0, 1668.7),
    "StarGunner": (664.0, 10250.0),
    "Surround": (-10.0, 6.5),
    "Tennis": (-23.8, -8.3),
    "TimePilot": (3568.0, 5229.2),
    "Tutankham": (11.4, 167.6),
    "UpNDown": (533.4, 11693.2),
    "Venture": (0.0, 1187.5),
    # Random can beat human here under other evaluation protocols; the table is as published.
    "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}

ATARI_57: tuple[str, ...] = tuple(ATARI_SCORES)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# Other spellings seen in the literature and in Gym / ALE ids.
_ALIASES = {
    "montezumasrevenge": "MontezumaRevenge",
    "upanddown": "UpNDown",
    "jamesbond007": "Jamesbond",
    "pitfall2": "Pitfall",
    "riverride": "Riverraid",
}

_BY_KEY = {_key(name): name for name in ATARI_57}
_BY_KEY.update({_key(alias): name for alias, name in _ALIASES.items()})

_ID_PREFIX = re.compile(r"^(ALE/)", re.IGNORECASE)
_ID_SUFFIX = re.compile(r"(NoFrameskip|Deterministic)?(-v\d+)?$", re.IGNORECASE)


def canonical_game_name(game: str) -> str:
    """The ``ATARI_SCORES`` key for a game name or environment id.

    Accepts ``Pong``, ``pong``, ``space_invaders``, ``SpaceInvaders-v5`` (EnvPool),
    ``ALE/Pong-v5`` and ``PongNoFrameskip-v4`` (Gym). Raises ValueError, with the
    closest known names, for anything else.
    """
    if not isinstance(game, str):
        raise ValueError(f"game must be a string, got {game!r}")
    stripped = _ID_SUFFIX.sub("", _ID_PREFIX.sub("", game.strip()))
    name = _BY_KEY.get(_key(stripped))
    if name is None:
        close = difflib.get_close_matches(_key(stripped), list(_BY_KEY), n=3, cutoff=0.5)
        hint = sorted({_BY_KEY[k] for k in close})
        suggestion = f"; did you mean {', '.join(hint)}?" if hint else ""
        raise ValueError(f"unknown Atari game {game!r}{suggestion} (known: ATARI_57)")
    return name


def human_normalized_score(game: str, score):
    """Human-normalized score (Mnih et al. 2015; Badia et al. 2020b, Sec. 5).

        HNS = (score - random) / (human - random)

    0 is random play, 1 is the human tester. ``game`` is static (a Python string, see
    :func:`canonical_game_name` for accepted spellings); ``score`` may be a Python
    float, a NumPy array or a (traced) JAX array, and the result has its type and shape.
    """
    random, human = ATARI_SCORES[canonical_game_name(game)]
    return (score - random) / (human - random)
