"""Parameter initializers that avoid LAPACK.

`orthogonal` draws the same distribution as `jax.nn.initializers.orthogonal`
(Saxe et al. 2014: the Q factor of a Gaussian matrix, signs fixed so that
R has a positive diagonal, which makes Q Haar-distributed) but computes Q by
Gram-Schmidt in plain XLA ops instead of LAPACK's `geqrf`/`orgqr`.

Why: under `jax.vmap` (a sweep initialises K members in one program) the QR
becomes a batched LAPACK custom call, and jaxlib 0.10.x runs its batch with
`ParallelBatchMap` on XLA's intra-op thread pool, then blocks that pool's
thread until the batch is done. When two such calls run concurrently and
the pool has as many threads as calls (two on a 2-core machine), every
thread waits on work queued behind itself: the program hangs at 0 % CPU
(seen with `jaxrl57 train r2d2 --seeds 4` here, stack traces in
`lapack_sgeqrf_ffi -> ParallelBatchMap -> BlockingCounter::Wait`). Without
a custom call there is nothing to deadlock, and at initialisation the cost
(n column steps of O(rows * n) work) is negligible.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _gram_schmidt_q(a):
    """Q of the thin QR of `a` [m, n], m >= n, with diag(R) > 0.

    Modified Gram-Schmidt applied twice per column ("twice is enough",
    Giraud et al. 2005): orthogonal to float32 rounding for the
    well-conditioned Gaussian matrices drawn here.
    """
    m, n = a.shape

    def column(j, q):
        v = a[:, j]
        mask = (jnp.arange(n) < j).astype(a.dtype)  # only the columns already built
        for _ in range(2):
            v = v - q @ (mask * (q.T @ v))
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype=jnp.float32):
    """An initializer of (semi-)orthogonal matrices, like
    `jax.nn.initializers.orthogonal(scale, column_axis)`, without LAPACK.

    The shape is read as `[rows, columns]` with `columns` the size of
    `column_axis` and `rows` the product of the other axes; the result has
    orthonormal columns if rows >= columns, else orthonormal rows.
    """

    def init(key, shape, dtype=dtype):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initializer needs at least 2 axes, got {shape}")
        n_cols = shape[column_axis]
        n_rows = 1
        for i, s in enumerate(shape):
            if i != column_axis % len(shape):
                n_rows *= s
        big, small = max(n_rows, n_cols), min(n_rows, n_cols)
        a = jax.random.normal(key, (big, small), jnp.float32)
        q = _gram_schmidt_q(a)
        if n_rows < n_cols:
            q = q.T
        q = q.reshape(tuple(s for i, s in enumerate(shape) if i != column_axis % len(shape))
                      + (n_cols,))
        q = jnp.moveaxis(q, -1, column_axis)
        return (scale * q).astype(dtype)

    return init
