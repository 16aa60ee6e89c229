"""`jaxrl57 eval` (`jaxrl57.playback`) and the JAX games' drawings (`envs.render`)."""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57 import envs
from jaxrl57.cli import main
from jaxrl57.envs import render
from jaxrl57.envs.cartpole import RENDER_HEIGHT, RENDER_WIDTH, CartPoleState, render_cartpole
from jaxrl57.envs.catch import CatchState, render_catch

BG, BALL, PADDLE = (np.array(c, np.uint8) for c in (render.BACKGROUND, render.BALL,
                                                      render.PADDLE))


def _catch(ball_row, ball_col, paddle_col):
    return CatchState(*(jnp.int32(v) for v in (ball_row, ball_col, paddle_col, 0)))


def test_catch_draws_ball_and_paddle_cells():
    image = np.asarray(jax.jit(render_catch, static_argnums=(1, 2))(_catch(2, 3, 5), 8, 4))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    expected = np.broadcast_to(BG, (8, 8, 3)).copy()
    expected[2, 3], expected[7, 5] = BALL, PADDLE
    np.testing.assert_array_equal(image, np.repeat(np.repeat(expected, 4, 0), 4, 1))
    # A catch: the ball in front of the paddle.
    caught = np.asarray(render_catch(_catch(7, 5, 5), 8, 4))
    np.testing.assert_array_equal(caught[29, 21], BALL)


def test_renders_vmap_over_states_and_match_one_by_one():
    states = CatchState(*(jnp.asarray(v, jnp.int32) for v in ([0, 3], [1, 6], [4, 0], [0, 3])))
    env = envs.make_env("jax:Catch")
    batch = np.asarray(jax.jit(jax.vmap(env.render))(states))
    for i in range(2):
        one = jax.tree.map(lambda x, i=i: x[i], states)
        np.testing.assert_array_equal(batch[i], np.asarray(env.render(one)))


def _cartpole(x, theta):
    return CartPoleState(jnp.array([x, 0.0, theta, 0.0], jnp.float32), jnp.int32(0))


def test_cartpole_draws_cart_and_pole_where_the_state_puts_them():
    pole, cart = np.array(render.POLE, np.uint8), np.array(render.CART, np.uint8)
    upright = np.asarray(jax.jit(render_cartpole)(_cartpole(0.0, 0.0)))
    assert upright.shape == (RENDER_HEIGHT, RENDER_WIDTH, 3)
    centre = RENDER_WIDTH // 2
    track = int(0.8 * RENDER_HEIGHT)
    np.testing.assert_array_equal(upright[track - 3, centre], cart)  # in the cart
    np.testing.assert_array_equal(upright[50, centre], pole)  # up the pole (rows 34-84)
    np.testing.assert_array_equal(upright[50, centre + 20], BG)
    np.testing.assert_array_equal(upright[25, centre], BG)  # above its tip
    np.testing.assert_array_equal(upright[2, 2], BG)
    # 1.2 m to the right (50 px a metre): the cart moves 60 px.
    moved = np.asarray(render_cartpole(_cartpole(1.2, 0.0)))
    np.testing.assert_array_equal(moved[track - 3, centre + 60], cart)
    np.testing.assert_array_equal(moved[track - 3, centre], BG)
    # Leaning right (theta > 0): the pole's upper half is right of the cart's centre.
    lean = np.asarray(render_cartpole(_cartpole(0.0, 0.3)))
    row = 40  # 44 px above the cart's top (row 84), near the tip of the 50 px pole
    cols = np.flatnonzero(np.all(lean[row] == pole, axis=-1))
    assert cols.size and cols.min() > centre + 5, cols


def test_cave_draws_walls_passage_and_player_of_the_newest_frame():
    from jaxrl57.envs.cave import render_cave

    env = envs.make_env("jax:Cave", size=12, frames=2)
    state, _ = env.reset(jax.random.PRNGKey(0))
    state, *_ = env.step(jax.random.PRNGKey(1), state, jnp.int32(1))
    image = np.asarray(jax.jit(render_cave, static_argnums=1)(state, 2))
    assert image.shape == (24, 24, 3)
    frame = np.asarray(state.frames[..., -1])
    cells = image[::2, ::2]
    np.testing.assert_array_equal(np.all(cells == render.FOREGROUND, -1), frame == 255)
    np.testing.assert_array_equal(np.all(cells == render.BALL, -1), frame == 128)
    np.testing.assert_array_equal(np.all(cells == BG, -1), frame == 0)


def test_memory_chain_shows_the_cue_only_while_the_agent_sees_it():
    from jaxrl57.envs.memory import CUE_COLORS, MemoryChainState, render_memory_chain

    draw = jax.jit(render_memory_chain, static_argnums=(1, 2))
    start = np.asarray(draw(MemoryChainState(jnp.int32(1), jnp.int32(0)), 3, 1))
    assert start.shape == (2, 4, 3)
    np.testing.assert_array_equal(start[0, 0], CUE_COLORS[1])
    np.testing.assert_array_equal(start[1, 0], PADDLE)  # the agent at the start
    later = np.asarray(draw(MemoryChainState(jnp.int32(1), jnp.int32(2)), 3, 1))
    np.testing.assert_array_equal(later[0], np.broadcast_to(BG, (4, 3)))  # cue gone
    np.testing.assert_array_equal(later[1, 2], PADDLE)
    np.testing.assert_array_equal(later[1, 3], render.TRACK)  # the query cell ahead
    masked = envs.make_env("jax:MaskedCartPole-v1")
    state, _ = masked.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(masked.render(state), render_cartpole(state))


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eval") / "catch")
    assert main(["train", "dqn", "--env", "jax:Catch", "--steps", "2000", "--seeds", "2",
                 "--set", "num_rows=2", "--set", "learning_starts=200", "--no-progress",
                 "--out", out]) == 0
    return out


def _last_evals(run):
    import csv

    with open(os.path.join(run, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    return [float(r["eval_return"]) for r in rows[-2:]]


def test_eval_replays_the_runs_last_evaluation(catch_run, tmp_path, capsys):
    out = str(tmp_path / "e")
    assert main(["eval", catch_run, "--out", out]) == 0
    with open(os.path.join(out, "eval.json")) as f:
        record = json.load(f)
    assert record["replays_last_evaluation"] is True
    means = [m["mean"] for m in record["members"]]
    # metrics.csv keeps 6 significant digits.
    np.testing.assert_allclose(means, _last_evals(catch_run), rtol=1e-5)
    for m in record["members"]:
        assert m["episodes"] == 100 and len(m["returns"]) == 100
        assert set(m["returns"]) <= {-1.0, 1.0} and m["lengths"] == [7] * 100
    assert "last row's eval" in capsys.readouterr().out
    # The replay is of the run's episodes, not of any: this short run's policy is
    # imperfect, and other keys (--seed) or another epsilon play other episodes.
    returns = [m["returns"] for m in record["members"]]
    assert any(len(set(r)) == 2 for r in returns), returns
    assert main(["eval", catch_run, "--seed", "5", "--out", out]) == 0
    with open(os.path.join(out, "eval.json")) as f:
        other = json.load(f)
    assert other["replays_last_evaluation"] is False
    assert [m["returns"] for m in other["members"]] != returns
    assert main(["eval", catch_run, "--epsilon", "0.5", "--out", out]) == 0
    with open(os.path.join(out, "eval.json")) as f:
        assert json.load(f)["replays_last_evaluation"] is False


def test_eval_one_member_other_episodes_and_a_video(catch_run, tmp_path):
    out, video = str(tmp_path / "e"), str(tmp_path / "catch.gif")
    assert main(["eval", catch_run, "--member", "1", "--episodes", "5", "--seed", "3",
                 "--epsilon", "1.0", "--video", video, "--out", out]) == 0
    with open(os.path.join(out, "eval.json")) as f:
        record = json.load(f)
    assert [m["member"] for m in record["members"]] == [1]
    assert record["members"][0]["episodes"] == 5 and record["replays_last_evaluation"] is False
    import imageio.v3 as iio

    frames = iio.imread(video, index=None)
    # Catch episodes take 7 steps: the first state and the state after each step.
    assert frames.shape[:3] == (8, 128, 128)


@pytest.mark.parametrize("extra, needle", [
    (["--member", "2"], "--member 2: the run has 2 members"),
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--epsilon", "2"], "--epsilon must be in [0, 1]"),
    (["--video", "/nonexistent-folder/x.gif"], "cannot write into"),
    (["--video", "clip.avi"], "give a .gif or .mp4"),
])
def test_eval_bad_options_exit_2(catch_run, capsys, extra, needle):
    assert main(["eval", catch_run, *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_eval_unwritable_outputs_exit_2_before_playing(catch_run, tmp_path, capsys, monkeypatch):
    from jaxrl57 import recording

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["eval", catch_run, "--out", str(a_file / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--out: cannot create" in err and err.count("\n") == 1, err
    monkeypatch.setattr(recording, "mp4_supported", lambda: False)
    played = []
    monkeypatch.setattr(recording.Player, "play", lambda *a, **k: played.append(1))
    assert main(["eval", catch_run, "--video", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert "ffmpeg plugin" in err and err.count("\n") == 1, err
    assert not played


def test_eval_bad_folders_exit_2(catch_run, tmp_path, capsys):
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(os.path.join(catch_run, "args.json"), no_ckpt / "args.json")
    for folder, needle in ((tmp_path / "missing", "no such folder"),
                           (tmp_path, "no args.json"),
                           (no_ckpt, "no checkpoint there yet")):
        assert main(["eval", str(folder)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    (no_ckpt / "checkpoint.ckpt").write_bytes(b"JAXRL57-CKPT-1 ")
    for folder, needle in ((no_ckpt, "old pickle format"),):
        assert main(["eval", str(folder)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_eval_of_an_envpool_run(tmp_path, capsys):
    pytest.importorskip("envpool")
    run = str(tmp_path / "cp")
    assert main(["train", "dqn", "--env", "CartPole-v1", "--steps", "2400", "--no-progress",
                 "--set", "num_rows=1", "--set", "learning_starts=200", "--set",
                 "eval_episodes=3", "--set", "eval_epsilon=0", "--seeds", "2",
                 "--out", run]) == 0
    assert main(["eval", run, "--out", str(tmp_path / "e")]) == 0
    with open(tmp_path / "e" / "eval.json") as f:
        members = json.load(f)["members"]
    for member in members:
        assert member["episodes"] == 3 and member["min"] >= 8  # CartPole's shortest episode
        assert member["lengths"] == [int(r) for r in member["returns"]]  # reward 1 a step
    # The run's one evaluation was the first on a fresh pool whose envs for member
    # m are seeded from m * eval_episodes on; greedy, eval plays those episodes.
    # (metrics.csv keeps 6 significant digits: 180.333 for 541 / 3.)
    np.testing.assert_allclose([m["mean"] for m in members], _last_evals(run), rtol=1e-5)
    capsys.readouterr()
    assert main(["eval", run, "--video", str(tmp_path / "v.gif")]) == 2
    assert "observations are not frames" in capsys.readouterr().err


def test_train_video_every_records_evaluation_episodes(tmp_path, capsys):
    pytest.importorskip("imageio")
    import imageio.v3 as iio

    from jaxrl57 import recording

    out = tmp_path / "run"
    assert main(["train", "dqn", "--env", "jax:Catch", "--steps", "1500", "--no-progress",
                 "--set", "num_rows=3", "--set", "learning_starts=200", "--video-every", "2",
                 "--out", str(out)]) == 0
    ext = ".mp4" if recording.mp4_supported() else ".gif"
    assert sorted(os.listdir(out / "videos")) == [f"row0002-1008steps{ext}"]
    frames = iio.imread(out / "videos" / f"row0002-1008steps{ext}", index=None)
    assert frames.shape[:3] == (8, 128, 128)  # a whole Catch episode: 7 steps
    capsys.readouterr()
    assert main(["train", "--video-every", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--video-every must be >= 0" in capsys.readouterr().err
