"""EnvPool's XLA interface: env steps as operations inside a jitted program.

`pool.xla()` (EnvPool >= 0.6) returns `send` and `recv` as XLA custom calls
(FFI targets for the CPU, and the GPU where EnvPool was built with it). A
loop of `recv -> policy -> send` can then be one `lax.while_loop` in one
compiled program: no Python, no host round trip and no dispatch per env
step. `send` and `recv` thread an opaque `handle` array, which orders them.

Where it is the faster path (`benchmarks/envpool_pipeline.py`, Breakout-v5,
8 envs, 2 threads, this 2-core CPU, docs/results.md): an acting-only loop with a
64-unit MLP on the pixels ran 3,351 env steps/s as one program (3,572 in async
mode) against 2,353 for the host loop (separate act call, adapter step,
`device_put`), and 4,013 for EnvPool's own random policy.

What it cannot do is the clean-transition step of `envs.envpool_env`:
EnvPool resets an env on the step AFTER the one that ended its episode
(gymnasium's next-step auto-reset, the only mode EnvPool has), and that reset
step has the static shape of a full batch, so a training loop inside a
program would store one bogus transition (final observation -> first
observation, reward 0) per episode, or need replay writes masked per env.
Training therefore keeps the host adapter; this module serves loops that
need no transitions: evaluation episodes (`runners.evaluation`: the
first episode of each env counts, so what follows an episode's end is
ignored; sync mode, deterministic) and acting alone (`run_batches`: sync or
async mode).

64-bit arrays. MuJoCo pools step float64 actions and return float64
observations. EnvPool's `pool.xla()` declares its custom calls' operands with
JAX's canonical dtypes, which are 32-bit unless `jax_enable_x64` is set: the
C++ side would then write 8-byte values into 4-byte buffers (a segfault, not
an error), and EnvPool's own check refuses float32 actions. So
`xla_functions` refuses such a pool unless x64 is enabled (`xla_supported`
says which pools it takes), and the runners evaluate those pools with the
host loop (`runners.evaluation.host_episodes`). Tracing a whole evaluation
program under x64 would work too, but it would also trace the agent's actor
in 64 bits (its random draws and default dtypes change), so its episodes
would no longer be those of the host loop. With x64 enabled, `send` casts
actions to the pool's action dtype and `recv_ordered` gives float32
observations, as the host adapter does.

Protocol. `reset(pool)` (host) starts every env; the program then takes the
reset observations with one `recv` and alternates `send`/`recv`, so every
`send` is matched by a `recv` before the program returns: the pool is idle
and may be reset, stepped from Python or looped again.

Ordering: in sync mode (`batch_size == num_envs`) a `recv` holds every env
once, in the order the envs finished; `recv_ordered` puts them back in env-id
order (`info["env_id"]`), the order of the adapter and of the runners.
Evaluation needs a sync-mode pool.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl57.envs.envpool_env import agent_obs_dtype, pool_action_dtype


class XlaStep(NamedTuple):
    """One `recv` of a sync-mode pool, in env-id order. obs: [E, *obs_shape]
    (float64 observations as float32, like the host adapter's); reward float32
    [E]; terminated, truncated bool [E]."""

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array


class XlaFunctions(NamedTuple):
    """The pool's XLA functions: `handle` (a host array to pass into the
    program), `send(handle, actions, env_id) -> handle`,
    `recv(handle) -> (handle, (obs, reward, terminated, truncated, info))`;
    the pool's `num_envs` and `batch_size` (equal in sync mode), and the dtype
    its actions are sent in (None: as the caller made them)."""

    handle: Any
    send: Any
    recv: Any
    num_envs: int
    batch_size: int
    action_dtype: Any = None


def wide_arrays(pool) -> list[str]:
    """The names of the pool's action and state arrays with 64-bit elements
    (MuJoCo: `action`, `obs` and some `info:` fields), which EnvPool's XLA
    interface can only pass with `jax_enable_x64`."""
    spec = pool.spec
    arrays = {**spec.action_array_spec, **spec.state_array_spec}
    return [name for name, a in arrays.items() if np.dtype(a.dtype).itemsize == 8]


def xla_supported(pool) -> bool:
    """Whether `xla_functions` takes `pool` under the current JAX config."""
    return bool(jax.config.jax_enable_x64) or not wide_arrays(pool)


def xla_functions(pool) -> XlaFunctions:
    """`pool.xla()` of a gymnasium-API EnvPool, with the pool's sizes and action
    dtype. ValueError for a pool with 64-bit arrays while x64 is off (module
    docstring): its custom calls would be declared with 32-bit buffers."""
    if not xla_supported(pool):
        raise ValueError(
            f"EnvPool's XLA interface needs jax_enable_x64 for a pool with 64-bit arrays "
            f"({', '.join(wide_arrays(pool))}); use eval_loop=python")
    handle, recv, send, _ = pool.xla()  # the fourth, `step`, is send + recv
    num_envs = int(pool.config["num_envs"])
    return XlaFunctions(handle, send, recv, num_envs,
                        int(pool.config["batch_size"]) or num_envs,
                        pool_action_dtype(pool.spec))


def reset(pool) -> None:
    """Starts a new episode in every env (host call); the program's first
    `recv` returns the first observations."""
    pool.async_reset()


def recv_ordered(fns: XlaFunctions, handle) -> tuple[Any, XlaStep]:
    """`recv`, with every field in env-id order."""
    handle, (obs, reward, terminated, truncated, info) = fns.recv(handle)
    env_id = info["env_id"].astype(jnp.int32)

    def ordered(x):
        return jnp.zeros_like(x).at[env_id].set(x)

    obs = obs.astype(agent_obs_dtype(obs.dtype))
    step = XlaStep(ordered(obs), ordered(reward.astype(jnp.float32)),
                   ordered(terminated.astype(bool)), ordered(truncated.astype(bool)))
    return handle, step


def send_ids(fns: XlaFunctions, handle, actions: jax.Array, env_id: jax.Array):
    """`send` of `actions[i]` to env `env_id[i]`, cast to the dtype of the pool's
    action spec (int32 for discrete envs, float32 or float64 for continuous
    ones), which EnvPool checks on the first `send`."""
    if fns.action_dtype is not None:
        actions = actions.astype(fns.action_dtype)
    elif jnp.issubdtype(actions.dtype, jnp.integer):
        actions = actions.astype(jnp.int32)
    return fns.send(handle, actions, env_id.astype(jnp.int32))


def send_all(fns: XlaFunctions, handle, actions: jax.Array):
    """`send` of one action per env, in env-id order."""
    return send_ids(fns, handle, actions, jnp.arange(actions.shape[0], dtype=jnp.int32))


def run_batches(fns: XlaFunctions, handle, act, actor, key, num_batches: int):
    """Acting only, inside the caller's program: from a `reset`, `num_batches` rounds
    of `recv -> act -> send`, then the `recv`s that leave the pool idle.

    Works in EnvPool's sync mode (`batch_size == num_envs`) and async mode
    (`batch_size < num_envs`, a divisor of it): there each `recv` returns the
    first `batch_size` envs to finish, in no fixed order, and the actions go
    back to those envs (`info["env_id"]`) while the others keep stepping, so
    acting overlaps with env steps (the throughput design of EnvPool, Weng et
    al. 2022). Nothing here depends on the order, which thread timing decides.

    act(actor, obs [B, ...], env_id int32 [B], key) -> (actions [B], actor, key).
    Returns `(handle, actor, key, reward_sum [num_envs] float32, steps
    [num_envs] int32)`: per env, the rewards `recv` gave and the batches it was in.
    """
    num_envs, batch_size = fns.num_envs, fns.batch_size
    if num_envs % batch_size:
        raise ValueError(f"batch_size {batch_size} must divide num_envs {num_envs}")

    def body(_, carry):
        handle, actor, key, reward_sum, steps = carry
        handle, (obs, reward, _, _, info) = fns.recv(handle)
        env_id = info["env_id"].astype(jnp.int32)
        actions, actor, key = act(actor, obs, env_id, key)
        handle = send_ids(fns, handle, actions, env_id)
        reward_sum = reward_sum.at[env_id].add(reward.astype(jnp.float32))
        return handle, actor, key, reward_sum, steps.at[env_id].add(1)

    carry = (handle, actor, key, jnp.zeros(num_envs, jnp.float32),
             jnp.zeros(num_envs, jnp.int32))
    handle, actor, key, reward_sum, steps = jax.lax.fori_loop(0, num_batches, body, carry)
    for _ in range(num_envs // batch_size):  # every env is in flight: take them back
        handle, (_, reward, _, _, info) = fns.recv(handle)
        reward_sum = reward_sum.at[info["env_id"]].add(reward.astype(jnp.float32))
    return handle, actor, key, reward_sum, steps
