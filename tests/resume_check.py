"""What `--resume` promises on a JAX env, as one check the agents' tests share."""

from __future__ import annotations

import jax
import numpy as np

from jaxrl57 import checkpoint
from jaxrl57.runners.on_device import make_runner


def assert_resume_is_exact(agent, env, run_config, hparams, key, path: str):
    """Rows 1-2, a save and a load of the whole runner state, then rows 3-4 give
    exactly the rows and the state of rows 1-4 run without the save. Row by row,
    as the command line's driver runs them (one compiled program). Returns the
    state saved after row 2 and the rows of 1-2 and of 1-4."""
    init, run_rows = make_runner(agent, env, run_config)
    one_row = jax.jit(lambda state: run_rows(state, 1))

    def run(state, num_rows):
        rows = []
        for _ in range(num_rows):
            state, row = one_row(state)
            rows.append(row)
        return state, {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}

    start = jax.jit(init)(key, hparams)
    whole, rows = run(start, 4)
    half, first = run(start, 2)
    checkpoint.save(path, half, {})
    restored, _ = checkpoint.load(path, like=half)
    rest, second = run(restored, 2)
    for name, value in rows.items():
        np.testing.assert_array_equal(np.concatenate([first[name], second[name]]), value,
                                      err_msg=name)
    jax.tree.map(np.testing.assert_array_equal, rest, whole)
    return half, first, rows
