# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet port choice (issue 9): one port per owner and proto on every host of a play.

Surveys are plain dicts shaped like berth.ports.port_info's result. With the
default range 25000-25999 the static band is 25000-25030, so a new owner's
first choice is 25031.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_hosts import read_fleet
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_ports import choose_fleet_ports, settle_fleet_ports
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, static_band_size
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings


def row(owner, first, last=None, proto="tcp", shared=False):
    return {
        "owner": owner,
        "proto": proto,
        "first": first,
        "last": first if last is None else last,
        "shared": shared,
        "kind": "dynamic",
        "created": "2026-01-15T09:30:00Z",
        "origin": "port_allocations",  # keys the choice does not know are ignored
    }


def stray(port, proto="tcp", pid=42, unit="stray.service"):
    return {"type": "unallocated", "proto": proto, "port": port, "pid": pid, "unit": unit, "owner": None}


def survey(*rows, conflicts=()):
    return {
        "changed": False,
        "allocations": list(rows),
        "free": {"tcp": 1000, "udp": 1000},
        "largest_free_run": {"tcp": "25031-25999", "udp": "25031-25999"},
        "conflicts": list(conflicts),
    }


def host(demand, *rows, conflicts=()):
    return {"demand": list(demand), "survey": survey(*rows, conflicts=conflicts)}


def web(count=1, **extra):
    return dict(owner="web", count=count, **extra)


def ports(result, owner, proto="tcp"):
    """host -> the port sent for owner/proto there."""
    found = {}
    for name, outcome in result.items():
        for entry in outcome["allocations"]:
            if entry["owner"] == owner and entry["proto"] == proto:
                found[name] = entry["port"]
    return found


# ------------------------------------------------------------ existing owners


def test_the_port_most_hosts_hold_is_kept_and_the_minority_host_moves():
    result = choose_fleet_ports(
        {
            "a": host([web()], row("web", 25100)),
            "b": host([web()], row("web", 25100)),
            "c": host([web()], row("web", 25200)),
        }
    )
    assert ports(result, "web") == {"a": 25100, "b": 25100, "c": 25100}
    assert result["c"]["allocations"] == [{"owner": "web", "proto": "tcp", "count": 1, "port": 25100, "shared": False}]
    assert all(not outcome["conflicts"] and not outcome["local"] for outcome in result.values())


def test_a_tie_goes_to_the_lowest_port():
    result = choose_fleet_ports({"a": host([web()], row("web", 25200)), "b": host([web()], row("web", 25100))})
    assert ports(result, "web") == {"a": 25100, "b": 25100}


def test_a_joining_host_gets_the_fleet_port():
    result = choose_fleet_ports(
        {
            "a": host([web(2)], row("web", 25300, 25301)),
            "b": host([web(2)], row("web", 25300, 25301)),
            "new": host([web(2)]),
        }
    )
    assert ports(result, "web") == {"a": 25300, "b": 25300, "new": 25300}
    assert result["new"]["conflicts"] == []


def test_an_owner_port_on_a_host_is_its_lowest_first_port():
    # a holds two ranges: 25100 counts, not 25400; with b that makes 25100 the majority.
    result = choose_fleet_ports(
        {
            "a": host([web()], row("web", 25400), row("web", 25100)),
            "b": host([web()], row("web", 25100)),
            "c": host([web()], row("web", 25400)),
        }
    )
    assert set(ports(result, "web").values()) == {25100}


def test_the_owners_own_rows_never_block_it():
    # Growing from 2 to 4 ports over its own second range is free.
    result = choose_fleet_ports({"a": host([web(4)], row("web", 25100, 25101), row("web", 25102, 25103))})
    assert ports(result, "web") == {"a": 25100}
    assert result["a"]["conflicts"] == []


def test_hosts_that_free_the_owner_do_not_vote():
    result = choose_fleet_ports(
        {
            "a": host([web(0)], row("web", 25100)),
            "b": host([web(0)], row("web", 25100)),
            "c": host([web()], row("web", 25200)),
        }
    )
    assert ports(result, "web") == {"a": None, "b": None, "c": 25200}
    assert result["a"]["allocations"] == [{"owner": "web", "proto": "tcp", "count": 0, "port": None, "shared": False}]


def test_held_ports_outside_the_range_make_a_new_owner():
    result = choose_fleet_ports({"a": host([web()], row("web", 26100)), "b": host([web()])})
    assert ports(result, "web") == {"a": 25031, "b": 25031}


def test_tcp_and_udp_are_separate():
    result = choose_fleet_ports(
        {
            "a": host([web(proto="udp")], row("web", 25100, proto="udp"), row("legacy", 25200)),
            "b": host([web(proto="udp")], row("web", 25200, proto="udp"), row("legacy", 25100)),
            "c": host([web(proto="udp")], row("web", 25100, proto="udp")),
        }
    )
    assert ports(result, "web", "udp") == {"a": 25100, "b": 25100, "c": 25100}
    assert all(not outcome["conflicts"] for outcome in result.values())


# ---------------------------------------------------------------- new owners


def test_a_new_owner_gets_the_lowest_run_free_on_every_host():
    hosts = {
        "a": host([{"owner": "api", "count": 2}], row("legacy", 25031, 25033)),
        "b": host([{"owner": "api", "count": 2}], row("other", 25035)),
    }
    # 25034 is free everywhere but is one port; 25036-25037 is the first pair.
    assert ports(choose_fleet_ports(hosts), "api") == {"a": 25036, "b": 25036}
    for outcome in hosts.values():
        outcome["demand"][0]["count"] = 1
    assert ports(choose_fleet_ports(hosts), "api") == {"a": 25034, "b": 25034}


def test_new_owners_do_not_share_a_run_and_go_in_sorted_order():
    hosts = {
        "a": host([{"owner": "zeta", "count": 2}, {"owner": "alpha", "count": 3}]),
        "b": host([{"owner": "alpha", "count": 1}, {"owner": "zeta"}]),
    }
    result = choose_fleet_ports(hosts)
    assert ports(result, "alpha") == {"a": 25031, "b": 25031}  # a run of 3: 25031-25033
    assert ports(result, "zeta") == {"a": 25034, "b": 25034}
    # The input order of entries is kept in the output.
    assert [e["owner"] for e in result["a"]["allocations"]] == ["zeta", "alpha"]


def test_existing_owners_are_settled_before_new_ones():
    # web holds 25031 on a only; on b it joins, so the new owner may not take 25031 there.
    result = choose_fleet_ports({"a": host([web()], row("web", 25031)), "b": host([web(), {"owner": "api"}])})
    assert ports(result, "web") == {"a": 25031, "b": 25031}
    assert ports(result, "api") == {"b": 25032}


def test_a_new_owner_avoids_listeners_and_other_owners_static_entries():
    result = choose_fleet_ports(
        {
            "a": host([{"owner": "pin", "port": 25032}, {"owner": "api"}], conflicts=[stray(25031)]),
            "b": host([{"owner": "api"}]),
        }
    )
    assert ports(result, "api") == {"a": 25033, "b": 25033}


def test_reserved_ports_are_never_chosen():
    hosts = {"a": host([{"owner": "api", "count": 2}]), "b": host([{"owner": "api", "count": 2}])}
    result = choose_fleet_ports(hosts, reserved=[25031, "25033-25040"])
    assert ports(result, "api") == {"a": 25041, "b": 25041}
    # The whole upper band reserved: the run comes from the static band.
    result = choose_fleet_ports(hosts, reserved=["25031-25999"])
    assert ports(result, "api") == {"a": 25000, "b": 25000}


def test_the_run_fits_the_largest_count_and_each_host_asks_its_own():
    hosts = {
        "a": host([{"owner": "api", "count": 1}]),
        "b": host([{"owner": "api", "count": 4}], row("legacy", 25033)),
    }
    result = choose_fleet_ports(hosts)
    assert ports(result, "api") == {"a": 25034, "b": 25034}
    assert [e["count"] for e in (result["a"]["allocations"][0], result["b"]["allocations"][0])] == [1, 4]


def test_a_custom_range_is_honoured():
    result = choose_fleet_ports({"a": host([{"owner": "api", "count": 2}])}, port_range="30000-30127")
    assert ports(result, "api") == {"a": 30016}  # static band 30000-30015


# ------------------------------------------------------ conflicts and fallback


def _stray_listener_fleet():
    return {
        "a": host([web()], row("web", 25100)),
        "b": host([web()], row("web", 25100)),
        "c": host([web()], conflicts=[stray(25100, pid=42, unit="stray.service")]),
    }


def test_a_stray_listener_on_one_host_is_a_conflict_naming_port_owner_and_holder():
    result = choose_fleet_ports(_stray_listener_fleet())
    assert result["a"]["conflicts"] == [] and result["b"]["conflicts"] == []
    (conflict,) = result["c"]["conflicts"]
    assert conflict == {
        "owner": "web",
        "proto": "tcp",
        "port": 25100,
        "ports": "25100-25100",
        "holder": "a listener (unit stray.service, pid 42)",
        "msg": conflict["msg"],
    }
    for part in ("host c", "web", "tcp", "25100-25100", "a listener (unit stray.service, pid 42)"):
        assert part in conflict["msg"]
    assert "\n" not in conflict["msg"]
    # The entry keeps the fleet port: the role fails the host before changing anything.
    assert ports(result, "web")["c"] == 25100
    assert result["c"]["local"] == []


def test_another_owners_row_is_named_as_the_holder():
    result = choose_fleet_ports(
        {
            "a": host([web(2)], row("web", 25600, 25601)),
            "b": host([web(2)], row("web", 25600, 25601)),
            "c": host([web(2)], row("legacy-app", 25601)),
        }
    )
    (conflict,) = result["c"]["conflicts"]
    assert conflict["holder"] == "owner legacy-app (25601-25601)"
    assert (conflict["port"], conflict["ports"]) == (25600, "25600-25601")
    assert "legacy-app" in conflict["msg"] and "host c" in conflict["msg"]


def test_a_count_larger_on_one_host_can_collide_there_only():
    result = choose_fleet_ports(
        {
            "a": host([web(1)], row("web", 25100), row("legacy", 25102)),
            "b": host([web(4)], row("web", 25100), row("legacy", 25102)),
        }
    )
    assert result["a"]["conflicts"] == []
    assert [(c["ports"], c["holder"]) for c in result["b"]["conflicts"]] == [("25100-25103", "owner legacy (25102-25102)")]


def test_a_run_past_the_end_of_the_range_is_a_conflict():
    result = choose_fleet_ports({"a": host([web(4)], row("web", 25998, 25999))})
    (conflict,) = result["a"]["conflicts"]
    assert conflict["ports"] == "25998-26001"
    assert "25000-25999" in conflict["holder"]


def test_fallback_local_sends_no_port_and_records_it():
    result = choose_fleet_ports(_stray_listener_fleet(), fallback="local")
    assert ports(result, "web") == {"a": 25100, "b": 25100, "c": None}
    assert result["c"]["local"] == [{"owner": "web", "proto": "tcp", "fleet_port": 25100}]
    assert result["c"]["conflicts"] == []
    assert result["c"]["allocations"] == [{"owner": "web", "proto": "tcp", "count": 1, "port": None, "shared": False}]


def test_no_run_free_on_every_host():
    hosts = {
        "a": host([{"owner": "api", "count": 2}], row("x", 100, 101)),
        "b": host([{"owner": "api", "count": 2}], row("y", 102)),
    }
    result = choose_fleet_ports(hosts, port_range="100-103")
    for name in ("a", "b"):
        (conflict,) = result[name]["conflicts"]
        assert conflict["holder"] == "no run of 2 free tcp ports on every host"
        assert conflict["port"] is None and conflict["ports"] is None
        assert "host %s" % name in conflict["msg"] and "api/tcp" in conflict["msg"]
    local = choose_fleet_ports(hosts, port_range="100-103", fallback="local")
    assert local["a"]["local"] == [{"owner": "api", "proto": "tcp", "fleet_port": None}]
    assert ports(local, "api") == {"a": None, "b": None}


def test_two_existing_owners_joining_one_host_on_overlapping_ports():
    # web keeps 25100-25101 and api keeps 25101; on c both join. api sorts first, so it
    # takes 25101 there and web, settled after it, conflicts with api's new port.
    result = choose_fleet_ports(
        {
            "a": host([web(2)], row("web", 25100, 25101)),
            "b": host([{"owner": "api"}], row("api", 25101)),
            "c": host([web(2), {"owner": "api"}]),
        }
    )
    assert ports(result, "api")["c"] == 25101
    (conflict,) = result["c"]["conflicts"]
    assert conflict["owner"] == "web"
    assert conflict["holder"] == "owner api (25101-25101, asked in this run)"


def test_other_kinds_of_survey_conflict_do_not_block():
    in_use = {"type": "in_use", "proto": "tcp", "port": 25100, "pid": 7, "unit": None, "owner": "web"}
    result = choose_fleet_ports({"a": host([web()], row("web", 25100), conflicts=[in_use])})
    assert result["a"]["conflicts"] == []


# ----------------------------------------------------------- pass-through


def test_static_and_count_zero_entries_pass_through():
    demand = [
        {"owner": "pin", "port": "25010", "count": "2"},
        {"owner": "gone", "proto": "udp", "count": 0},
        {"owner": "mesh", "port": 25020, "shared": True},
        web(),
    ]
    result = choose_fleet_ports({"a": host(demand, row("pin", 25500), row("web", 25100))})
    assert result["a"]["allocations"] == [
        {"owner": "pin", "proto": "tcp", "count": 2, "port": 25010, "shared": False},
        {"owner": "gone", "proto": "udp", "count": 0, "port": None, "shared": False},
        {"owner": "mesh", "proto": "tcp", "count": 1, "port": 25020, "shared": True},
        {"owner": "web", "proto": "tcp", "count": 1, "port": 25100, "shared": False},
    ]


def test_a_host_without_demand_still_counts_and_is_returned():
    result = choose_fleet_ports({"a": host([{"owner": "api"}]), "idle": host([], row("legacy", 25031))})
    assert result["idle"] == {"allocations": [], "conflicts": [], "local": []}
    assert ports(result, "api") == {"a": 25032}


def test_the_order_of_hosts_and_lists_does_not_matter():
    def fleet(order):
        hosts = {
            "a": host([{"owner": "zeta"}, web(2)], row("web", 25100, 25101), row("x", 25031)),
            "b": host([web(2), {"owner": "zeta"}], row("web", 25200, 25201), conflicts=[stray(25032), stray(25033)]),
            "c": host([web(2)], row("y", 25034), row("web", 25200, 25201), row("web", 25100, 25101)),
        }
        if order:
            for data in hosts.values():
                data["survey"]["allocations"].reverse()
                data["survey"]["conflicts"].reverse()
            hosts = dict(reversed(list(hosts.items())))
        return choose_fleet_ports(hosts)

    assert fleet(False) == fleet(True)
    assert ports(fleet(True), "web") == {"a": 25100, "b": 25100, "c": 25100}
    assert ports(fleet(True), "zeta") == {"a": 25035, "b": 25035}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "hosts, kwargs, words",
    [
        ({"a": host([web()])}, {"fallback": "maybe"}, ["fallback"]),
        ({"a": host([web()])}, {"port_range": "25999-25000"}, ["inverted"]),
        ({"a": host([web()])}, {"port_range": "lots"}, ["range"]),
        ({"a": host([web()])}, {"reserved": ["x"]}, ["reserved"]),
        ({"a": host([web()])}, {"reserved": {"a": 1}}, ["reserved"]),
        ([host([web()])], {}, ["hosts"]),
        ({"a": "nope"}, {}, ["host a"]),
        ({"a": {"demand": [web()]}}, {}, ["host a", "survey"]),
        ({"a": {"demand": [web()], "survey": {"failed": True, "msg": "boom"}}}, {}, ["host a", "failed", "boom"]),
        ({"a": {"demand": [web()], "survey": {"skipped": True}}}, {}, ["host a", "skipped"]),
        ({"a": {"demand": [web()], "survey": {"changed": False}}}, {}, ["host a", "allocations"]),
        ({"a": {"demand": [web()], "survey": survey({"owner": "x", "proto": "tcp", "first": "?", "last": 1})}},
         {}, ["host a", "owner x"]),
        ({"a": {"demand": web(), "survey": survey()}}, {}, ["host a", "demand", "not a list"]),
        ({"a": {"demand": "web", "survey": survey()}}, {}, ["host a", "demand", "not a list"]),
        ({"a": host(["web"])}, {}, ["host a", "not a dict"]),
        ({"a": host([{"count": 1}])}, {}, ["host a", "no owner"]),
        ({"a": host([{"owner": "-web"}])}, {}, ["host a", "owner"]),
        ({"a": host([{"owner": "web", "proto": "sctp"}])}, {}, ["host a", "web", "sctp"]),
        ({"a": host([web("3x")])}, {}, ["host a", "count", "3x"]),
        ({"a": host([web(1.0)])}, {}, ["count"]),
        ({"a": host([web(True)])}, {}, ["count"]),
        ({"a": host([web(-1)])}, {}, ["count"]),
        ({"a": host([web(1001)])}, {}, ["count", "larger than the range"]),
        ({"a": host([web(port="x")])}, {}, ["port"]),
        ({"a": host([web(port=70000)])}, {}, ["port"]),
        ({"a": host([web(shared="yes", port=25010)])}, {}, ["shared"]),
        ({"a": host([web(shared=True)])}, {}, ["shared", "needs port"]),
        ({"a": host([web(ports=2)])}, {}, ["unknown", "ports"]),
        ({"a": host([web(), web(2)])}, {}, ["host a", "web/tcp", "twice"]),
        ({1: host([web()])}, {}, ["host name"]),
    ],
)
def test_bad_input_is_one_ports_error(hosts, kwargs, words):
    with pytest.raises(PortsError) as info:
        choose_fleet_ports(hosts, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_the_same_owner_on_two_protocols_is_not_a_duplicate():
    result = choose_fleet_ports({"a": host([web(), web(proto="udp")])})
    assert ports(result, "web") == {"a": 25031} and ports(result, "web", "udp") == {"a": 25031}


# ------------------------------------------------------------- properties

LOW, HIGH = 100, 163  # 64 ports: static band 100-115, dynamic band 116-163
RANGE = "%d-%d" % (LOW, HIGH)
NEW_OWNERS = ["n0", "n1", "n2"]  # never hold anything: the choice must find them a run
OLD_OWNERS = ["e0", "e1"]  # may hold rows and be demanded
OTHERS = ["x0", "x1"]  # hold rows, never demanded


@st.composite
def host_input(draw):
    rows = []
    taken = {"tcp": set(), "udp": set()}
    for unused_try in range(draw(st.integers(0, 6))):
        owner = draw(st.sampled_from(OLD_OWNERS + OTHERS))
        proto = draw(st.sampled_from(["tcp", "udp"]))
        first = draw(st.integers(LOW - 4, HIGH))
        last = first + draw(st.integers(0, 3))
        span = set(range(first, last + 1))
        if span & taken[proto]:
            continue  # a real database never holds one port twice (no shared rows here)
        taken[proto] |= span
        rows.append(row(owner, first, last, proto))
    listeners = []
    for port in draw(st.sets(st.integers(LOW, HIGH), max_size=3)):
        proto = draw(st.sampled_from(["tcp", "udp"]))
        if port not in taken[proto]:
            listeners.append(stray(port, proto, pid=port, unit=None))
    demand = []
    for owner in draw(st.lists(st.sampled_from(NEW_OWNERS + OLD_OWNERS + OTHERS), unique=True, max_size=5)):
        proto = draw(st.sampled_from(["tcp", "udp"]))
        kind = draw(st.sampled_from(["dynamic", "dynamic", "static", "free"]))
        entry = {"owner": owner, "proto": proto, "count": draw(st.integers(1, 5))}
        if kind == "static":
            entry["port"] = draw(st.integers(LOW, HIGH - 4))
        elif kind == "free":
            entry["count"] = 0
        demand.append(entry)
    return host(demand, *rows, conflicts=listeners)


fleets = st.dictionaries(st.sampled_from(["h%d" % i for i in range(5)]), host_input(), min_size=1, max_size=5)
reserved_lists = st.lists(st.integers(LOW, HIGH), max_size=6)


def _shuffled(hosts, rnd):
    items = list(hosts.items())
    rnd.shuffle(items)
    copy = {}
    for name, data in items:
        rows = list(data["survey"]["allocations"])
        conflicts = list(data["survey"]["conflicts"])
        rnd.shuffle(rows)
        rnd.shuffle(conflicts)
        copy[name] = {"demand": list(data["demand"]), "survey": survey(*rows, conflicts=conflicts)}
    return copy


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets, reserved_lists, st.sampled_from(["fail", "local"]), st.randoms(use_true_random=False))
def test_property_same_input_same_output(hosts, reserved, fallback, rnd):
    first = choose_fleet_ports(hosts, RANGE, reserved, fallback)
    assert choose_fleet_ports(hosts, RANGE, reserved, fallback) == first
    assert choose_fleet_ports(_shuffled(hosts, rnd), RANGE, list(reversed(reserved)), fallback) == first
    assert sorted(first) == sorted(hosts)


def _max_counts(hosts):
    counts = {}
    for data in hosts.values():
        for entry in data["demand"]:
            if entry["count"] > 0 and entry.get("port") is None:
                key = (entry["owner"], entry["proto"])
                counts[key] = max(counts.get(key, 0), entry["count"])
    return counts


def _fleet_port(hosts, result, key):
    """The one port every dynamic entry of ``key`` is sent with (static entries keep their own)."""
    sent = set()
    for name, data in hosts.items():
        for asked, entry in zip(data["demand"], result[name]["allocations"]):
            if (entry["owner"], entry["proto"]) == key and asked["count"] > 0 and asked.get("port") is None:
                sent.add(entry["port"])
    assert len(sent) == 1, "one port for %s/%s on every host, got %s" % (key + (sent,))
    return sent.pop()


def _blocked_ports(hosts, key, reserved):
    """Ports a new owner may not take, as sets of single ports (an oracle independent of PortRange)."""
    owner, proto = key
    blocked = set(reserved)
    for data in hosts.values():
        for held in data["survey"]["allocations"]:
            if held["proto"] == proto and held["owner"] != owner:
                blocked.update(range(held["first"], held["last"] + 1))
        for seen in data["survey"]["conflicts"]:
            if seen["proto"] == proto:
                blocked.add(seen["port"])
        for entry in data["demand"]:
            if entry["proto"] == proto and entry["owner"] != owner and entry.get("port") is not None and entry["count"]:
                blocked.update(range(entry["port"], entry["port"] + entry["count"]))
    return blocked


def _brute_first_fit(blocked, count):
    static = static_band_size(HIGH - LOW + 1)
    for band_low, band_high in ((LOW + static, HIGH), (LOW, LOW + static - 1), (LOW, HIGH)):
        for start in range(band_low, band_high - count + 2):
            if not blocked & set(range(start, start + count)):
                return start
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets, reserved_lists)
def test_property_new_owner_runs_are_inside_free_everywhere_and_first_fit(hosts, reserved):
    result = choose_fleet_ports(hosts, RANGE, reserved, "fail")
    counts = _max_counts(hosts)
    chosen = {}  # (owner, proto) -> set of ports of its fleet run
    for key, count in counts.items():
        port = _fleet_port(hosts, result, key)
        if port is not None:
            chosen[key] = set(range(port, min(HIGH, port + count - 1) + 1))
    for key in sorted(k for k in counts if k[0] in NEW_OWNERS):
        blocked = _blocked_ports(hosts, key, reserved)
        # Runs given to the existing owners and to new owners sorted before this one.
        for other, run in chosen.items():
            if other[1] == key[1] and other != key and (other[0] not in NEW_OWNERS or other < key):
                blocked |= run
        expected = _brute_first_fit(blocked, counts[key])
        assert _fleet_port(hosts, result, key) == expected
        if expected is None:
            continue
        run = chosen[key]
        assert LOW <= min(run) and max(run) <= HIGH
        assert not run & set(reserved)
        assert not run & blocked
        for other, other_run in chosen.items():
            if other != key and other[1] == key[1]:
                assert not run & other_run, "%s and %s share ports" % (key, other)
        # Free on every host: nobody reports a conflict for a new owner.
        for outcome in result.values():
            assert not [c for c in outcome["conflicts"] if (c["owner"], c["proto"]) == key]


@st.composite
def majority_fleet(draw):
    size = draw(st.integers(1, 6))
    names = ["h%d" % i for i in range(size)]
    keeper = draw(st.integers(LOW, HIGH))
    holders = set(draw(st.permutations(names))[: size // 2 + 1])  # a strict majority
    hosts = {}
    for name in names:
        rows = []
        if name in holders:
            rows.append(row("e0", keeper, keeper + draw(st.integers(0, 2))))
        elif draw(st.booleans()):
            rows.append(row("e0", draw(st.integers(LOW, HIGH))))
        for unused_row in range(draw(st.integers(0, 2))):
            rows.append(row(draw(st.sampled_from(OTHERS)), draw(st.integers(LOW, HIGH))))
        listeners = [stray(port, pid=None) for port in draw(st.sets(st.integers(LOW, HIGH), max_size=2))]
        demand = [{"owner": "e0", "count": draw(st.integers(1, 3))}]
        if draw(st.booleans()):
            demand.insert(0, {"owner": "n0", "count": draw(st.integers(1, 3))})
        hosts[name] = host(demand, *rows, conflicts=listeners)
    return hosts, keeper


@settings(max_examples=150, deadline=None)
@given(majority_fleet(), st.sampled_from(["fail", "local"]))
def test_property_a_port_held_by_a_strict_majority_is_kept(fleet, fallback):
    hosts, keeper = fleet
    result = choose_fleet_ports(hosts, RANGE, (), fallback)
    for name, outcome in result.items():
        (entry,) = [e for e in outcome["allocations"] if e["owner"] == "e0"]
        if fallback == "fail":
            assert entry["port"] == keeper
        else:
            local = [record for record in outcome["local"] if record["owner"] == "e0"]
            assert entry["port"] == keeper or local == [{"owner": "e0", "proto": "tcp", "fleet_port": keeper}]


def test_shuffling_helper_really_shuffles():
    # Guard for the ordering property: the shuffled copy differs in order but not in content.
    hosts = {"h%d" % i: host([web()], row("web", 25100 + i), row("x", 25200 + i)) for i in range(6)}
    copy = _shuffled(hosts, random.Random(1))
    assert list(copy) != list(hosts) and sorted(copy) == sorted(hosts)


# ------------------------------------------------- what a conflict says (issue 22)
# These pin the exact texts a failing host shows, and the order holders are
# named in, which the survivors of `make mutation` showed were unguarded.


def test_holders_at_one_port_are_named_in_the_surveys_order_with_shared_marked():
    # Two shared rows cover c's fleet port 25100 (SO_REUSEPORT); both hold from 25100 on, so
    # the survey's order (by range) decides: zeta's 25099-25100 before alpha's 25100-25101.
    # Guards _holders 15/17/18/49/51/53, _read_survey 58/133, settle_fleet_ports 73, _refuse 56/59.
    result = choose_fleet_ports(
        {
            "a": host([web()], row("web", 25100)),
            "b": host([web()], row("web", 25100)),
            "c": host([web()], row("alpha", 25100, 25101, shared=True), row("zeta", 25099, 25100, shared=True)),
        }
    )
    (conflict,) = result["c"]["conflicts"]
    assert conflict["holder"] == "owner zeta (25099-25100, shared); owner alpha (25100-25101, shared)"
    assert conflict["msg"] == (
        "host c: owner web/tcp cannot take its fleet ports 25100-25100, blocked by "
        "owner zeta (25099-25100, shared); owner alpha (25100-25101, shared)"
    )
    assert result["c"]["allocations"] == [{"owner": "web", "proto": "tcp", "count": 1, "port": 25100, "shared": False}]


def test_listeners_on_one_port_are_named_unknown_pid_first_then_by_unit():
    # Three listeners on c's fleet port (IPv4/IPv6, socket activation by pid 1): the ones
    # whose process is unknown come first, each listener says what is known of it.
    # Guards _listener_text 15/18/19 and _read_survey 131/135/137/138/139/141/142/143.
    listeners = [
        stray(25100, pid=1, unit="Api.socket"),
        stray(25100, pid=None, unit="Caddy.service"),
        stray(25100, pid=None, unit=None),
    ]
    result = choose_fleet_ports(
        {
            "a": host([web()], row("web", 25100)),
            "b": host([web()], row("web", 25100)),
            "c": host([web()], conflicts=listeners),
        }
    )
    (conflict,) = result["c"]["conflicts"]
    assert conflict["holder"] == (
        "a listener (process unknown); a listener (unit Caddy.service); a listener (unit Api.socket, pid 1)"
    )


def test_a_run_past_the_end_of_the_range_names_the_range_before_later_holders():
    # Guards _holders 7 and 53 (holders lowest port first, not by their text).
    # web grows from 1 port to 4 at 25998: past the end, and legacy holds 25999.
    result = choose_fleet_ports({"a": host([web(4)], row("web", 25998), row("legacy", 25999))})
    (conflict,) = result["a"]["conflicts"]
    assert conflict["holder"] == "the end of the range 25000-25999; owner legacy (25999-25999)"


def test_no_run_free_on_every_host_names_the_largest_free_run():
    # Guards choose_fleet_ports 102/114/116/117/119/121/122 and _refuse 27.
    hosts = {
        "a": host([{"owner": "api", "count": 2}], row("x", 100, 101)),
        "b": host([{"owner": "api", "count": 2}], row("y", 102)),
    }
    (conflict,) = choose_fleet_ports(hosts, port_range="100-103")["a"]["conflicts"]
    assert conflict["msg"] == (
        "host a: owner api/tcp gets no fleet port: no run of 2 free tcp ports on every host"
        " in 100-103; the largest run free on every host is 1 ports (103-103)"
    )
    hosts["b"]["survey"]["allocations"].append(row("z", 103))
    (conflict,) = choose_fleet_ports(hosts, port_range="100-103")["b"]["conflicts"]
    assert conflict["msg"] == (
        "host b: owner api/tcp gets no fleet port: no run of 2 free tcp ports on every host"
        " in 100-103; the largest run free on every host is none"
    )


def test_an_owner_without_a_fleet_port_does_not_stop_the_next_one_on_its_host():
    # api (4 ports) finds no run in 100-103; web, settled after it, still gets 101.
    # Guards settle_fleet_ports 39.
    result = choose_fleet_ports({"a": host([{"owner": "api", "count": 4}, web()], row("x", 100))}, port_range="100-103")
    assert ports(result, "api") == {"a": None} and ports(result, "web") == {"a": 101}
    assert [c["owner"] for c in result["a"]["conflicts"]] == ["api"]


def test_a_survey_conflict_of_another_type_does_not_hide_the_listeners_after_it():
    # Guards _read_survey 93.
    in_use = {"type": "in_use", "proto": "tcp", "port": 25100, "pid": 7, "unit": None, "owner": "web"}
    result = choose_fleet_ports({"a": host([{"owner": "api"}], conflicts=[in_use, stray(25031)])})
    assert ports(result, "api") == {"a": 25032}


def test_a_host_without_demand_or_survey_conflicts_reads_as_empty():
    # Guards _read_host 29 and _read_survey 76: absent and null lists are empty.
    bare = survey()
    bare["conflicts"] = None
    result = choose_fleet_ports({"a": {"survey": bare}, "b": {"demand": [web()], "survey": {"allocations": []}}})
    assert result["a"] == {"allocations": [], "conflicts": [], "local": []}
    assert ports(result, "web") == {"b": 25031}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"demand": [], "survey": "nope"},
         "host a: survey is not the registered result of berth.ports.port_info: 'nope'"),
        ({"demand": [], "survey": {"failed": True, "msg": "boom"}}, "host a: survey failed: boom"),
        ({"demand": [], "survey": {"failed": True}}, "host a: survey failed: no message"),
        ({"demand": [], "survey": {"allocations": "x"}}, "host a: survey allocations is not a list: 'x'"),
        ({"demand": [], "survey": {"allocations": [], "conflicts": "x"}},
         "host a: survey conflicts is not a list: 'x'"),
        ({"demand": [], "survey": survey(conflicts=["x"])}, "host a: survey: conflict 'x' is not a dict"),
        ({"demand": [], "survey": survey(conflicts=[stray("x")])},
         "host a: survey: unallocated listener: port 'x' is not an integer"),
        ({"demand": "web", "survey": survey()}, "host a: demand is not a list: 'web'"),
    ],
)
def test_a_malformed_host_is_named_in_one_exact_line(data, message):
    # Guards _read_survey 3/7/9/18/20/41/47/73/80/84/86/101/107/108/110/112 and _read_host 35.
    with pytest.raises(PortsError) as info:
        choose_fleet_ports({"a": data})
    assert str(info.value) == message


# ------------------------------------------- settle_fleet_ports, as the registry calls it


def _views(hosts):
    return read_fleet(hosts, build_settings("25000-25999", ()))


def test_settling_claims_ports_in_the_order_given_and_reads_static_asks_itself():
    # zeta claims first as `order` says, so alpha meets it; without `claims` the hosts'
    # static entries are read from the views (pin's 25200 blocks web).
    # Guards settle_fleet_ports 11/13/14/22/24.
    views = _views({"a": host([{"owner": "alpha"}, {"owner": "zeta"}, {"owner": "pin", "port": 25200}, web()])})
    fleet = {("alpha", "tcp"): 25100, ("zeta", "tcp"): 25100, ("web", "tcp"): 25200}
    order = [("zeta", "tcp"), ("web", "tcp"), ("alpha", "tcp")]
    result = settle_fleet_ports(views, fleet, order, PortRange(25000, 25999), "fail")
    assert [(c["owner"], c["holder"]) for c in result["a"]["conflicts"]] == [
        ("alpha", "owner zeta (25100-25100, asked in this run)"),
        ("web", "owner pin (25200-25200, asked in this run)"),
    ]


def test_settling_refuses_an_unknown_fallback_in_one_line():
    # Guards settle_fleet_ports 3/5/6.
    with pytest.raises(PortsError) as info:
        settle_fleet_ports(
            _views({"a": host([web()])}), {("web", "tcp"): 25100}, [("web", "tcp")], PortRange(25000, 25999), "maybe"
        )
    assert str(info.value) == "fallback 'maybe' is not one of fail, local"


def test_an_unknown_fallback_names_every_choice():
    # choose_fleet_ports: `", ".join(FALLBACKS)` -> `"XX, XX".join(...)`.
    with pytest.raises(PortsError, match=r"^fallback 'retry' is not one of fail, local$"):
        choose_fleet_ports({}, fallback="retry")
