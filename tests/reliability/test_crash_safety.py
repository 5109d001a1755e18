# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL a writer anywhere: the database is as before or as after, never between."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.berth.ports.plugins.module_utils import allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (
    apply_plan,
    plan_allocation,
    plan_deallocation,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    AllocationStore,
    load_rows,
)
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, parse_port_list

from reliability_support import (
    integrity,
    invariant_violations,
    normalise,
    rows_from_json,
    subprocess_env,
    worker_cmd,
)

RANGE = "25000-25047"  # small, so exhaustion and static collisions happen too
BOUNDS = {"tcp": PortRange(25000, 25047), "udp": PortRange(25000, 25047)}
KILLS = 40


def _after(rows, op):
    """The state ``op`` leads to from ``rows`` (the policy is pure and deterministic)."""
    settings = request.build_settings(RANGE, None, False)
    try:
        if op["op"] == "deallocate":
            protos = ("tcp", "udp") if op["proto"] == "all" else (op["proto"],)
            wanted = parse_port_list(op["ports"]) if "ports" in op else None
            plan = plan_deallocation(op["owner"], protos, rows, wanted)
        else:
            req = request.build_allocation_request(
                op["owner"], op["proto"], op["count"], op.get("port"), op.get("shared", False),
                op.get("keep_existing", False), settings,
            )
            plan = plan_allocation(req, settings, rows, (), "now")
    except PortsError:
        return rows
    return apply_plan(rows, plan)


def _read_log(path):
    """(rows of the last committed op or None, the op in flight or None)."""
    committed, pending = None, None
    if not os.path.exists(path):
        return committed, pending
    with open(path) as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                break  # a line cut short by the kill: never acted upon
            if entry.get("done"):
                committed, pending = rows_from_json(entry["rows"]), None
            else:
                pending = entry["op"]
    return committed, pending


def _spawn(args):
    return subprocess.Popen(worker_cmd("crash_writer.py", *args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())


def test_sigkill_leaves_database_before_or_after(tmp_path):
    db = str(tmp_path / "state" / "ports.db")
    rng = random.Random(20260101)
    known = []  # the state verified after the previous kill
    hot_journals = 0
    interrupted_commits = 0
    for kill in range(KILLS):
        log = str(tmp_path / ("child%02d.log" % kill))
        child = _spawn(["loop", db, log, str(1000 + kill), RANGE])
        try:
            assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.06))
            assert child.poll() is None, "writer died on its own:\n%s" % child.stderr.read().decode()
            child.kill()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        err = child.stderr.read().decode()
        child.stdout.close()
        child.stderr.close()
        assert "Traceback" not in err, err
        if not os.path.exists(db):
            assert known == [], "database vanished"
            continue
        if os.path.exists(db + "-journal") and os.path.getsize(db + "-journal") > 0:
            hot_journals += 1

        committed, pending = _read_log(log)
        before = known if committed is None else committed
        candidates = [normalise(before)]
        if pending is not None:
            candidates.append(normalise(_after(before, pending)))

        rows = load_rows(AllocationStore(db))  # what the next call sees (rolls a hot journal back)
        assert integrity(db) == "ok", "kill %d" % kill
        assert invariant_violations(rows, BOUNDS) == [], "kill %d" % kill
        state = normalise(rows)
        assert state in candidates, "kill %d during %r: state is neither before nor after\nbefore=%r\nnow=%r" % (
            kill, pending, candidates[0], state)
        if pending is not None and len(candidates) == 2 and candidates[0] != candidates[1] and state == candidates[1]:
            interrupted_commits += 1  # committed, killed before it could say so
        known = list(rows)
    # The kills must have landed inside transactions some of the time, or
    # this test proved nothing about crash safety.
    assert hot_journals >= 1, "no kill interrupted a transaction (%d kills)" % KILLS
    print("kills=%d hot_journals=%d committed_but_unlogged=%d" % (KILLS, hot_journals, interrupted_commits))


def _check_fresh_database(db):
    """After a kill during creation, the next calls work and the file is a berth database."""
    rows = load_rows(AllocationStore(db))  # a read never fails on a half-made database...
    assert normalise(rows) in ([], [("first", "tcp", 25016, 25017, False, "dynamic")])
    settings = request.build_settings("25000-25099", None, False)
    req = request.build_allocation_request("next", "tcp", 1, None, False, False, settings)
    outcome = allocator.allocate(AllocationStore(db), req, settings)  # ...and the next write works
    assert outcome.changed
    rows = load_rows(AllocationStore(db))
    assert invariant_violations(rows, {"tcp": PortRange(25000, 25099)}) == []
    assert [r.owner for r in rows] in (["next"], ["first", "next"])
    assert integrity(db) == "ok"
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(db)).st_mode) == 0o700
    return [r.owner for r in rows]


@pytest.mark.parametrize("point", ["after-parent", "after-create"])
def test_kill_during_first_write_outside_sqlite(tmp_path, point):
    db = str(tmp_path / "new" / "ports.db")
    child = _spawn(["first", db, point])
    unused, err = child.communicate(timeout=60)
    assert child.returncode == -9, err.decode()
    _check_fresh_database(db)


def test_kill_during_first_write_before_every_statement(tmp_path):
    """Kill before statement 0, 1, 2, ... of the creating transaction until one run gets through."""

    def attempt(n):
        db = str(tmp_path / ("stmt%03d" % n) / "ports.db")
        child = _spawn(["first", db, "stmt:%d" % n])
        unused, err = child.communicate(timeout=60)
        return n, db, child.returncode, err.decode()

    completed = None
    killed = []
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, 200, 8):
            for n, db, returncode, err in pool.map(attempt, range(start, start + 8)):
                if returncode == 0:
                    completed = n if completed is None else min(completed, n)
                else:
                    assert returncode == -9, err
                    killed.append((n, db))
            if completed is not None:
                break
    assert completed is not None, "the first write never completed"
    assert all(n < completed for n, db in killed), "a kill point after a completed one: %r" % killed
    assert len(killed) >= 8, "the first write ran only %d statements: no migration to interrupt?" % len(killed)
    for n, db in killed:
        _check_fresh_database(db)


def test_kill_during_first_write_at_random_moments(tmp_path):
    rng = random.Random(7)
    outcomes = set()
    for attempt in range(10):
        db = str(tmp_path / ("n%d" % attempt) / "ports.db")
        child = _spawn(["first", db, "ready"])
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.02))
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
        assert "Traceback" not in child.stderr.read().decode()
        child.stderr.close()
        if os.path.exists(db):
            outcomes.add(tuple(_check_fresh_database(db)))
        else:
            outcomes.add("not created")
    print("outcomes: %r" % sorted(outcomes, key=str))
