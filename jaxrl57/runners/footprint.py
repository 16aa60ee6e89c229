"""The memory a run's state will take, measured before anything is allocated.

`state_bytes` traces the agent's `init` with `jax.eval_shape` (shapes and
dtypes only: no compilation, no allocation) and sums `size * itemsize` over
every leaf, so the figure is exact for the state itself (params, target,
optimizer, replay, counters) whatever the agent. `check_fits` compares it with
the memory JAX may use: the accelerator's `bytes_limit`, or the host's
available memory on a CPU backend. A replay too large for the machine then
fails with one sentence instead of an allocation error from inside XLA.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np


def tree_bytes(tree) -> int:
    """Bytes of every array leaf of `tree` (arrays or `jax.ShapeDtypeStruct`s)."""
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree) if hasattr(x, "shape"))


def state_bytes(settings, spec) -> tuple[int, int]:
    """(bytes of one member's agent state, bytes of its replay) for `settings`
    (`configs.Settings`) on an env of `spec`; raises what the agent's builder
    raises (ValueError) for settings the env cannot take."""
    family = settings.family
    agent = family.make(settings.agent_config, spec, settings.run_config.num_envs)
    hparams = family.hparams_cls.create(**settings.hparams)
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    shapes = jax.eval_shape(agent.init, key, hparams)
    replay = getattr(shapes, "replay", None)
    return tree_bytes(shapes), tree_bytes(replay) if replay is not None else 0


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes() -> tuple[int | None, str]:
    """(bytes one device may still allocate, where): the accelerator's
    `bytes_limit` less what is in use, or the host's available memory on a CPU
    backend (all host devices share it); None where neither is known."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return (stats["bytes_limit"] - stats.get("bytes_in_use", 0),
                    f"{device.platform.upper()} memory")
    return _host_available(), "memory"


def format_bytes(n: float) -> str:
    """`n` bytes in decimal units: 1.2 TB, 20.1 GB, 512 B."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


# A compiled training step holds its state in and out, so a run's peak memory is
# close to twice its state (docs/results.md): a state over half the free memory
# cannot run.
PEAK_FACTOR = 2


def check_fits(settings, spec, num_members: int, members_per_device: int | None = None,
               available: tuple[int | None, str] | None = None) -> int:
    """Raises ValueError with one sentence when the state of `num_members`
    members cannot fit in the memory available; returns the bytes it needs
    (`PEAK_FACTOR` times the state).

    `members_per_device`: how many members' states one device holds (the
    on-device driver spreads them over the devices, `devices.member_sharding`);
    on a CPU backend every host device shares one memory, so all members count.
    `available`: (bytes, where), default `available_bytes()`.
    """
    member, replay = state_bytes(settings, spec)
    free, where = available if available is not None else available_bytes()
    if free is None:
        return PEAK_FACTOR * member * num_members
    on_host = jax.devices()[0].platform == "cpu"
    count = num_members if on_host or members_per_device is None else members_per_device
    need = PEAK_FACTOR * member * count
    if need <= free:
        return need
    members = "1 member's" if count == 1 else f"{count} members'"
    what = "the run"
    if 2 * replay >= member:
        what = f"replay_capacity={settings.agent_config.replay_capacity}"
    raise ValueError(
        f"{what} needs {format_bytes(need)}, twice the {format_bytes(member * count)} of "
        f"{members} state (replay {format_bytes(replay * count)}) as a training step holds "
        f"it, but {format_bytes(free)} of {where} are available")
