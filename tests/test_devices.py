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

from jaxrl57.runners import devices

SCRIPT = r"""
import json, sys
from jaxrl57.runners.devices import expose_host_cores
expose_host_cores(2)
import jax, numpy as np
from jaxrl57 import configs
from jaxrl57.runners.driver import JaxDriver

s = configs.resolve("dqn", "jax:Catch", {"num_rows": "2", "learning_starts": "100"},
                    steps=800)
one = JaxDriver("jax:Catch", s, [s.hparams], [0])
two = JaxDriver("jax:Catch", s, [s.hparams] * 2, [0, 1])
three = JaxDriver("jax:Catch", s, [s.hparams] * 3, [0, 1, 2])
out = {"devices": len(jax.devices()),
       "devices_used": {k: len(d.state.obs.sharding.device_set)
                        for k, d in (("1", one), ("2", two), ("3", three))},
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
