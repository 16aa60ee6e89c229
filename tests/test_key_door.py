"""`jax:KeyDoor`: the shortest path, the locked door, the key, truncation, and how
rarely a random policy reaches the goal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.envs import make_env
from jaxrl57.envs.key_door import layout, make_key_door, shortest_path

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _play(env, actions):
    """Steps `actions` from a reset; returns the list of (state, obs, reward,
    terminated, truncated) after each."""
    state, obs = env.reset(jax.random.PRNGKey(0))
    out = []
    step = jax.jit(env.step)
    for a in actions:
        state, obs, r, term, trunc = step(None, state, jnp.int32(a))
        out.append((state, obs, float(r), bool(term), bool(trunc)))
    return out


def _optimal_actions(size):
    wall = layout(size).wall_column
    # Through the door and one cell on: the door is a cell of the wall column.
    return ([DOWN] * (size - 1) + [UP] * (size - 1) + [RIGHT] * (wall + 1)
            + [DOWN] * (size - 1) + [RIGHT] * (size - 2 - wall))


@pytest.mark.parametrize("size", [5, 8, 11])
def test_the_shortest_path_fetches_the_key_and_pays_1_at_the_goal(size):
    env = make_key_door(size)
    actions = _optimal_actions(size)
    assert len(actions) == shortest_path(size) == 4 * (size - 1)
    steps = _play(env, actions)
    *before, last = steps
    assert all(r == 0.0 and not term and not trunc for _, _, r, term, trunc in before)
    state, obs, r, term, trunc = last
    assert (r, term, trunc) == (1.0, True, False)
    assert (int(state.row), int(state.column)) == (size - 1, size - 1)
    # The key left the floor when the agent stepped on it, size - 1 steps in.
    assert bool(steps[size - 2][0].has_key) and not bool(steps[size - 3][0].has_key)
    assert float(steps[size - 2][1][..., 1].sum()) == 0.0


def test_the_door_is_closed_without_the_key_and_the_wall_everywhere_else():
    env = make_key_door(8)
    wall = layout(8).wall_column
    # Along the top row into the door without the key: stopped in front of it.
    state = _play(env, [RIGHT] * (wall + 2))[-1][0]
    assert (int(state.row), int(state.column)) == (0, wall - 1)
    # With the key, through any wall cell but the door: stopped too.
    state = _play(env, [DOWN] * 7 + [RIGHT] * (wall + 2))[-1][0]
    assert bool(state.has_key) and (int(state.row), int(state.column)) == (7, wall - 1)


def test_observation_and_registry():
    env = make_env("jax:KeyDoor", size=6)
    assert env.spec.obs_shape == (6, 6, 2) and env.spec.num_actions == 4
    assert env.spec.max_episode_steps == 2 * 36
    state, obs = env.reset(jax.random.PRNGKey(0))
    assert obs[0, 0, 0] == 1.0 and obs[..., 0].sum() == 1.0
    assert obs[5, 0, 1] == 1.0 and obs[..., 1].sum() == 1.0  # the key, bottom left
    state, obs, *_ = env.step(None, state, jnp.int32(UP))  # into the border: stays
    assert obs[0, 0, 0] == 1.0 and int(state.t) == 1
    assert env.render(state).shape == (72, 72, 3)


def test_truncates_at_the_time_limit_and_not_before():
    env = make_key_door(5)
    limit = env.spec.max_episode_steps
    steps = _play(env, [UP] * limit)
    assert not any(trunc for *_, trunc in steps[:-1])
    assert steps[-1][4] and not steps[-1][3]


def test_a_random_policy_rarely_reaches_the_goal():
    """The layout's point: a uniform random walk reaches the goal in about 1
    episode of 680 at size 8 and 1 of 930 at size 10 (293 and 215 of 200,000
    episodes on other keys); here a 4-sigma binomial bound over 20,000."""
    rates = {}
    for size in (8, 10):
        env = make_key_door(size)

        def one(key, env=env):
            state, _ = env.reset(key)

            def body(carry, key):
                state, done, ret = carry
                s2, _, r, term, trunc = env.step(key, state, jax.random.randint(key, (), 0, 4))
                alive = ~done
                state = jax.tree.map(lambda a, b: jnp.where(alive, a, b), s2, state)
                return (state, done | term | trunc, ret + jnp.where(alive, r, 0.0)), None

            (_, _, ret), _ = jax.lax.scan(body, (state, jnp.bool_(False), jnp.float32(0)),
                                          jax.random.split(key, env.spec.max_episode_steps))
            return ret

        num = 20_000
        rates[size] = float(jax.jit(jax.vmap(one))(jax.random.split(
            jax.random.PRNGKey(size), num)).mean())
    for size, p in ((8, 293 / 200_000), (10, 215 / 200_000)):
        assert abs(rates[size] - p) < 4 * np.sqrt(p / 20_000), rates


@pytest.mark.parametrize("size", ["abc", 4, 2.5])
def test_bad_size_names_itself(size):
    with pytest.raises(ValueError, match="size"):
        make_key_door(size)
