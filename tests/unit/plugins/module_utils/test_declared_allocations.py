# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's allocations declared at once: one transaction, port_allocate's rules per entry, prune."""

from __future__ import annotations

import os
import sqlite3

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (
    ORIGIN_AGENT,
    ORIGIN_PORT_ALLOCATE,
    ORIGIN_PORT_ALLOCATIONS,
)
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.declared_allocations import declare
from ansible_collections.berth.ports.plugins.module_utils.declared_entries import build_declaration
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request
from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import Host, digest


def declare_on(host, entries, prune=False, check_mode=False):
    return declare(
        host.store,
        build_declaration(entries, host.settings),
        host.settings,
        prune=prune,
        check_mode=check_mode,
        probe=lambda proto: set(host.listening[proto]),
    )


def holding(host):
    """owner/proto -> ranges, with who made them."""
    return sorted((row.owner, row.proto, str(row.range), row.origin) for row in host.rows())


def test_every_entry_in_one_call_with_port_allocate_env(host):
    outcome = declare_on(
        host,
        [{"owner": "web", "count": 4}, {"owner": "rgw", "port": 25080}, {"owner": "web", "proto": "udp"}],
    )
    assert outcome.changed
    assert outcome.env == {
        "web": {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25034", "TCP_PORTS": "25031,25032,25033,25034", "UDP_PORT": "25031"},
        "rgw": {"TCP_PORT": "25080"},
    }
    assert holding(host) == [
        ("rgw", "tcp", "25080-25080", ORIGIN_PORT_ALLOCATIONS),
        ("web", "tcp", "25031-25034", ORIGIN_PORT_ALLOCATIONS),
        ("web", "udp", "25031-25031", ORIGIN_PORT_ALLOCATIONS),
    ]


def test_the_same_list_again_changes_nothing_and_takes_no_write_lock(host, monkeypatch):
    entries = [{"owner": "web", "count": 2}, {"owner": "dns", "proto": "udp", "port": 25005}]
    declare_on(host, entries)
    before = digest(host.store.path)

    def no_write():
        raise AssertionError("an unchanged declaration must not open a write transaction")

    monkeypatch.setattr(host.store, "write", no_write)
    again = declare_on(host, entries)
    assert not again.changed
    assert again.env["web"]["TCP_PORTS_RANGE"] == "25031-25032"
    assert digest(host.store.path) == before


def test_same_ports_as_port_allocate_one_by_one(make_host):
    """Dynamic entries in the order given get what port_allocate calls in that order get."""
    entries = [{"owner": "a", "count": 3}, {"owner": "b"}, {"owner": "c", "count": 2, "proto": "udp"}]
    batch, single = make_host(), make_host()
    declare_on(batch, entries)
    for entry in entries:
        single.allocate(entry["owner"], entry.get("count", 1), entry.get("proto", "tcp"))
    assert [r[:3] for r in holding(batch)] == [r[:3] for r in holding(single)]


def test_static_entries_are_placed_before_dynamic_ones(host):
    """A dynamic entry listed first must not take the port a later static entry names."""
    outcome = declare_on(host, [{"owner": "dyn"}, {"owner": "pinned", "port": 25031}])
    assert outcome.env == {"dyn": {"TCP_PORT": "25032"}, "pinned": {"TCP_PORT": "25031"}}


def test_freed_ports_serve_the_same_declaration(make_host):
    host = make_host(port_range="25000-25001")
    declare_on(host, [{"owner": "old", "count": 2}])
    outcome = declare_on(host, [{"owner": "new", "count": 2}, {"owner": "old", "count": 0}])
    assert outcome.env == {"new": {"TCP_PORT": "25000", "TCP_PORTS_RANGE": "25000-25001", "TCP_PORTS": "25000,25001"}, "old": {}}
    assert [(r.owner, str(r.range)) for r in outcome.freed] == [("old", "25000-25001")]


def test_resize_keeps_the_first_port_and_is_not_reported_as_freed(host):
    declare_on(host, [{"owner": "web", "count": 2}])
    outcome = declare_on(host, [{"owner": "web", "count": 4}])
    assert outcome.env["web"]["TCP_PORTS_RANGE"] == "25031-25034"
    assert outcome.freed == []


def test_a_conflicting_entry_leaves_the_file_byte_for_byte(host):
    allocate(host.store, build_allocation_request("legacy", port=25080, settings=host.settings), host.settings)
    declare_on(host, [{"owner": "web"}])
    before = digest(host.store.path)
    stamp = open(host.store.path + "-verified", "rb").read()
    with pytest.raises(PortsError) as refused:
        declare_on(host, [{"owner": "web", "count": 3}, {"owner": "rgw", "port": 25080}, {"owner": "api"}])
    message = str(refused.value)
    assert "rgw/tcp" in message and "25080" in message and "legacy" in message
    assert digest(host.store.path) == before
    assert open(host.store.path + "-verified", "rb").read() == stamp


def test_a_refused_first_declaration_does_not_create_the_database(host):
    host.listening["tcp"].add(25080)
    with pytest.raises(PortsError, match="listens on 25080"):
        declare_on(host, [{"owner": "web"}, {"owner": "rgw", "port": 25080}])
    assert not os.path.exists(host.store.path)


def test_check_mode_reports_the_plan_and_writes_nothing(host):
    outcome = declare_on(host, [{"owner": "web", "count": 2}], check_mode=True)
    assert outcome.changed
    assert outcome.env["web"] == {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25032", "TCP_PORTS": "25031,25032"}
    assert not os.path.exists(host.store.path)
    declare_on(host, [{"owner": "web", "count": 2}])
    before = digest(host.store.path)
    outcome = declare_on(host, [{"owner": "web", "count": 0}], check_mode=True)
    assert outcome.changed and [str(r.range) for r in outcome.freed] == ["25031-25032"]
    assert digest(host.store.path) == before


def test_prune_frees_only_what_port_allocations_made(host):
    allocate(host.store, build_allocation_request("adhoc", settings=host.settings), host.settings, origin=ORIGIN_PORT_ALLOCATE)
    allocate(host.store, build_allocation_request("svc1", settings=host.settings), host.settings, origin=ORIGIN_AGENT)
    declare_on(host, [{"owner": "web"}, {"owner": "api"}, {"owner": "api", "proto": "udp"}])
    outcome = declare_on(host, [{"owner": "web"}, {"owner": "api"}], prune=True)
    # api/udp was declared before and is not any more: the unit of a declaration is owner and proto.
    assert [(r.owner, r.proto) for r in outcome.freed] == [("api", "udp")]
    outcome = declare_on(host, [{"owner": "web"}], prune=True)
    assert [(r.owner, r.proto) for r in outcome.freed] == [("api", "tcp")]
    assert sorted(r[0] for r in holding(host)) == ["adhoc", "svc1", "web"]
    # Without prune, owners not listed stay.
    assert not declare_on(host, [], prune=False).changed


def test_prune_spares_rows_of_a_database_from_before_origins(host):
    """Rows read back as 'unknown' (schema 3 and older) are never pruned."""
    declare_on(host, [{"owner": "web"}])
    conn = sqlite3.connect(host.store.path)
    conn.execute("UPDATE allocations SET origin = 'unknown'")
    conn.commit()
    conn.close()
    assert not declare_on(host, [], prune=True).changed


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"owner": "web"}, {"owner": "web", "count": 2}], "web/tcp is declared twice"),
        ([{"owner": "web", "proto": "sctp"}], "proto 'sctp'"),
        ([{"owner": "-web"}], "owner '-web'"),
        ([{"proto": "tcp"}], r"allocations\[0\] has no owner"),
        ([{"owner": "web", "count": -1}], "must be 0 \\(free\\) or more"),
        ([{"owner": "web", "count": 0, "port": 25080}], "count 0 frees the ports"),
        ([{"owner": "web", "shared": True}], "needs port"),
        ([{"owner": "web", "port": 26000}], "outside the range"),
        ([{"owner": "web", "count": 1001}], "larger than the range"),
        ([{"owner": "web", "keep_existing": True}], "unknown key"),
        (["web"], "not a dictionary"),
        ("web", "must be a list"),
    ],
)
def test_bad_entries_are_refused_before_any_file_is_touched(host, entries, message):
    with pytest.raises(PortsError, match=message):
        build_declaration(entries, host.settings)


def test_an_empty_declaration_changes_nothing(host):
    outcome = declare_on(host, [])
    assert not outcome.changed and outcome.env == {} and not os.path.exists(host.store.path)


owners = st.sampled_from(["a", "b", "c", "d", "e"])
entry_strategy = st.fixed_dictionaries(
    {"owner": owners, "proto": st.sampled_from(["tcp", "udp"]), "count": st.integers(0, 40)},
    optional={"port": st.integers(25000, 25150)},
)


def _unique(entries):
    seen, kept = set(), []
    for entry in entries:
        key = (entry["owner"], entry["proto"])
        if key in seen:
            continue
        seen.add(key)
        if entry["count"] == 0:
            entry.pop("port", None)
        kept.append(entry)
    return kept


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.lists(entry_strategy, max_size=6).map(_unique), min_size=1, max_size=4), st.booleans())
def test_declarations_never_hand_out_a_port_twice_and_fail_atomically(tmp_path_factory, declarations, prune):
    host = Host(tmp_path_factory.mktemp("decl") / "ports.db", port_range="25000-25199")
    for entries in declarations:
        path = host.store.path
        before = digest(path) if os.path.exists(path) else None
        try:
            outcome = declare_on(host, entries, prune=prune)
        except PortsError:
            assert (digest(path) if os.path.exists(path) else None) == before
            continue
        rows = host.rows()
        for proto in ("tcp", "udp"):
            seen = set()
            for row in (r for r in rows if r.proto == proto):
                ports = set(range(row.first, row.last + 1))
                assert not ports & seen, "port handed out twice"
                assert 25000 <= row.first <= row.last <= 25199
                seen |= ports
        for entry in entries:
            held = [r for r in rows if (r.owner, r.proto) == (entry["owner"], entry["proto"])]
            assert sum(r.last - r.first + 1 for r in held) == entry["count"]
            if entry["count"] and "port" in entry:
                assert [r.first for r in held] == [entry["port"]]
        assert not declare_on(host, entries, prune=prune).changed, "a declaration met is met again"
        assert outcome.env == {
            owner: dict(kv for e in outcome.after if e.owner == owner for kv in e.env.items())
            for owner in set(e["owner"] for e in entries)
        }
