"""The EnvPool loop (`jaxrl57.runners.envpool_loop`): members folded into one env batch."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxrl57 import configs

pytest.importorskip("envpool")
pytestmark = pytest.mark.envpool

from jaxrl57.build import make_driver  # noqa: E402

# Two rows of 4 envs x 64 iterations; learning starts in row 2.
SMALL = {"num_envs": "4", "num_rows": "2", "total_steps": "512", "eval_episodes": "2",
         "learning_starts": "300", "batch_size": "16", "hidden_sizes": "16",
         "eval_max_steps": "50"}


def _driver(seeds, hparams=None):
    s = configs.resolve("dqn", "CartPole-v1", SMALL)
    return make_driver("CartPole-v1", s, hparams or [s.hparams] * len(seeds), seeds)


def test_members_fold_into_one_pool_and_rows_are_per_member():
    d = _driver([0, 1, 2])
    assert d.envs.num_envs == 12 and d.eval_envs.num_envs == 6
    assert np.asarray(d.state["agent"].updates).shape == (3,)
    rows = [d.run_row() for _ in range(2)]
    for row in rows:
        assert len(row) == 3
        assert all(r["env_steps"] == row[0]["env_steps"] for r in row)
    first, second = rows
    assert all(r["updates"] == 0 for r in first)  # 256 transitions < learning_starts
    assert all(r["updates"] > 0 and np.isfinite(r["loss"]) for r in second)
    # 256 random CartPole steps per member end several episodes in each member's envs.
    assert all(r["episodes"] >= 4 for r in first)
    assert all(np.isfinite(r["eval_return"]) for r in second)


def test_member_zero_of_a_sweep_replays_the_single_run():
    """Member 0 owns envs 0..M-1 of a pool seeded like the single run's, and the
    single run's agent seed: before learning starts both act identically."""
    single = _driver([7]).run_row()[0]
    swept = _driver([7, 8]).run_row()
    for k in ("episode_return", "episode_length", "episodes"):
        assert swept[0][k] == single[k], k
    assert swept[1]["episodes"] > 0


def test_a_sweep_gives_each_member_its_hyperparameters():
    s = configs.resolve("dqn", "CartPole-v1", SMALL)
    hps = [dict(s.hparams, learning_rate=lr) for lr in (1e-3, 3e-2)]
    d = _driver([0, 0], hps)
    np.testing.assert_allclose(np.asarray(d.state["agent"].hparams.learning_rate),
                               [1e-3, 3e-2], rtol=1e-6)
    d.run_row()
    rows = d.run_row()
    # Same seed and data stream until the first update; the learning rates then differ.
    assert rows[0]["loss"] != rows[1]["loss"]


def test_atari_runs_log_human_normalized_eval():
    from jaxrl57.evaluation import human_normalized_score
    from jaxrl57.train import _atari_game

    assert _atari_game("Breakout-v5") == "Breakout"
    assert human_normalized_score(_atari_game("Pong-v5"), 14.6) == pytest.approx(1.0, abs=1e-3)
    assert _atari_game("CartPole-v1") is None and _atari_game("jax:Catch") is None


def test_scanned_updates_match_one_call_per_update():
    """`scan_updates` runs a phase's updates as one lax.scan: same keys, same updates."""
    out = []
    for scan in ("0", "1"):
        s = configs.resolve("dqn", "CartPole-v1", dict(SMALL, scan_updates=scan,
                                                       updates_per_train="3"))
        d = make_driver("CartPole-v1", s, [s.hparams], [5])
        out.append([d.run_row()[0] for _ in range(2)][-1])
    loop, scanned = out
    assert scanned["updates"] == loop["updates"] > 0
    for k in ("loss", "q_mean", "grad_norm"):
        np.testing.assert_allclose(scanned[k], loop[k], rtol=1e-4)


def test_resume_from_state_continues_the_count_with_fresh_episodes():
    d = _driver([0])
    first = d.run_row()[0]
    saved = jax.device_get(d.get_state())
    e = _driver([0])
    e.run_row()  # episodes under way, which the restored state must not continue
    e.set_state(saved)
    second = e.run_row()[0]
    steps_per_row = first["env_steps"]
    assert second["env_steps"] == 2 * steps_per_row
    assert second["updates"] > first["updates"] == 0  # learning starts in the second row
    assert second["episodes"] > 0 and np.isfinite(second["loss"])
