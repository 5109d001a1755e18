# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port map's data shaping (issue 11): collapsing, drift, strays, doubles, colours,
and the page drawn from it."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_drift import owners_that_drift
from ansible_collections.berth.ports.plugins.plugin_utils.port_map import owner_color, port_map_summary, shape_port_map
from ansible_collections.berth.ports.plugins.plugin_utils.port_map_html import render_port_map
from ansible_collections.berth.ports.tests.unit.plugins.plugin_utils.port_map_fleet import allocation, fleet, survey

STRAY = {"type": "unallocated", "proto": "tcp", "port": 25700, "pid": 42, "unit": "stray.service", "owner": None}


def test_identical_hosts_share_a_row_whatever_their_creation_times():
    surveys = {
        "a": survey([allocation("web", 25031, 25034, created="2026-01-01T00:00:00Z")]),
        "b": survey([allocation("web", 25031, 25034, created="2026-02-01T00:00:00Z")]),
        "c": survey([allocation("web", 25031, 25034), allocation("dns", 25031, proto="udp")]),
    }
    shaped = shape_port_map(surveys)
    assert [row.hosts for row in shaped.rows] == [("a", "b"), ("c",)]
    segment = shaped.rows[0].segments[0]
    assert segment.created == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    assert (segment.since, segment.until) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    assert shaped.rows[0].free == {"tcp": 996, "udp": 1000}
    assert shaped.rows[1].used == {"tcp": 4, "udp": 1}
    assert shaped.drift == ()


def test_drift_names_each_variant_and_its_hosts():
    surveys = {
        "a": survey([allocation("web", 25031, 25034)]),
        "b": survey([allocation("web", 25031, 25034)]),
        "c": survey([allocation("web", 25100, 25103)]),
        "d": survey([allocation("other", 25031, 25034)]),  # not holding web: no drift by absence
    }
    shaped = shape_port_map(surveys)
    assert [(d.owner, d.proto, d.variants) for d in shaped.drift] == [
        ("web", "tcp", (("25031-25034", ("a", "b")), ("25100-25103", ("c",))))
    ]
    flags = {(row.hosts, s.holding.owner): s.drift for row in shaped.rows for s in row.segments}
    assert flags == {(("a", "b"), "web"): True, (("c",), "web"): True, (("d",), "other"): False}
    assert [o.name for o in shaped.owners if o.drift] == ["web"]


def test_drift_against_the_registry_flags_hosts_that_differ_from_it_even_as_a_majority():
    surveys = {
        "a": survey([allocation("api", 25031, 25033), allocation("web", 25040)]),
        "b": survey([allocation("api", 25031, 25032), allocation("web", 25041)]),
        "c": survey([allocation("api", 25031, 25032), allocation("db", 25050)]),
    }
    # Without the registry: api and web differ between hosts, the majority first.
    assert owners_that_drift(surveys) == [
        {"owner": "api", "proto": "tcp", "registry": None, "hosts": {"a": "25031-25033", "b": "25031-25032", "c": "25031-25032"}},
        {"owner": "web", "proto": "tcp", "registry": None, "hosts": {"a": "25040-25040", "b": "25041-25041"}},
    ]
    # The registry grew api to three ports: b and c have not converged yet; db agrees with it.
    expected = {("api", "tcp"): "25031-25033", ("db", "tcp"): "25050-25050"}
    drift = shape_port_map(surveys, expected=expected).drift
    assert [(d.owner, d.expected, d.variants[0]) for d in drift] == [
        ("api", "25031-25033", ("25031-25033", ("a",))),
        ("web", None, ("25040-25040", ("a",))),
    ]
    # A registry every holder agrees with flags nothing, though the registry names an owner no host holds.
    agreeing = {"a": survey([allocation("api", 25031, 25032)]), "b": survey([allocation("api", 25031, 25032)])}
    assert owners_that_drift(agreeing, {("api", "tcp"): "25031-25032", ("ghost", "tcp"): "25099-25099"}) == []
    # One host alone can drift from the registry.
    assert owners_that_drift({"a": survey([allocation("api", 25040)])}, {("api", "tcp"): "25031-25031"}) == [
        {"owner": "api", "proto": "tcp", "registry": "25031-25031", "hosts": {"a": "25040-25040"}}]
    page = render_port_map(shape_port_map(surveys, expected=expected), title="t")
    assert "the registry holds 25031-25033; 25031-25033 on 1 host (a)" in page


def test_several_ranges_of_one_owner_compare_as_a_set():
    one = [allocation("web", 25031), allocation("web", 25100)]
    shaped = shape_port_map({"a": survey(one), "b": survey(list(reversed(one)))})
    assert shaped.drift == () and len(shaped.rows) == 1


def test_strays_other_conflicts_and_listeners_split_rows():
    foreign = {"type": "foreign_listener", "proto": "tcp", "port": 25031, "pid": 7, "unit": "x.service", "owner": "web"}
    surveys = {
        "a": survey([allocation("web", 25031)]),
        "b": survey([allocation("web", 25031)], [STRAY]),
        "c": survey([allocation("web", 25031)], [dict(STRAY, pid=99)]),  # another pid: still the same row as b
        "d": survey([allocation("web", 25031)], [foreign]),
    }
    shaped = shape_port_map(surveys)
    assert sorted(row.hosts for row in shaped.rows) == [("a",), ("b", "c"), ("d",)]
    assert [(s.host, s.port, s.pid, s.unit) for s in shaped.strays] == [
        ("b", 25700, 42, "stray.service"), ("c", 25700, 99, "stray.service")]
    assert port_map_summary(shaped)["strays"] == 2


def test_ports_held_twice_and_shared_holders():
    surveys = {
        "a": survey([allocation("h1", 25443, kind="static", shared=True), allocation("h2", 25443, kind="static", shared=True),
                     allocation("web", 25031, 25034), allocation("old", 25033, 25040)]),
    }
    shaped = shape_port_map(surveys)
    doubles = [(d.proto, d.first, d.last, d.owners, d.shared) for d in shaped.doubles]
    assert doubles == [("tcp", 25033, 25034, ("old", "web"), False), ("tcp", 25443, 25443, ("h1", "h2"), True)]
    segments = {s.holding.owner: (s.double, s.held_with) for s in shaped.rows[0].segments}
    assert segments == {"h1": (False, ("h2",)), "h2": (False, ("h1",)), "web": (True, ("old",)), "old": (True, ("web",))}
    summary = port_map_summary(shaped)
    assert (summary["doubles"], summary["shared"]) == (1, 1)


def test_unread_hosts_are_listed_not_drawn():
    surveys = {
        "ok": survey([]),
        "failed": {"failed": True, "msg": "db_path /var/lib/berth/ports.db: not a berth database"},
        "down": {"unreachable": True, "msg": "ssh: timed out"},
        "skipped": {"skipped": True},
        "none": {},
    }
    shaped = shape_port_map(surveys)
    assert [row.hosts for row in shaped.rows] == [("ok",)]
    assert dict(shaped.unread) == {
        "failed": "port_info failed: db_path /var/lib/berth/ports.db: not a berth database",
        "down": "unreachable: ssh: timed out",
        "skipped": "port_info was skipped",
        "none": "no port_info survey",
    }


@pytest.mark.parametrize("surveys, message", [
    ([], "expected a dict"),
    ({"a": survey([{"owner": "web", "proto": "sctp", "first": 1, "last": 1}])}, "host a: allocation of owner web"),
    ({"a": survey([allocation("web", 25040, 25031)])}, "inverted"),
    ({"a": survey([{"proto": "tcp", "first": 1, "last": 1}])}, "has no owner"),
    ({"a": {"allocations": "nope"}}, "allocations is not a list"),
    ({"a": survey([], [{"type": "odd", "proto": "tcp", "port": 1}])}, "conflict type 'odd'"),
    ({"a": survey([allocation("web", 70000)])}, "outside 1-65535"),
])
def test_bad_input_is_one_line_error(surveys, message):
    with pytest.raises(PortsError, match=re.escape(message)):
        shape_port_map(surveys)


def test_bad_range():
    with pytest.raises(PortsError):
        shape_port_map({}, port_range="26000-25000")


def test_digit_strings_from_jinja_are_ports():
    shaped = shape_port_map({"a": survey([dict(allocation("web", 25031), first="25031", last="25032")])})
    assert shaped.rows[0].segments[0].holding.range == (25031, 25032)


def test_owner_colour_depends_on_the_name_only():
    assert owner_color("web") == owner_color("web") == "#%s" % owner_color("web")[1:]
    assert re.fullmatch(r"#[0-9a-f]{6}", owner_color("ceph-rgw"))
    colours = {owner_color("owner-%d" % i) for i in range(200)}
    assert len(colours) > 150  # spread out, not a handful of hues


def test_the_fleet_fixture():
    shaped = shape_port_map(fleet(500))
    summary = port_map_summary(shaped)
    assert summary["hosts"] == 499 and summary["unread"] == ["node499.dc1.example.org"]
    assert summary["drift"] == ["api/tcp"]
    assert summary["strays"] == 1
    assert summary["rows"] < 25  # 499 hosts, readable
    assert sum(1 for row in shaped.rows if row.count > 1) >= 4


def test_the_page_holds_every_row_title_and_finding():
    shaped = shape_port_map(fleet(60))
    page = render_port_map(shaped, title="Fleet <dc1>", generated="2026-11-01T00:00:00Z")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "Fleet &lt;dc1&gt;" in page and "Fleet <dc1>" not in page
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)  # nothing fetched
    assert page.count('class="row') == len(shaped.rows)
    assert sum(int(n) for n in re.findall(r'data-count="(\d+)"', page)) == shaped.hosts
    assert 'port 25700/tcp \u00b7 STRAY: unit stray-listener.service listens without an allocation' in page
    assert "ports 25031-25034/tcp \u00b7 web \u00b7 dynamic \u00b7 since 2026-01-" in page
    assert page.count('<li class="drift-item">') == 1
    assert 'class="stray"' in page and 'class="drift"' in page


# ------------------------------------------------------------------ properties

owners = st.sampled_from(["web", "api", "dns", "cache", "rgw", "q"])
rows = st.builds(
    lambda owner, proto, first, size, shared, kind, day: allocation(
        owner, first, min(first + size, 25999), proto=proto, shared=shared, kind=kind,
        created="2026-01-%02dT00:00:00Z" % day),
    owners, st.sampled_from(["tcp", "udp"]), st.integers(24990, 25999), st.integers(0, 5), st.booleans(),
    st.sampled_from(["dynamic", "static"]), st.integers(1, 28),
)
conflicts = st.builds(
    lambda kind, proto, port: {"type": kind, "proto": proto, "port": port, "pid": None, "unit": None,
                               "owner": None if kind == "unallocated" else "web"},
    st.sampled_from(["unallocated", "foreign_listener", "in_use"]), st.sampled_from(["tcp", "udp"]),
    st.integers(25000, 25010),
)
# Few distinct host profiles, many hosts: collapsing happens.
profiles = st.lists(st.tuples(st.lists(rows, max_size=6), st.lists(conflicts, max_size=2)), min_size=1, max_size=4)


@st.composite
def fleets(draw):
    chosen = draw(profiles)
    count = draw(st.integers(1, 30))
    out = {}
    for index in range(count):
        allocations, found = chosen[draw(st.integers(0, len(chosen) - 1))]
        day = draw(st.integers(1, 28))
        shuffled = draw(st.permutations(allocations))
        out["host%02d" % index] = survey([dict(a, created="2026-02-%02dT00:00:00Z" % day) for a in shuffled], found)
    if draw(st.booleans()):
        out["down"] = {"unreachable": True, "msg": "timed out"}
    return out


def _key(a):
    return (a["owner"], a["proto"], a["first"], a["last"], a["shared"], a["kind"], a["created"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_every_allocation_appears_exactly_once(surveys):
    shaped = shape_port_map(surveys)
    expected = Counter(
        (host, _key(a)) for host, s in surveys.items() if "allocations" in s for a in s["allocations"])
    seen = Counter()
    for row in shaped.rows:
        for segment in row.segments:
            h = segment.holding
            assert len(segment.created) == row.count
            for host, created in zip(row.hosts, segment.created):
                seen[(host, (h.owner, h.proto, h.first, h.last, h.shared, h.kind, created))] += 1
    assert seen == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_collapsing_preserves_hosts_and_counts(surveys):
    shaped = shape_port_map(surveys)
    read = sorted(h for h, s in surveys.items() if "allocations" in s)
    assert sorted(h for row in shaped.rows for h in row.hosts) == read  # each host in exactly one row
    assert shaped.hosts == len(read) == sum(row.count for row in shaped.rows)
    assert [h for h, unused in shaped.unread] == sorted(set(surveys) - set(read))
    for row in shaped.rows:  # a row's hosts are identical but for creation times
        shapes = {tuple(sorted(_key(a)[:6] for a in surveys[h]["allocations"])) for h in row.hosts}
        assert len(shapes) == 1
    signatures = [tuple(s.holding for s in row.segments) + row.marks for row in shaped.rows]
    assert len(signatures) == len(set(signatures))  # distinct rows never collapse further
    assert [row.count for row in shaped.rows] == sorted((row.count for row in shaped.rows), reverse=True)
    for owner in shaped.owners:
        holders = {h for h in read for a in surveys[h]["allocations"] if a["owner"] == owner.name}
        assert owner.hosts == len(holders)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_drift_is_exactly_the_owners_whose_ranges_differ(surveys):
    shaped = shape_port_map(surveys)
    per = {}
    for host, s in surveys.items():
        if "allocations" not in s:
            continue
        mine = {}
        for a in s["allocations"]:
            mine.setdefault((a["owner"], a["proto"]), set()).add((a["first"], a["last"]))
        for key, ranges in mine.items():
            per.setdefault(key, set()).add(frozenset(ranges))
    assert {(d.owner, d.proto) for d in shaped.drift} == {key for key, variants in per.items() if len(variants) > 1}
    for drift in shaped.drift:
        assert sum(len(hosts) for unused, hosts in drift.variants) == len(
            {h for h, s in surveys.items() if "allocations" in s
             for a in s["allocations"] if (a["owner"], a["proto"]) == (drift.owner, drift.proto)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_the_page_draws_every_row_and_allocation_in_range(surveys):
    shaped = shape_port_map(surveys)
    page = render_port_map(shaped)
    assert page.count('<div class="row') == len(shaped.rows)
    in_range = sum(1 for row in shaped.rows for s in row.segments if s.holding.range.overlaps(shaped.bounds))
    assert len(re.findall(r'<rect x="[0-9]+" y="0" width="[0-9]+" height="12" fill="#', page)) == in_range
