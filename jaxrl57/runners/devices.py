"""Where the members of a sweep run: one mesh axis over the available devices.

A sweep (`--seeds K`, `--sweep`) is one vmapped program whose leading axis
is the member. On an accelerator that axis is batched inside each kernel. On
a CPU, XLA runs a program on one "device" whose small per-member matmuls do
not get faster when batched (measured: eight 64x128 @ 128x128 matmuls as one
batched dot run at 61 GFLOP/s against 79 for one alone), so a sweep of K
members costs nearly K times one member. Exposing each core as a host device
(`expose_host_cores`, before JAX starts) and sharding the member axis over
them (`member_sharding`) runs the members of different cores concurrently,
with no change to the program: GSPMD partitions the vmapped axis and members
never communicate, so the results are those of the unsharded program (up to
float rounding: the partitioned program may fuse operations differently).

The same mesh spreads members over several GPUs or TPU cores.
"""

from __future__ import annotations

import os

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
MEMBER_AXIS = "member"


def expose_host_cores(count: int | None = None) -> None:
    """Asks XLA for one CPU device per core (`count`, default all cores).

    Effective only before JAX initialises its backends, so the command line
    calls it before importing anything that imports JAX; a flag the user set
    in `XLA_FLAGS` wins. On a machine with an accelerator the extra CPU
    devices are unused.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG in flags:
        return
    count = count or os.cpu_count() or 1
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={count}".strip()


def member_sharding(num_members: int):
    """Sharding of arrays whose leading axis is the member: split over the
    largest number of default-backend devices that divides `num_members`."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if num_members % d == 0)
    mesh = Mesh(devices[:n], (MEMBER_AXIS,))
    return NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))


def over_members(fn, num_members: int, in_axes=0):
    """`jax.vmap(fn, in_axes)` over the leading member axis of `num_members`.

    For one member the result applies `fn` to member 0 and adds the axis back to
    every output, rather than vmapping over an axis of size 1: that is not free
    on XLA:CPU, where the batching rule turns each convolution into a grouped
    one with its own reshapes, and a vmapped Nature-CNN DQN update is
    measurably slower than the direct call (docs/results.md). The two compute
    the same function.

    `in_axes`: 0 or None per positional argument, as for `jax.vmap` (a tuple or one
    value for all); outputs always carry the member axis first.
    """
    import jax

    if num_members != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one_member(*args):
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"in_axes {in_axes!r} does not match {len(args)} arguments")
        for ax in axes:
            if ax not in (0, None):
                raise ValueError(f"over_members takes in_axes of 0 or None, got {ax!r}")
        member = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a
                  for a, ax in zip(args, axes, strict=True)]
        return jax.tree.map(lambda x: x[None], fn(*member))

    return one_member
