# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.berth.ports.plugins.modules import port_allocate, port_deallocate


@pytest.fixture
def allocated(run_module, db):
    """web: tcp 25031-25034 and 25035-25036 (keep_existing), udp 25031-25031; dns: tcp 25037."""
    base = {"db_path": db, "skip_listening": False}
    for extra in (
        {"owner": "web", "count": 4},
        {"owner": "web", "count": 2, "keep_existing": True},
        {"owner": "web", "proto": "udp"},
        {"owner": "dns"},
    ):
        result = run_module(port_allocate, dict(base, **extra))
        assert not result.get("failed")
    return db


def test_nothing_held_is_unchanged_and_creates_nothing(run_module, db):
    result = run_module(port_deallocate, {"owner": "web", "db_path": db})
    assert not result.get("failed")
    assert result["changed"] is False
    assert result["deallocated"] == []
    assert result["owner"] == "web"
    assert not os.path.exists(db)


def test_check_mode_reports_and_keeps_the_ports(run_module, allocated):
    before = open(allocated, "rb").read()
    result = run_module(port_deallocate, {"owner": "web", "db_path": allocated}, check_mode=True)
    assert result["changed"] is True
    assert result["deallocated"] == [
        {"proto": "tcp", "range": "25031-25034"},
        {"proto": "tcp", "range": "25035-25036"},
    ]
    assert open(allocated, "rb").read() == before


def test_frees_tcp_then_is_unchanged(run_module, allocated):
    result = run_module(port_deallocate, {"owner": "web", "db_path": allocated})
    assert result["changed"] is True
    assert [d["range"] for d in result["deallocated"]] == ["25031-25034", "25035-25036"]
    again = run_module(port_deallocate, {"owner": "web", "db_path": allocated})
    assert again["changed"] is False
    assert again["deallocated"] == []
    # UDP and the other owner are untouched: dns still holds 25037, web's UDP port remains.
    udp = run_module(port_allocate, {"owner": "web", "proto": "udp", "db_path": allocated, "skip_listening": False})
    assert udp["changed"] is False


def test_all_frees_both_protocols_with_diff(run_module, allocated):
    result = run_module(port_deallocate, {"owner": "web", "proto": "all", "db_path": allocated}, diff=True)
    assert result["deallocated"] == [
        {"proto": "tcp", "range": "25031-25034"},
        {"proto": "tcp", "range": "25035-25036"},
        {"proto": "udp", "range": "25031-25031"},
    ]
    assert result["diff"]["before"] == "25031-25034/tcp\n25035-25036/tcp\n25031-25031/udp\n"
    assert result["diff"]["after"] == ""


def test_ports_frees_only_the_ranges_that_hold_them(run_module, allocated):
    result = run_module(port_deallocate, {"owner": "web", "ports": ["25036"], "db_path": allocated}, diff=True)
    assert result["deallocated"] == [{"proto": "tcp", "range": "25035-25036"}]
    assert result["diff"]["after"] == "25031-25034/tcp\n"


def test_ports_as_range_strings_and_ints(run_module, allocated):
    result = run_module(port_deallocate, {"owner": "web", "ports": [25031, "25035-25040"], "db_path": allocated})
    assert len(result["deallocated"]) == 2


def test_empty_ports_list_frees_nothing(run_module, allocated):
    result = run_module(port_deallocate, {"owner": "web", "ports": [], "db_path": allocated})
    assert result["changed"] is False


def test_owner_from_module_id(run_module, allocated, monkeypatch):
    monkeypatch.setenv("MODULE_ID", "dns")
    result = run_module(port_deallocate, {"db_path": allocated})
    assert result["owner"] == "dns"
    assert result["deallocated"] == [{"proto": "tcp", "range": "25037-25037"}]


@pytest.mark.parametrize(
    "extra, word",
    [
        ({"owner": "no such owner"}, "owner"),
        ({"ports": ["25040-25030"]}, "inverted"),
        ({"ports": ["x"]}, "ports"),
        ({"proto": "sctp"}, "proto"),
    ],
)
def test_bad_input_fails_and_changes_nothing(run_module, allocated, extra, word):
    before = open(allocated, "rb").read()
    result = run_module(port_deallocate, dict({"owner": "web", "db_path": allocated}, **extra))
    assert result["failed"] is True
    assert word in result["msg"]
    assert open(allocated, "rb").read() == before


def test_corrupt_database_is_left_untouched(run_module, db):
    garbage = b"\x00garbage" * 64
    with open(db, "wb") as handle:
        handle.write(garbage)
    result = run_module(port_deallocate, {"owner": "web", "db_path": db})
    assert result["failed"] is True
    assert db in result["msg"]
    assert open(db, "rb").read() == garbage
