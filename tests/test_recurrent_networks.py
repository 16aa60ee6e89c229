"""`RecurrentQNetwork` (R2D2's LSTM network, Kapturowski et al. 2019; ConvLSTM, Shi et al. 2015).

Both variants run on tiny sizes: shapes, unroll == stepping, episode resets,
memory across steps, the previous-action/reward inputs, jit/vmap/grad and the
burn-in pattern of the R2D2 learner (stop-gradient on the burn-in state).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl57.networks.recurrent import RecurrentQNetwork, initial_carry
from jaxrl57.networks.torsos import ConvTorso, MLPTorso

T, B, A = 6, 3, 3
OBS_DIM = 4
FRAME = (4, 20, 20)  # EnvPool-style [C, H, W] frame stack
CORE = 8
CONV_LSTM = 4
# ConvTorso(features=(4,), kernels=(4,), strides=(2,), VALID): floor((20 - 4) / 2) + 1 = 9;
# the ConvLSTM pads SAME, so its state keeps the 9 x 9 map with CONV_LSTM channels.
MAP = 9
VARIANTS = ["lstm", "convlstm"]
RTOL, ATOL = 1e-5, 1e-5


def _net(variant: str) -> RecurrentQNetwork:
    if variant == "lstm":
        return RecurrentQNetwork(A, MLPTorso(hidden_sizes=(16,)), core_size=CORE,
                                 head_hidden=(8,))
    torso = ConvTorso(features=(4,), kernels=(4,), strides=(2,), dense=0, spatial=True,
                      channels_first=True)
    return RecurrentQNetwork(A, torso, core_size=CORE, head_hidden=(8,),
                             conv_lstm_features=CONV_LSTM, conv_lstm_kernel=3)


def _obs_shape(variant: str) -> tuple[int, ...]:
    return (OBS_DIM,) if variant == "lstm" else FRAME


def _carry_shape(variant: str, batch: int = B) -> tuple[int, ...]:
    return (batch, CORE) if variant == "lstm" else (batch, MAP, MAP, CONV_LSTM)


def _obs(variant: str, key, t: int = T, b: int = B, floats: bool = False):
    if variant == "lstm":
        return jax.random.normal(key, (t, b, OBS_DIM))
    if floats:  # what the torso would make of uint8 frames: [0, 1]
        return jax.random.uniform(key, (t, b) + FRAME)
    return jax.random.randint(key, (t, b) + FRAME, 0, 256).astype(jnp.uint8)


def _inputs(variant: str, seed: int = 0, t: int = T, b: int = B, floats: bool = False):
    k_obs, k_act, k_rew = jax.random.split(jax.random.PRNGKey(seed), 3)
    return dict(obs=_obs(variant, k_obs, t, b, floats),
                prev_action=jax.random.randint(k_act, (t, b), 0, A),
                prev_reward=jax.random.normal(k_rew, (t, b)),
                reset=jnp.zeros((t, b), bool))


@functools.cache
def _seed_params(variant: str):
    """Params for 3 seeds, stacked on a leading axis (one compiled `init`, called per key)."""
    init = jax.jit(_net(variant).init)
    x = _inputs(variant, t=1, b=1)
    per_seed = [init(k, **x) for k in jax.random.split(jax.random.PRNGKey(0), 3)]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *per_seed)


def _init(variant: str, seed: int = 0):
    params = jax.tree.map(lambda leaf: leaf[seed], _seed_params(variant))
    return _net(variant), params


@functools.cache
def _apply(variant: str):
    """One jitted apply per variant, shared by the tests (compiled once per shape)."""
    return jax.jit(_net(variant).apply)


def _random_carry(variant: str, seed: int, scale: float = 2.0):
    k_c, k_h = jax.random.split(jax.random.PRNGKey(seed))
    shape = _carry_shape(variant)
    return scale * jax.random.normal(k_c, shape), scale * jax.random.normal(k_h, shape)


def _slice(x: dict, t: slice) -> dict:
    return {k: v[t] for k, v in x.items()}


def _assert_tree_close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=RTOL, atol=ATOL), a, b)


def _max_abs_diff(a, b) -> float:
    return float(jnp.max(jnp.abs(a - b)))


# 1. Shapes and dtypes.

@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_dtypes_and_initial_carry(variant):
    net, params = _init(variant)
    x = _inputs(variant)
    assert x["obs"].dtype == (jnp.float32 if variant == "lstm" else jnp.uint8)
    apply = _apply(variant)
    q, (c, h) = apply(params, **x)
    assert q.shape == (T, B, A) and q.dtype == jnp.float32
    assert c.shape == h.shape == _carry_shape(variant)
    assert c.dtype == h.dtype == jnp.float32
    assert np.all(np.isfinite(q))

    zeros = initial_carry(net, params, x["obs"][0, 0], batch_size=5)
    for z in zeros:
        assert z.shape == _carry_shape(variant, 5) and z.dtype == jnp.float32
        assert not np.any(z)
    # The zero state is what carry=None starts from.
    zeros = initial_carry(net, params, x["obs"][0, 0], batch_size=B)
    q_zero, carry_zero = apply(params, **x, carry=zeros)
    q_none, carry_none = apply(params, **x)
    _assert_tree_close((q_zero, carry_zero), (q_none, carry_none))


# 2. One unroll over T steps == T single steps chaining the carry.

@pytest.mark.parametrize("variant", VARIANTS)
def test_unroll_equals_stepping(variant):
    net, params = _init(variant)
    x = _inputs(variant, seed=1)
    x["reset"] = x["reset"].at[2, 0].set(True).at[4, 1].set(True).at[0, 2].set(True)
    carry0 = _random_carry(variant, seed=2)
    apply = _apply(variant)

    q_unroll, carry_unroll = apply(params, **x, carry=carry0)
    carry, qs = carry0, []
    for t in range(T):
        q_t, carry = apply(params, **_slice(x, slice(t, t + 1)), carry=carry)
        qs.append(q_t[0])
    _assert_tree_close((q_unroll, carry_unroll), (jnp.stack(qs), carry))


# 3. Reset semantics.

@pytest.mark.parametrize("variant", VARIANTS)
def test_reset_restarts_sequence_from_zero_state(variant):
    net, params = _init(variant)
    apply = _apply(variant)
    x = _inputs(variant, seed=3)
    k, b = 3, 1
    x_reset = dict(x, reset=x["reset"].at[k, b].set(True))
    # A fresh episode from step k: zero state (carry=None), and its first step flagged,
    # which also zeroes that step's previous action and reward.
    fresh_q, fresh_carry = apply(params, **_slice(x_reset, slice(k, None)))

    q_plain, _ = apply(params, **x, carry=_random_carry(variant, seed=4))
    for carry_seed in (4, 5):  # any incoming carry
        carry0 = _random_carry(variant, seed=carry_seed)
        q, carry = apply(params, **x_reset, carry=carry0)
        # Sequence b from step k on: a fresh unroll from step k.
        np.testing.assert_allclose(q[k:, b], fresh_q[:, b], rtol=RTOL, atol=ATOL)
        _assert_tree_close(tuple(c[b] for c in carry), tuple(c[b] for c in fresh_carry))
        # The reset changes nothing before step k, nor any other sequence.
        q_no_reset, carry_no_reset = apply(params, **x, carry=carry0)
        np.testing.assert_array_equal(q[:k], q_no_reset[:k])
        others = np.array([i for i in range(B) if i != b])
        np.testing.assert_array_equal(q[:, others], q_no_reset[:, others])
        for c, c_ref in zip(carry, carry_no_reset, strict=True):
            np.testing.assert_array_equal(c[others], c_ref[others])
        # And it did something: without it, sequence b remembers carry0.
        assert _max_abs_diff(q_no_reset[k:, b], q[k:, b]) > 1e-4
    # Sequences without a reset depend on the incoming carry (so the check above is not vacuous).
    q_other, _ = apply(params, **x, carry=_random_carry(variant, seed=5))
    assert _max_abs_diff(q_plain[:, 0], q_other[:, 0]) > 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_reset_at_step_zero_ignores_incoming_carry(variant):
    net, params = _init(variant)
    apply = _apply(variant)
    x = _inputs(variant, seed=6)
    x["reset"] = x["reset"].at[0].set(True)
    q_a, carry_a = apply(params, **x, carry=_random_carry(variant, seed=7))
    q_b, carry_b = apply(params, **x, carry=_random_carry(variant, seed=8, scale=10.0))
    q_none, carry_none = apply(params, **x, carry=initial_carry(net, params, x["obs"][0, 0], B))
    np.testing.assert_array_equal(q_a, q_b)
    _assert_tree_close((q_a, carry_a), (q_none, carry_none))
    _assert_tree_close(carry_a, carry_b)


# 4. Memory: q[t] depends on obs[s < t] unless a reset lies in (s, t].

@pytest.mark.parametrize("variant", VARIANTS)
def test_memory_reaches_back_until_a_reset(variant):
    net, params = _init(variant)
    apply = _apply(variant)
    x = _inputs(variant, seed=9)
    s, t, r, b = 1, 4, 3, 0  # perturb step s; look at step t; reset at s < r <= t
    new_obs = _obs(variant, jax.random.PRNGKey(10), 1, 1)[0, 0]
    x_perturbed = dict(x, obs=x["obs"].at[s, b].set(new_obs))

    q, _ = apply(params, **x)
    q_pert, _ = apply(params, **x_perturbed)
    np.testing.assert_array_equal(q[:s], q_pert[:s])  # causal: earlier steps untouched
    assert _max_abs_diff(q[t, b], q_pert[t, b]) > 1e-6  # remembered three steps later

    x_r = dict(x, reset=x["reset"].at[r, b].set(True))
    x_r_perturbed = dict(x_perturbed, reset=x_r["reset"])
    q_r, _ = apply(params, **x_r)
    q_r_pert, _ = apply(params, **x_r_perturbed)
    assert _max_abs_diff(q_r[s:r, b], q_r_pert[s:r, b]) > 1e-6  # before the reset: remembered
    np.testing.assert_array_equal(q_r[r:], q_r_pert[r:])  # from the reset on: forgotten, exactly


# 5. The previous action (one-hot) and the previous reward are inputs.

@pytest.mark.parametrize("variant", VARIANTS)
def test_previous_action_and_reward_are_inputs(variant):
    net, params = _init(variant)
    apply = _apply(variant)
    x = _inputs(variant, seed=11)
    t = 2
    q, _ = apply(params, **x)
    changed_action = dict(x, prev_action=x["prev_action"].at[t].set((x["prev_action"][t] + 1) % A))
    changed_reward = dict(x, prev_reward=x["prev_reward"].at[t].add(1.0))
    for x_changed in (changed_action, changed_reward):
        q_changed, _ = apply(params, **x_changed)
        np.testing.assert_array_equal(q[:t], q_changed[:t])
        for b in range(B):
            assert _max_abs_diff(q[t, b], q_changed[t, b]) > 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
def test_previous_action_and_reward_are_zeroed_at_an_episode_start(variant):
    """At a reset step the last episode's action and reward do not reach the core:
    any values give the Q-values of a zero action vector and a zero reward."""
    net, params = _init(variant)
    apply = _apply(variant)
    x = _inputs(variant, seed=13)
    t, b = 2, 1
    x = dict(x, reset=x["reset"].at[t, b].set(True))
    q, _ = apply(params, **x)
    other = dict(x, prev_action=x["prev_action"].at[t, b].set((x["prev_action"][t, b] + 1) % A),
                 prev_reward=x["prev_reward"].at[t, b].add(5.0))
    q_other, _ = apply(params, **other)
    np.testing.assert_array_equal(q, q_other)
    # ... and equal a step from the zero state fed a zero reward and the zero vector
    # for the action (`one_hot(A)` of an out-of-range index), without a reset.
    zero_carry = initial_carry(net, params, jnp.zeros(_obs_shape(variant), x["obs"].dtype), 1)
    q_ref, _ = apply(params, obs=x["obs"][t:t + 1, b:b + 1],
                     prev_action=jnp.full((1, 1), A, jnp.int32), prev_reward=jnp.zeros((1, 1)),
                     reset=jnp.zeros((1, 1), bool), carry=zero_carry)
    np.testing.assert_allclose(q[t, b], q_ref[0, 0], rtol=RTOL, atol=ATOL)


# 6. jit, vmap over seeds, grad.

@pytest.mark.parametrize("variant", VARIANTS)
def test_jit_vmap_over_seeds_and_grad(variant):
    net = _net(variant)
    x = _inputs(variant, seed=12)
    x["reset"] = x["reset"].at[3, 2].set(True)
    stacked = _seed_params(variant)  # the three seeds' params on a leading axis
    per_seed = [_init(variant, i)[1] for i in range(3)]

    q_eager, carry_eager = net.apply(per_seed[0], **x)
    q_jit, carry_jit = jax.jit(net.apply)(per_seed[0], **x)
    _assert_tree_close((q_jit, carry_jit), (q_eager, carry_eager))

    qs, carries = jax.jit(jax.vmap(lambda p: net.apply(p, **x)))(stacked)
    assert qs.shape == (3, T, B, A)
    for i, p in enumerate(per_seed):
        q_i, carry_i = _apply(variant)(p, **x)
        _assert_tree_close((qs[i], tuple(c[i] for c in carries)), (q_i, carry_i))
    for i in range(3):
        for j in range(i + 1, 3):
            assert _max_abs_diff(qs[i], qs[j]) > 1e-4

    # A loss that weights actions unequally (a plain sum of dueling Q-values
    # would cancel the centred advantages).
    weights = jax.random.normal(jax.random.PRNGKey(14), (T, B, A))
    loss = lambda p: jnp.sum(weights * net.apply(p, **x)[0])  # noqa: E731
    grads = jax.jit(jax.grad(loss))(per_seed[0])
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert all(np.all(np.isfinite(g)) for _, g in leaves)
    core = [(path, g) for path, g in leaves
            if any("Cell" in jax.tree_util.keystr((k,)) for k in path)]
    assert core, [jax.tree_util.keystr(path) for path, _ in leaves]
    for path, g in core:
        assert np.any(g != 0), jax.tree_util.keystr(path)
    torso = [g for path, g in leaves if "torso" in jax.tree_util.keystr(path)]
    assert torso and all(np.any(g != 0) for g in torso)


# 7. Burn-in, as the R2D2 learner does it.

@pytest.mark.parametrize("variant", VARIANTS)
def test_burn_in_stops_gradient_but_keeps_values(variant):
    net, params = _init(variant)
    x = _inputs(variant, seed=15, floats=True)
    x["reset"] = x["reset"].at[4, 1].set(True)
    k = 2
    burn, rest = _slice(x, slice(None, k)), _slice(x, slice(k, None))
    weights = jax.random.normal(jax.random.PRNGKey(16), (T - k, B, A))

    def loss(obs_burn, obs_rest, stop=True):
        _, carry = net.apply(params, **dict(burn, obs=obs_burn))
        if stop:
            carry = jax.lax.stop_gradient(carry)
        q, _ = net.apply(params, **dict(rest, obs=obs_rest), carry=carry)
        return jnp.sum(weights * q), q

    grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2)
    (g_burn, g_rest), q_rest = grad(burn["obs"], rest["obs"], True)
    assert np.all(g_burn == 0)
    assert np.all(np.isfinite(g_rest)) and np.any(g_rest != 0)
    # Without the stop-gradient the burn-in observations would get gradient.
    (g_burn_flowing, _), _ = grad(burn["obs"], rest["obs"], False)
    assert np.any(g_burn_flowing != 0)

    q_full, _ = _apply(variant)(params, **x)
    np.testing.assert_allclose(q_rest, q_full[k:], rtol=RTOL, atol=ATOL)


def test_ngu_inputs_reward_channels_are_zeroed_at_a_reset_and_the_policy_index_is_not():
    """NGU's core input: previous extrinsic and intrinsic rewards [T, B, 2] (zeroed
    at an episode's first step, as the action) and the policy index one-hot [T, B, N]
    (the UVFA input, kept)."""
    net = RecurrentQNetwork(A, MLPTorso(hidden_sizes=(16,)), core_size=CORE, head_hidden=(8,))
    x = _inputs("lstm", seed=21)
    rewards = jax.random.normal(jax.random.PRNGKey(22), (T, B, 2))
    policy = jax.nn.one_hot(jnp.array([0, 3, 5]), 6)[None].repeat(T, 0)  # [T, B, 6]
    x = dict(x, prev_reward=rewards, context=policy, reset=x["reset"].at[2, 1].set(True))
    params = net.init(jax.random.PRNGKey(0), **_slice(x, slice(0, 1)))
    apply = jax.jit(net.apply)
    q, _ = apply(params, **x)
    assert q.shape == (T, B, A)
    other_rewards = dict(x, prev_reward=x["prev_reward"].at[2, 1].add(3.0))
    np.testing.assert_array_equal(apply(params, **other_rewards)[0], q)  # the reset step
    intrinsic = dict(x, prev_reward=x["prev_reward"].at[1, 0, 1].add(1.0))
    assert _max_abs_diff(apply(params, **intrinsic)[0][1, 0], q[1, 0]) > 1e-6
    other_policy = dict(x, context=x["context"].at[2, 1].set(jax.nn.one_hot(4, 6)))
    assert _max_abs_diff(apply(params, **other_policy)[0][2, 1], q[2, 1]) > 1e-6
    carry = initial_carry(net, params, jnp.zeros((OBS_DIM,)), B,
                          prev_reward=jnp.zeros((1, B, 2)), context=jnp.zeros((1, B, 6)))
    assert carry[0].shape == (B, CORE)
