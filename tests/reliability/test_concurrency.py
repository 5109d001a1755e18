# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twenty processes released together against one database never share a port."""

from __future__ import annotations

import json
import random
import subprocess
import time

import pytest

from ansible_collections.berth.ports.plugins.module_utils import allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange

from reliability_support import integrity, invariant_violations, subprocess_env, worker_cmd

RANGE = "25000-25063"  # 64 ports: static band 25000-25015, dynamic 25016-25063
BOUNDS = {"tcp": PortRange(25000, 25063), "udp": PortRange(25000, 25063)}
WORKERS = 20
SHARED_PORT = 25004  # held shared by "pre-shared" before the race
CONTESTED_PORT = 25008  # two non-shared static requests race for it


def _prepopulate(db):
    store = AllocationStore(db)
    settings = request.build_settings(RANGE, None, False)
    for owner, proto, count, port, shared in (
        ("pre-a", "tcp", 3, None, False),
        ("pre-b", "tcp", 2, None, False),
        ("pre-c", "udp", 2, None, False),
        ("pre-shared", "tcp", 2, SHARED_PORT, True),
    ):
        req = request.build_allocation_request(owner, proto, count, port, shared, False, settings)
        allocator.allocate(store, req, settings)


def _plan(seed):
    """Per worker, a list of ops; every owner belongs to exactly one worker."""
    rng = random.Random(seed)
    plans = []
    for i in range(WORKERS):
        ops = []
        if i < 12:
            for k in range(3):
                owner = "w%d-%d" % (i, k)
                count = 12 if (k == 0 and i < 3) else rng.randint(1, 4)  # a few big ones force exhaustion
                ops.append({"op": "allocate", "owner": owner, "proto": rng.choice(["tcp", "udp"]), "count": count})
            if i % 3 == 0:  # grow or shrink an owner already held
                ops.append(dict(ops[1], count=rng.randint(1, 4)))
            if i % 4 == 1:  # a second range for the same owner
                ops.append(dict(ops[2], keep_existing=True, count=rng.randint(1, 4)))
            if i % 5 == 2:  # and give one back
                ops.append({"op": "deallocate", "owner": ops[0]["owner"], "proto": ops[0]["proto"]})
        elif i < 16:
            ops.append({"op": "allocate", "owner": "sh%d" % i, "proto": "tcp", "count": 2, "port": SHARED_PORT, "shared": True})
            ops.append({"op": "allocate", "owner": "dyn%d" % i, "proto": "udp", "count": rng.randint(1, 4)})
        elif i < 18:
            ops.append({"op": "allocate", "owner": "st%d" % i, "proto": "tcp", "count": 2, "port": CONTESTED_PORT})
        elif i == 18:
            ops.append({"op": "allocate", "owner": "intruder", "proto": "tcp", "count": 1, "port": SHARED_PORT + 1})
            ops.append({"op": "allocate", "owner": "lone-shared", "proto": "tcp", "count": 1, "port": 25012, "shared": True})
        else:
            for owner, proto in (("pre-a", "tcp"), ("pre-b", "tcp"), ("pre-c", "udp")):
                ops.append({"op": "deallocate", "owner": owner, "proto": proto})
        plans.append(ops)
    return plans


def _race(db, plans):
    env = subprocess_env()
    procs = [
        subprocess.Popen(
            worker_cmd("concurrent_worker.py", json.dumps({"db": db, "range": RANGE, "ops": ops})),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        for ops in plans
    ]
    try:
        for proc in procs:  # the barrier: everyone has imported everything
            assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
        for proc in procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        for proc in procs:
            proc.stdin.close()
            proc.stdin = None  # communicate() must not flush it again
        outputs = []
        deadline = time.monotonic() + 120
        for proc in procs:
            out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            assert proc.returncode == 0, err.decode()
            assert not err.strip(), err.decode()
            outputs.append(json.loads(out.decode()))
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_racing_processes_never_share_a_port(tmp_path, seed):
    db = str(tmp_path / "ports.db")
    _prepopulate(db)
    plans = _plan(seed)
    assert len(plans) >= 16
    outputs = _race(db, plans)

    expected = {}  # (owner, proto) -> ranges after that owner's last successful op
    errors = []
    for ops, results in zip(plans, outputs):
        assert len(results) == len(ops)
        for op, result in zip(ops, results):
            assert "crash" not in result, "%r raised something other than PortsError:\n%s" % (op, result.get("crash"))
            if "error" in result:
                msg = result["error"]
                assert "\n" not in msg and "\r" not in msg, msg
                assert op["owner"] in msg, msg
                errors.append((op, msg))
                continue
            if op["op"] == "deallocate":
                expected[(op["owner"], op["proto"])] = []
            else:
                expected[(op["owner"], op["proto"])] = [tuple(r) for r in result["ok"]["ranges"]]

    # Only two kinds of failure are legitimate here: exhaustion and a held static port.
    for op, msg in errors:
        if op.get("port") is None:
            assert msg.startswith("no run of %d free %s ports for owner %s" % (op["count"], op["proto"], op["owner"])), msg
        else:
            assert "held by" in msg, msg

    assert integrity(db) == "ok"
    rows = load_rows(AllocationStore(db))
    assert invariant_violations(rows, BOUNDS) == []

    # Every success is exactly what the database holds for that owner now.
    for (owner, proto), ranges in sorted(expected.items()):
        held = [(r.first, r.last) for r in rows if r.owner == owner and r.proto == proto]
        assert held == ranges, "%s/%s: result said %r, database holds %r" % (owner, proto, ranges, held)
    # ... and the database holds nothing nobody was told about.
    told = set(expected) | {("pre-shared", "tcp")} | {(op["owner"], op["proto"]) for op, unused in errors}
    assert {(r.owner, r.proto) for r in rows} <= told

    # Scenario-specific outcomes that do not depend on the interleaving.
    by_owner = {op["owner"]: result for ops, results in zip(plans, outputs) for op, result in zip(ops, results)}
    for i in range(12, 16):
        assert "ok" in by_owner["sh%d" % i], by_owner["sh%d" % i]
    # At most one of the two racing static requests wins (usually exactly one;
    # both lose only when a dynamic request that overflowed into the static
    # band got there first, which exhaustion makes legitimate).
    winners = [o for o in ("st16", "st17") if "ok" in by_owner[o]]
    assert len(winners) <= 1, (by_owner["st16"], by_owner["st17"])
    if winners:
        held = [(r.owner, r.first, r.last) for r in rows if r.proto == "tcp" and r.first <= CONTESTED_PORT + 1 and r.last >= CONTESTED_PORT]
        assert held == [(winners[0], CONTESTED_PORT, CONTESTED_PORT + 1)]
    assert "pre-shared" in by_owner["intruder"]["error"]
    for owner in ("pre-a", "pre-b", "pre-c"):
        assert not [r for r in rows if r.owner == owner]
