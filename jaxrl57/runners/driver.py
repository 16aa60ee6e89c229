"""Drivers: the host-side object the command line steps row by row.

A driver owns the state of a run for K members (learner states, RNG keys
and counters: what a checkpoint holds; the EnvPool drivers also the actor
states of the episodes under way, which a resumed run starts afresh) and
exposes
`run_row() -> [K row dicts]`, `get_state()` / `set_state()` (for checkpoints),
`state_template()` (the expected tree, to validate a checkpoint) and
`all_finite() -> [K] bool` (params, target params and optimizer state of each
member are finite).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl57.runners.config import RunConfig
from jaxrl57.runners.devices import member_sharding, over_members
from jaxrl57.runners.on_device import make_runner


def member_finite(tree) -> jax.Array:
    """() bool: every floating-point leaf of one member's `tree` is finite."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.bool_(True)]).all()


def learner_tree(agent_state):
    """What the finite check covers: params, target params and optimizer states.
    An optimizer moment that overflowed to inf leaves params and loss finite but
    stalls every later update, so it must stop the run as well."""
    names = ("params", "target_params", "opt_state", "actor_opt_state", "critic_opt_state")
    parts = tuple(getattr(agent_state, name) for name in names if hasattr(agent_state, name))
    # Injected hyperparameters are settings, not learned state: max_grad_norm=inf
    # (no clipping, the Nature preset) is legitimately infinite.
    injected = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    return jax.tree.map(lambda n: n.inner_state if isinstance(n, injected) else n, parts,
                        is_leaf=lambda n: isinstance(n, injected))


@jax.jit
def params_finite(params) -> jax.Array:
    """[K] bool: every parameter of member k is finite (leaves [K, ...]); one
    reduction on the device, so a row's check moves K booleans to the host."""
    return jax.vmap(member_finite)(params)


def _rows_to_dicts(rows, num_members: int) -> list[dict]:
    host = jax.device_get(rows)
    return [{k: float(np.asarray(v)[m, 0]) if np.issubdtype(np.asarray(v).dtype, np.floating)
             else int(np.asarray(v)[m, 0]) for k, v in host.items()}
            for m in range(num_members)]


class JaxDriver:
    """K members of an on-device run, vmapped into one compiled program whose
    member axis is sharded over the devices (`runners.devices`)."""

    def __init__(self, agent, env, run: RunConfig, hparams, seeds: list[int]):
        """`hparams`: the members' traced hyperparameters, stacked ([K] leaves)."""
        self.agent, self.env, self.run = agent, env, run
        init, run_rows = make_runner(agent, env, run)
        self.metric_names = tuple(n for n in agent.metric_names if n != "updated")
        self.num_members = len(seeds)
        self.sharding = member_sharding(self.num_members)
        keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])
        keys, hparams = jax.device_put((keys, hparams), self.sharding)
        # Fixed in and out shardings: letting the compiler choose the outputs'
        # would make the second call's inputs differ from the first's and
        # compile the row program again.
        shard = dict(in_shardings=self.sharding, out_shardings=self.sharding)
        # One member runs its program directly: a vmap over an axis of size 1 is
        # not free on XLA:CPU (a CartPole DQN row: 0.36 against 0.33 s).
        members = self.num_members
        # The row program also reduces the new params to one finite flag per
        # member: a separate jitted check is one more program to compile, which
        # on a short run costs more than all its rows spend in the check.
        def row(s):
            s, rows = run_rows(s, 1)
            return s, rows, member_finite(learner_tree(s.agent))

        self._row = jax.jit(over_members(row, members), donate_argnums=0, **shard)
        self.state = jax.jit(over_members(init, members), **shard)(keys, hparams)
        self._finite = None  # [K] bool of the last row; None: not known for self.state

    def run_row(self) -> list[dict]:
        self.state, rows, self._finite = self._row(self.state)
        return _rows_to_dicts(rows, self.num_members)

    def all_finite(self) -> np.ndarray:
        if self._finite is None:
            self._finite = params_finite(learner_tree(self.state.agent))
        return np.asarray(self._finite)

    def state_template(self):
        return self.state

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = jax.device_put(state, self.sharding)
        self._finite = None
