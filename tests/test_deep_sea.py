"""`jax:DeepSea` (bsuite's DeepSea) against hand-derived returns and bsuite's rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.envs import make_env
from jaxrl57.envs.deep_sea import action_mapping, make_deep_sea


def _episodes(env, policy, num, key):
    """Plays `num` episodes with `policy(key, state) -> action`; returns the
    returns [num], lengths [num], the final observations and whether any
    truncated."""

    def one(key):
        state, obs = env.reset(key)

        def body(carry, key):
            state, ret, length, done, last_obs, trunc = carry
            action = policy(key, state)
            state2, obs2, r, term, tr = env.step(key, state, action)
            alive = ~done
            return (jax.tree.map(lambda a, b: jnp.where(alive, a, b), state2, state),
                    ret + jnp.where(alive, r, 0.0), length + alive.astype(jnp.int32),
                    done | term | tr, jnp.where(alive, obs2, last_obs), trunc | (alive & tr)
                    ), None

        init = (state, jnp.float32(0), jnp.int32(0), jnp.bool_(False), obs, jnp.bool_(False))
        (_, ret, length, _, last_obs, trunc), _ = jax.lax.scan(
            body, init, jax.random.split(key, env.spec.max_episode_steps))
        return ret, length, last_obs, trunc

    return jax.jit(jax.vmap(one))(jax.random.split(key, num))


@pytest.mark.parametrize("size", [5, 20])
def test_always_right_finds_the_treasure_for_0_99(size):
    env = make_deep_sea(size, mapping_seed=3)
    right = jnp.asarray(action_mapping(size, 3))
    ret, length, last_obs, trunc = _episodes(
        env, lambda key, s: right[s.row, s.column], 4, jax.random.PRNGKey(0))
    np.testing.assert_allclose(ret, 0.99, rtol=1e-5)
    np.testing.assert_array_equal(length, size)
    assert not np.any(trunc)
    np.testing.assert_array_equal(last_obs, 0.0)  # bsuite's null terminal observation


def test_a_random_policy_finds_it_once_in_2_to_the_size_episodes():
    size, num = 4, 40_000
    env = make_deep_sea(size)
    ret, length, _, _ = _episodes(env, lambda key, s: jax.random.randint(key, (), 0, 2),
                                  num, jax.random.PRNGKey(1))
    found = np.asarray(ret) > 0.5
    assert abs(found.mean() - 2.0 ** -size) < 4 * np.sqrt(2.0 ** -size / num)
    # Every other episode pays at most 0: the moves right cost 0.01 / size each.
    assert np.all(np.asarray(ret)[~found] <= 0.0)
    assert np.all(np.asarray(ret)[~found] >= -0.01 * (size - 1) / size - 1e-6)
    np.testing.assert_array_equal(length, size)


def test_the_meaning_of_the_actions_is_drawn_per_cell_from_the_mapping_seed():
    a, b = action_mapping(20, 0), action_mapping(20, 1)
    assert a.shape == (20, 20) and set(np.unique(a)) == {0, 1}
    assert 0.35 < a.mean() < 0.65 and (a != b).mean() > 0.3
    np.testing.assert_array_equal(a, action_mapping(20, 0))
    # Action 1 everywhere is not "right everywhere": it falls off the diagonal.
    env = make_deep_sea(20)
    ret, *_ = _episodes(env, lambda key, s: jnp.int32(1), 1, jax.random.PRNGKey(0))
    assert float(ret[0]) <= 0.0


def test_observation_step_by_step_and_the_registry():
    env = make_env("jax:DeepSea", size=6, mapping_seed=2)
    assert env.spec.obs_shape == (6, 6) and env.spec.num_actions == 2
    right = action_mapping(6, 2)
    state, obs = env.reset(jax.random.PRNGKey(0))
    assert obs[0, 0] == 1.0 and obs.sum() == 1.0
    state, obs, reward, term, trunc = env.step(None, state, jnp.int32(1 - right[0, 0]))  # left
    assert (int(state.row), int(state.column)) == (1, 0)  # clipped at the border
    assert obs[1, 0] == 1.0 and obs.sum() == 1.0 and float(reward) == 0.0
    state, obs, reward, term, trunc = env.step(None, state, jnp.int32(right[1, 0]))
    assert (int(state.row), int(state.column)) == (2, 1) and obs[2, 1] == 1.0
    assert float(reward) == pytest.approx(-0.01 / 6) and not bool(term) and not bool(trunc)
    assert env.render(state).shape == (72, 72, 3)


@pytest.mark.parametrize("kwargs", [dict(size="abc"), dict(size=1), dict(mapping_seed=-1)])
def test_bad_arguments_name_themselves(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_deep_sea(**kwargs)
