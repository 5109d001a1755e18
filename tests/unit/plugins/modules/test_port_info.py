# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.berth.ports.plugins.modules import port_allocate, port_info


@pytest.fixture
def allocated(run_module, db):
    base = {"db_path": db, "skip_listening": False}
    for extra in (
        {"owner": "web", "count": 4},
        {"owner": "dns", "proto": "udp", "port": 25005},
    ):
        result = run_module(port_allocate, dict(base, **extra))
        assert not result.get("failed")
    return db


def test_missing_database_reads_empty_and_is_not_created(run_module, tmp_path):
    db = str(tmp_path / "sub" / "ports.db")
    result = run_module(port_info, {"db_path": db})
    assert not result.get("failed")
    assert result["changed"] is False
    assert result["allocations"] == []
    assert result["free"] == {"tcp": 1000, "udp": 1000}
    assert result["largest_free_run"] == {"tcp": "25000-25999", "udp": "25000-25999"}
    assert not os.path.exists(os.path.dirname(db))


def test_report(run_module, allocated):
    before = open(allocated, "rb").read()
    result = run_module(port_info, {"db_path": allocated})
    assert not result.get("failed")
    assert result["changed"] is False
    records = [{k: v for k, v in r.items() if k != "created"} for r in result["allocations"]]
    assert records == [
        {"owner": "web", "proto": "tcp", "first": 25031, "last": 25034, "shared": False, "kind": "dynamic", "origin": "port_allocate"},
        {"owner": "dns", "proto": "udp", "first": 25005, "last": 25005, "shared": False, "kind": "static", "origin": "port_allocate"},
    ]
    assert all(r["created"].endswith("Z") for r in result["allocations"])
    assert result["free"] == {"tcp": 996, "udp": 999}
    assert result["largest_free_run"] == {"tcp": "25035-25999", "udp": "25006-25999"}
    assert isinstance(result["conflicts"], list)
    assert open(allocated, "rb").read() == before


def test_check_mode_reports_the_same(run_module, allocated):
    normal = run_module(port_info, {"db_path": allocated})
    checked = run_module(port_info, {"db_path": allocated}, check_mode=True)
    assert normal == checked


def test_owner_and_proto_filters(run_module, allocated):
    result = run_module(port_info, {"db_path": allocated, "owner": "dns"})
    assert [r["owner"] for r in result["allocations"]] == ["dns"]
    assert result["free"] == {"tcp": 996, "udp": 999}
    result = run_module(port_info, {"db_path": allocated, "proto": "tcp"})
    assert [r["proto"] for r in result["allocations"]] == ["tcp"]
    assert result["free"] == {"tcp": 996}
    assert list(result["largest_free_run"]) == ["tcp"]


def test_module_id_is_not_a_filter(run_module, allocated, monkeypatch):
    monkeypatch.setenv("MODULE_ID", "web")
    result = run_module(port_info, {"db_path": allocated})
    assert len(result["allocations"]) == 2


def test_reserved_and_range_change_the_free_count(run_module, allocated):
    result = run_module(port_info, {"db_path": allocated, "proto": "tcp", "reserved": ["25900-25999"]})
    assert result["free"] == {"tcp": 896}
    result = run_module(port_info, {"db_path": allocated, "proto": "tcp", "range": "30000-30099"})
    assert result["free"] == {"tcp": 100}


def test_full_range_has_no_largest_run(run_module, db):
    run_module(port_allocate, {"owner": "all", "db_path": db, "range": "40000-40015", "count": 16, "skip_listening": False})
    result = run_module(port_info, {"db_path": db, "proto": "tcp", "range": "40000-40015"})
    assert result["free"] == {"tcp": 0}
    assert result["largest_free_run"] == {"tcp": None}


def test_unallocated_listener_is_a_conflict(run_module, db, listener):
    listener("tcp", 25500)
    result = run_module(port_info, {"db_path": db, "proto": "tcp"})
    mine = [c for c in result["conflicts"] if c["port"] == 25500]
    assert len(mine) == 1
    assert mine[0]["type"] == "unallocated"
    assert mine[0]["owner"] is None
    assert mine[0]["proto"] == "tcp"
    assert mine[0]["pid"] == os.getpid()


def test_listener_on_an_allocated_port_is_reported_for_that_owner(run_module, allocated, listener):
    listener("tcp", 25032)
    result = run_module(port_info, {"db_path": allocated, "owner": "web"})
    mine = [c for c in result["conflicts"] if c["port"] == 25032]
    assert len(mine) == 1
    assert mine[0]["owner"] == "web"
    assert mine[0]["type"] in ("in_use", "foreign_listener")
    other = run_module(port_info, {"db_path": allocated, "owner": "dns"})
    assert other["conflicts"] == []


def test_bad_owner_fails(run_module, allocated):
    result = run_module(port_info, {"db_path": allocated, "owner": "-x"})
    assert result["failed"] is True
    assert "owner" in result["msg"]


def test_corrupt_database_fails_and_is_untouched(run_module, db):
    garbage = b"SQLite format 3\x00" + b"\xff" * 200
    with open(db, "wb") as handle:
        handle.write(garbage)
    result = run_module(port_info, {"db_path": db})
    assert result["failed"] is True
    assert db in result["msg"]
    assert "\n" not in result["msg"]
    assert open(db, "rb").read() == garbage


def test_other_applications_database_fails(run_module, db):
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    result = run_module(port_info, {"db_path": db})
    assert result["failed"] is True
    assert "another application" in result["msg"]
