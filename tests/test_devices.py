"""Members of a sweep sharded over devices (`jaxrl57.runners.devices`).

The test process has one CPU device (JAX started before any flag could be
set), so the sharded runs happen in a subprocess with two host devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxrl57.runners import devices

SCRIPT = r"""
import json, sys
from jaxrl57.runners.devices import expose_host_cores
expose_host_cores(2)
import jax, numpy as np
from jaxrl57 import configs
from jaxrl57.build import make_driver

s = configs.resolve("dqn", "jax:Catch", {"num_rows": "2", "learning_starts": "100"},
                    steps=800)
one = make_driver("jax:Catch", s, [s.hparams], [0])
two = make_driver("jax:Catch", s, [s.hparams] * 2, [0, 1])
from jaxrl57.runners.devices import member_sharding
out = {"devices": len(jax.devices()),
       "devices_used": {"1": len(one.state.obs.sharding.device_set),
                        "2": len(two.state.obs.sharding.device_set),
                        "3": member_sharding(3).mesh.size},
       "one": [one.run_row() for _ in range(2)], "two": [two.run_row() for _ in range(2)]}
# A checkpoint round trip (host arrays back to the member sharding) continues exactly.
two.set_state(jax.device_get(two.get_state()))
out["two_resumed_devices"] = len(two.state.obs.sharding.device_set)
out["two_resumed"] = two.run_row()
print(json.dumps(out))
"""


def test_expose_host_cores_respects_user_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3 --foo")
    devices.expose_host_cores(8)
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=3 --foo"
    monkeypatch.setenv("XLA_FLAGS", "--foo")
    devices.expose_host_cores(4)
    assert os.environ["XLA_FLAGS"] == "--foo --xla_force_host_platform_device_count=4"


def test_member_sharding_in_this_process():
    # This process has one device, or one per core if an in-process CLI test
    # started JAX: the mesh is the largest device count dividing the members.
    n = len(jax.devices())
    for k in (1, 2, 5, 6):
        expected = max(d for d in range(1, n + 1) if k % d == 0)
        assert devices.member_sharding(k).mesh.size == expected


def test_sharded_members_match_a_single_member_run():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    # Two members split over both devices; three do not divide, so one device.
    assert out["devices_used"] == {"1": 1, "2": 2, "3": 1}
    assert out["two_resumed_devices"] == 2
    one = [rows[0] for rows in out["one"]]
    member0 = [rows[0] for rows in out["two"]]
    member1 = [rows[1] for rows in out["two"]]
    # Each device runs the one-member program: member 0 (seed 0) is the
    # single-member run (to float rounding: the partitioned program fuses
    # differently), and member 1 (seed 1) is a different run.
    for a, b in zip(member0, one, strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-4)
    assert member1 != member0
    assert out["two_resumed"][0]["env_steps"] == 3 * one[0]["env_steps"]


def _affine(params, x, scale):
    # A pytree in, a pytree out, one unbatched argument: what drivers map.
    return {"y": x @ params["w"] * scale + params["b"], "n": jax.numpy.sum(x)}


def test_over_members_matches_vmap_for_one_and_several_members():
    rng = np.random.default_rng(0)
    for k in (1, 3):
        params = {"w": rng.normal(size=(k, 4, 2)).astype(np.float32),
                  "b": rng.normal(size=(k, 2)).astype(np.float32)}
        x = rng.normal(size=(k, 5, 4)).astype(np.float32)
        mapped = jax.jit(devices.over_members(_affine, k, in_axes=(0, 0, None)))
        want = jax.vmap(_affine, in_axes=(0, 0, None))(params, x, 2.0)
        got = mapped(params, x, 2.0)
        assert jax.tree.map(np.shape, got) == jax.tree.map(np.shape, want)
        assert got["y"].shape == (k, 5, 2)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)
    # Gradients flow through the single-member path as through vmap.
    p1 = {"w": np.ones((1, 4, 2), np.float32), "b": np.zeros((1, 2), np.float32)}
    x1 = np.ones((1, 5, 4), np.float32)

    def loss(mapped):
        return lambda p: mapped(p, x1, 1.0)["y"].sum()

    g_one = jax.grad(loss(devices.over_members(_affine, 1, in_axes=(0, 0, None))))(p1)
    g_vmap = jax.grad(loss(jax.vmap(_affine, in_axes=(0, 0, None))))(p1)
    jax.tree.map(np.testing.assert_allclose, g_one, g_vmap)


def test_over_members_rejects_other_axes():
    f = devices.over_members(lambda x: x, 1, in_axes=1)
    with pytest.raises(ValueError, match="0 or None"):
        f(np.ones((2, 1)))
