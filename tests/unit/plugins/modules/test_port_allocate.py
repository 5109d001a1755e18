# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.berth.ports.plugins.modules import port_allocate


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "state" / "ports.db")


def args(db, **extra):
    result = {"owner": "web", "db_path": db, "skip_listening": False}
    result.update(extra)
    return result


def test_check_mode_reports_and_writes_nothing(run_module, db):
    result = run_module(port_allocate, args(db, count=4), check_mode=True)
    assert not result.get("failed")
    assert result["changed"] is True
    assert result["ranges"] == ["25031-25034"]
    assert not os.path.exists(os.path.dirname(db))


def test_apply_returns_ports_and_env(run_module, db):
    result = run_module(port_allocate, args(db, count=4))
    assert not result.get("failed")
    assert result["changed"] is True
    assert result["owner"] == "web"
    assert result["proto"] == "tcp"
    assert result["port"] == 25031
    assert result["ports"] == [25031, 25032, 25033, 25034]
    assert result["ranges"] == ["25031-25034"]
    assert result["env"] == {
        "TCP_PORT": "25031",
        "TCP_PORTS_RANGE": "25031-25034",
        "TCP_PORTS": "25031,25032,25033,25034",
    }
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(db)).st_mode) == 0o700


def test_check_mode_matches_the_real_run(run_module, db):
    planned = run_module(port_allocate, args(db, count=3), check_mode=True)
    applied = run_module(port_allocate, args(db, count=3))
    assert planned == applied


def test_second_run_is_unchanged(run_module, db):
    run_module(port_allocate, args(db, count=4))
    before = open(db, "rb").read()
    result = run_module(port_allocate, args(db, count=4))
    assert not result.get("failed")
    assert result["changed"] is False
    assert result["ranges"] == ["25031-25034"]
    assert open(db, "rb").read() == before


def test_single_port_env_has_only_port(run_module, db):
    result = run_module(port_allocate, args(db, proto="udp"))
    assert result["env"] == {"UDP_PORT": "25031"}
    assert result["ranges"] == ["25031-25031"]


def test_more_than_eight_ports_has_no_port_list(run_module, db):
    result = run_module(port_allocate, args(db, count=9))
    assert result["env"] == {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25039"}


def test_diff_shows_ranges_before_and_after(run_module, db):
    run_module(port_allocate, args(db, count=4))
    result = run_module(port_allocate, args(db, count=6), diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == "25031-25034/tcp\n"
    assert result["diff"]["after"] == "25031-25036/tcp\n"
    assert "web/tcp" in result["diff"]["before_header"]


def test_diff_in_check_mode_on_a_missing_database(run_module, db):
    result = run_module(port_allocate, args(db, count=2), check_mode=True, diff=True)
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"] == "25031-25032/tcp\n"
    assert not os.path.exists(db)


def test_keep_existing_adds_a_range(run_module, db):
    run_module(port_allocate, args(db, count=2))
    result = run_module(port_allocate, args(db, count=3, keep_existing=True))
    assert result["changed"] is True
    assert result["ranges"] == ["25031-25032", "25033-25035"]
    assert result["env"]["TCP_PORTS_RANGE"] == "25031-25032"


def test_static_shared_port_for_two_owners(run_module, db):
    first = run_module(port_allocate, args(db, owner="rgw-a", port=25010, shared=True))
    second = run_module(port_allocate, args(db, owner="rgw-b", port=25010, shared=True))
    assert first["ranges"] == second["ranges"] == ["25010-25010"]


def test_static_port_held_by_another_owner_fails_naming_it(run_module, db):
    run_module(port_allocate, args(db, owner="rgw-a", port=25010))
    before = open(db, "rb").read()
    result = run_module(port_allocate, args(db, owner="rgw-b", port=25010))
    assert result["failed"] is True
    assert result["failed"] is True
    assert "rgw-a" in result["msg"] and "rgw-b" in result["msg"]
    assert open(db, "rb").read() == before


def test_reserved_takes_ints_and_strings(run_module, db):
    result = run_module(port_allocate, args(db, count=2, reserved=[25031, "25032-25040"]))
    assert result["ranges"] == ["25041-25042"]


def test_reserved_from_a_comma_separated_string(run_module, db):
    result = run_module(port_allocate, args(db, reserved="25031,25032-25040"))
    assert result["ranges"] == ["25041-25041"]


def test_custom_range(run_module, db):
    result = run_module(port_allocate, args(db, range="40000-40015"))
    assert result["port"] == 40000


def test_listening_port_is_skipped(run_module, db, listener):
    listener("tcp", 25031)
    result = run_module(port_allocate, args(db, skip_listening=True))
    assert result["port"] == 25032


def test_owner_from_module_id(run_module, db, monkeypatch):
    monkeypatch.setenv("MODULE_ID", "traefik1")
    a = args(db, count=2)
    del a["owner"]
    result = run_module(port_allocate, a)
    assert not result.get("failed")
    assert result["owner"] == "traefik1"


def test_owner_option_wins_over_module_id(run_module, db, monkeypatch):
    monkeypatch.setenv("MODULE_ID", "traefik1")
    result = run_module(port_allocate, args(db))
    assert result["owner"] == "web"


def test_no_owner_and_no_module_id_fails(run_module, db):
    a = args(db)
    del a["owner"]
    result = run_module(port_allocate, a)
    assert result["failed"] is True
    assert "MODULE_ID" in result["msg"]
    assert not os.path.exists(db)


@pytest.mark.parametrize("owner", ["-web", "web service", "x" * 129, "wéb", ".hidden"])
def test_bad_owner_fails_without_creating_the_database(run_module, db, owner):
    result = run_module(port_allocate, args(db, owner=owner))
    assert result["failed"] is True
    assert result["failed"] is True
    assert "owner" in result["msg"]
    assert "\n" not in result["msg"]
    assert not os.path.exists(db)


def test_shared_without_port_fails(run_module, db):
    result = run_module(port_allocate, args(db, shared=True))
    assert result["failed"] is True
    assert "port" in result["msg"]
    assert not os.path.exists(db)


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"count": 0}, ["count", "web"]),
        ({"count": 1001}, ["count", "25000-25999"]),
        ({"port": 24999}, ["outside", "25000-25999"]),
        ({"range": "26000-25000"}, ["inverted"]),
        ({"range": "25000-99999"}, ["outside"]),
        ({"range": "lots"}, ["LOW-HIGH"]),
        ({"reserved": ["25010-25005"]}, ["reserved"]),
        ({"proto": "sctp"}, ["proto"]),
    ],
)
def test_bad_input_fails_cleanly(run_module, db, extra, words):
    result = run_module(port_allocate, args(db, **extra))
    assert result["failed"] is True
    for word in words:
        assert word in result["msg"]
    assert not os.path.exists(db)


def test_exhaustion_fails_and_allocates_nothing(run_module, db):
    run_module(port_allocate, args(db, owner="big", range="40000-40015", count=16))
    before = open(db, "rb").read()
    result = run_module(port_allocate, args(db, owner="late", range="40000-40015"))
    assert result["failed"] is True
    assert "late" in result["msg"]
    assert open(db, "rb").read() == before


def test_corrupt_database_is_left_untouched(run_module, db):
    os.makedirs(os.path.dirname(db))
    garbage = b"this is not a database\n" * 10
    with open(db, "wb") as handle:
        handle.write(garbage)
    result = run_module(port_allocate, args(db))
    assert result["failed"] is True
    assert db in result["msg"]
    assert open(db, "rb").read() == garbage


def test_parent_that_is_a_file_fails(run_module, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_module(port_allocate, args(str(blocker / "ports.db")))
    assert result["failed"] is True
    assert "not a directory" in result["msg"]
