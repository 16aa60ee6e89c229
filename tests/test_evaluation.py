"""Tests of jaxrl57.evaluation (human-normalized Atari scores)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.evaluation import ATARI_57, ATARI_SCORES, human_normalized_score


def test_all_57_games():
    assert len(ATARI_57) == 57 == len(set(ATARI_57)) == len(ATARI_SCORES)
    for name in (
        "Pong",
        "Breakout",
        "MontezumaRevenge",
        "SpaceInvaders",
        "Pitfall",
        "Skiing",
        "Surround",
        "Solaris",
        "PrivateEye",
        "UpNDown",
        "Jamesbond",
        "Hero",
    ):
        assert name in ATARI_SCORES
    for random, human in ATARI_SCORES.values():
        assert human != random


@pytest.mark.parametrize(
    "game,random,human",
    [
        ("Pong", -20.7, 14.6),
        ("Breakout", 1.7, 30.5),
        ("MontezumaRevenge", 0.0, 4753.3),
        ("SpaceInvaders", 148.0, 1668.7),
    ],
)
def test_published_values(game, random, human):
    assert ATARI_SCORES[game] == (random, human)
    assert human_normalized_score(game, human) == pytest.approx(1.0)
    assert human_normalized_score(game, random) == pytest.approx(0.0)


def test_formula():
    # (score - random) / (human - random), Breakout: (59.3 - 1.7) / (30.5 - 1.7) = 57.6 / 28.8
    assert human_normalized_score("Breakout", 59.3) == pytest.approx(2.0)
    # Games with negative scores: Skiing random -17098.1, human -4336.9.
    s = -10717.5
    assert human_normalized_score("Skiing", s) == pytest.approx((s + 17098.1) / 12761.2)


@pytest.mark.parametrize(
    "name",
    ["Pong", "pong", "PONG", "Pong-v5", "ALE/Pong-v5", "PongNoFrameskip-v4", " pong "],
)
def test_name_variants_pong(name):
    assert human_normalized_score(name, 14.6) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name,canonical",
    [
        ("space_invaders", "SpaceInvaders"),
        ("SpaceInvaders-v5", "SpaceInvaders"),
        ("montezuma_revenge", "MontezumaRevenge"),
        ("MontezumaRevenge-v5", "MontezumaRevenge"),
        ("montezumas_revenge", "MontezumaRevenge"),
        ("up_n_down", "UpNDown"),
        ("UpNDown-v5", "UpNDown"),
        ("kung_fu_master", "KungFuMaster"),
        ("ms_pacman", "MsPacman"),
    ],
)
def test_name_variants(name, canonical):
    random, human = ATARI_SCORES[canonical]
    assert human_normalized_score(name, human) == pytest.approx(1.0)
    assert human_normalized_score(name, random) == pytest.approx(0.0)


def test_unknown_game_suggests():
    with pytest.raises(ValueError, match="Pong"):
        human_normalized_score("Pongg", 1.0)
    with pytest.raises(ValueError, match="SpaceInvaders"):
        human_normalized_score("space_invader", 1.0)
    with pytest.raises(ValueError, match="unknown"):
        human_normalized_score("CartPole-v1", 1.0)


def test_arrays_and_jit():
    scores = np.array([-20.7, 14.6, 50.0])
    np.testing.assert_allclose(human_normalized_score("Pong", scores), [0.0, 1.0, 70.7 / 35.3])
    j = jax.jit(lambda s: human_normalized_score("Pong-v5", s))(jnp.array([[-20.7], [14.6]]))
    assert j.shape == (2, 1)
    np.testing.assert_allclose(j[:, 0], [0.0, 1.0], atol=1e-5)
    g = jax.grad(lambda s: human_normalized_score("Pong", s))(0.0)
    np.testing.assert_allclose(g, 1 / 35.3, rtol=1e-5)
