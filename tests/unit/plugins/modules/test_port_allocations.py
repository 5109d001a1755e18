# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.berth.ports.plugins.modules import port_allocate, port_allocations
from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import digest


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "state" / "ports.db")


def args(db, allocations, **extra):
    result = {"allocations": allocations, "db_path": db, "skip_listening": False}
    result.update(extra)
    return result


SERVICES = [
    {"owner": "web", "count": 4},
    {"owner": "rgw", "port": 25080},
    {"owner": "web", "proto": "udp"},
]


def test_check_mode_then_apply_then_unchanged(run_module, db):
    planned = run_module(port_allocations, args(db, SERVICES), check_mode=True)
    assert planned["changed"] is True
    assert not os.path.exists(os.path.dirname(db))
    applied = run_module(port_allocations, args(db, SERVICES))
    assert applied["changed"] is True
    assert applied["allocations"] == planned["allocations"]
    assert [(a["owner"], a["proto"], a["ranges"]) for a in applied["allocations"]] == [
        ("web", "tcp", ["25031-25034"]),
        ("rgw", "tcp", ["25080-25080"]),
        ("web", "udp", ["25031-25031"]),
    ]
    assert applied["env"] == {
        "web": {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25034", "TCP_PORTS": "25031,25032,25033,25034", "UDP_PORT": "25031"},
        "rgw": {"TCP_PORT": "25080"},
    }
    assert applied["freed"] == []
    again = run_module(port_allocations, args(db, SERVICES))
    assert again["changed"] is False
    assert again["env"] == applied["env"]


def test_suboption_defaults_and_conversion(run_module, db):
    """Ansible fills proto/count/shared and turns "2" into 2, as for port_allocate."""
    result = run_module(port_allocations, args(db, [{"owner": "web", "count": "2", "shared": "no"}]))
    assert result["allocations"][0]["ranges"] == ["25031-25032"]


def test_a_conflict_fails_naming_owner_proto_port_and_holder_and_changes_nothing(run_module, db):
    run_module(port_allocate, {"owner": "legacy", "port": 25080, "db_path": db, "skip_listening": False})
    before = digest(db)
    result = run_module(port_allocations, args(db, SERVICES))
    assert result["failed"] is True
    assert "rgw/tcp" in result["msg"] and "25080" in result["msg"] and "legacy" in result["msg"]
    assert "\n" not in result["msg"]
    assert digest(db) == before


def test_diff_lists_every_touched_owner(run_module, db):
    run_module(port_allocations, args(db, [{"owner": "old"}]))
    result = run_module(port_allocations, args(db, [{"owner": "web", "count": 2}, {"owner": "old", "count": 0}]), diff=True)
    assert result["diff"]["before"] == "old 25031-25031/tcp\n"
    # Frees come first, so web takes the port old gave back.
    assert result["diff"]["after"] == "web 25031-25032/tcp\n"
    assert result["freed"] == [{"owner": "old", "proto": "tcp", "range": "25031-25031"}]
    assert result["env"] == {"web": {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25032", "TCP_PORTS": "25031,25032"}, "old": {}}


def test_prune_spares_port_allocate(run_module, db):
    run_module(port_allocate, {"owner": "adhoc", "db_path": db, "skip_listening": False})
    run_module(port_allocations, args(db, [{"owner": "a"}, {"owner": "b"}]))
    result = run_module(port_allocations, args(db, [{"owner": "a"}], prune=True))
    assert result["changed"] is True
    assert result["freed"] == [{"owner": "b", "proto": "tcp", "range": "25033-25033"}]
    listed = run_module(port_allocations, args(db, [], prune=True))
    assert [f["owner"] for f in listed["freed"]] == ["a"]
    assert run_module(port_allocations, args(db, [], prune=True))["changed"] is False


@pytest.mark.parametrize(
    "allocations, message",
    [
        ([{"owner": "web"}, {"owner": "web"}], "declared twice"),
        ([{"owner": "web", "proto": "icmp"}], "proto"),
        ([{"count": 1}], "owner"),
        ([{"owner": "web", "port": 1}], "outside the range"),
        ([{"owner": "web", "count": 0, "port": 25080}], "count 0 frees"),
    ],
)
def test_bad_input_fails_in_one_line(run_module, db, allocations, message):
    result = run_module(port_allocations, args(db, allocations))
    assert result["failed"] is True
    assert message in result["msg"]
    assert not os.path.exists(db)
