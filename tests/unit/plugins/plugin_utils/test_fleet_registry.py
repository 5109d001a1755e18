# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry (issue 17): the file, its validation, the choice and the locked write.

With the default range 25000-25999 the static band is 25000-25030, so a new
owner's first choice is 25031.
"""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import random
import stat
import textwrap
import threading
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_choice import Taken, _refuse_frozen, choose_ports
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import (
    Registry,
    dump_registry,
    entry_hint,
    expected_ranges,
    load_registry,
    parse_registry_text,
)
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_update import update_registry

DEFAULT = build_settings()

HARMONY = """\
# Harmony's initial allocation table, written by hand.
fleets:
  default:
    ceph-rgw:
      tcp: "25080"
    metrics:
      tcp: "25090-25099"
    dns:
      udp: 25053      # an int is fine for one port
      tcp: 25053
  staging:
    ceph-rgw:
      tcp: "25080"    # another fleet may reuse a port
"""


def R(first, last=None):
    return PortRange(first, first if last is None else last)


def registry_of(text, source="fleet.yml"):
    return parse_registry_text(textwrap.dedent(text), source)


def entries(**owners):
    """{owner: {proto: range}} as a fleet's entries, owner names with _ for -."""
    return {(owner.replace("_", "-"), proto): ports for owner, protos in owners.items() for proto, ports in protos.items()}


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------ the file


def test_harmony_table_reads_as_written():
    registry = registry_of(HARMONY)
    assert registry.fleet("default") == {
        ("ceph-rgw", "tcp"): R(25080),
        ("metrics", "tcp"): R(25090, 25099),
        ("dns", "udp"): R(25053),
        ("dns", "tcp"): R(25053),
    }
    assert registry.fleet("staging") == {("ceph-rgw", "tcp"): R(25080)}
    assert registry.fleet("prod") == {}


def test_written_layout_is_sorted_commented_and_versioned():
    text = dump_registry(registry_of(HARMONY))
    assert text.startswith("# berth.ports fleet registry")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [
        "version: 1",
        "fleets:",
        "  default:",
        "    ceph-rgw:",
        "      tcp: '25080'",
        "    dns:",
        "      tcp: '25053'",
        "      udp: '25053'",
        "    metrics:",
        "      tcp: 25090-25099",
        "  staging:",
        "    ceph-rgw:",
        "      tcp: '25080'",
    ]


def test_the_layout_does_not_depend_on_the_order_entries_were_added():
    forward = {("a", "tcp"): R(25100), ("b", "udp"): R(25101), ("b", "tcp"): R(25102, 25103)}
    backward = dict(reversed(list(forward.items())))
    one = Registry({"x": {}, "default": forward})
    other = Registry({"default": backward, "x": {}})
    assert dump_registry(one) == dump_registry(other)


def test_a_written_registry_reads_back_and_rewrites_byte_identical():
    first = dump_registry(registry_of(HARMONY))
    again = parse_registry_text(first, "fleet.yml")
    assert again.fleets == registry_of(HARMONY).fleets
    assert dump_registry(again) == first


def _disjoint_fleet(draw, owners, bounds_first, bounds_last):
    held = {}
    for proto in ("tcp", "udp"):
        cursor = bounds_first
        for owner in draw(st.lists(st.sampled_from(owners), unique=True, max_size=len(owners))):
            cursor += draw(st.integers(0, 20))
            size = draw(st.integers(1, 6))
            if cursor + size - 1 > bounds_last:
                break
            held[(owner, proto)] = PortRange(cursor, cursor + size - 1)
            cursor += size
    return held


OWNERS = ["api", "ceph-rgw", "db", "metrics", "ns:svc", "web.1", "x@y"]


@st.composite
def registries(draw):
    names = draw(st.lists(st.sampled_from(["default", "prod", "staging", "site-2"]), unique=True, max_size=3))
    return Registry({name: _disjoint_fleet(draw, OWNERS, 1, 200) for name in names}, "fleet.yml")


@settings(max_examples=150, deadline=None)
@given(registries())
def test_any_valid_registry_round_trips_byte_identical(registry):
    text = dump_registry(registry)
    reread = parse_registry_text(text, "fleet.yml")
    assert reread.fleets == registry.fleets
    assert dump_registry(reread) == text


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "fleets:\n", "version: 1\nfleets: {}\n"])
def test_an_empty_file_is_an_empty_registry(text):
    assert parse_registry_text(text, "fleet.yml").fleets == {}


def test_a_missing_file_is_an_empty_registry_and_is_not_created(tmp_path):
    path = tmp_path / "fleet.yml"
    assert load_registry(str(path)).fleets == {}
    assert not path.exists()


# ------------------------------------------------------------ validation


BAD_FILES = [
    ("fleets: {default: {api: {tcp: 1}}\n", ["not valid YAML", "line 2"]),
    ("- api\n", ["the top level is not a mapping"]),
    ("fleet:\n  default: {}\n", ["unknown top-level key fleet"]),
    ("version: 2\nfleets: {}\n", ["version 2 is not supported"]),
    ("fleets: [default]\n", ["fleets is not a mapping"]),
    ("fleets: {default: [api]}\n", ["fleet default is not a mapping"]),
    ("fleets: {default: {api: 25080}}\n", ["owner api is not a mapping"]),
    ("fleets: {-prod: {}}\n", [": fleet name '-prod' is not"]),
    ("fleets: {default: {123: {tcp: 25080}}}\n", ["owner 123 is not a string", "quote it", "(YAML reads it as int)"]),
    ("fleets: {default: {yes: {tcp: 25080}}}\n", ["owner True is not a string", "quote it", "(YAML reads it as bool)"]),
    ("fleets: {default: {.hidden: {tcp: 25080}}}\n", ["owner", "'.hidden'"]),
    ("fleets: {default: {api: {}}}\n", ["fleet default: owner api has no ports"]),
    ("fleets: {default: {api: {sctp: 25080}}}\n", ["fleet default: owner api", "proto 'sctp'"]),
    ("fleets: {default: {api: {tcp: 0}}}\n", ["fleet default: owner api/tcp", "port 0 is outside 1-65535"]),
    ("fleets: {default: {api: {tcp: '65530-65536'}}}\n", ["owner api/tcp", "outside 1-65535"]),
    ("fleets: {default: {api: {tcp: '25099-25090'}}}\n", ["owner api/tcp", "inverted"]),
    ("fleets: {default: {api: {tcp: [25080, 25081]}}}\n", ["owner api/tcp", "LOW-HIGH"]),
    ("fleets: {default: {api: {tcp: true}}}\n", ["owner api/tcp", "LOW-HIGH"]),
    ("fleets: {default: {api: {tcp: 'port 80'}}}\n", ["owner api/tcp", "LOW-HIGH"]),
    ("fleets:\n  default:\n    api: {tcp: 25080}\n    api: {tcp: 25081}\n", ["duplicate key 'api'", "line 4", "first at line 3"]),
    # A key that cannot be hashed does not hide a duplicate after it.
    ("fleets:\n  [x]: {}\n  default: {}\n  default: {}\n", ["duplicate key 'default'"]),
    # A self-referencing alias is refused where its shape goes wrong.
    ("fleets: &f {default: *f}\n", ["fleet default: owner default: proto 'default' is not one of tcp, udp"]),
    (
        "fleets: {default: {web: {tcp: '25100-25110'}, api: {tcp: '25105'}}}\n",
        ["owners api (25105/tcp) and web (25100-25110/tcp) overlap on 25105/tcp"],
    ),
    (
        "fleets: {default: {a: {udp: '25100-25199'}, b: {udp: 25150}, c: {udp: '25120-25121'}}}\n",
        ["owners a (25100-25199/udp) and c (25120-25121/udp) overlap on 25120-25121/udp"],
    ),
]


@pytest.mark.parametrize("text,expected", BAD_FILES)
def test_a_bad_registry_is_refused_in_one_line_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "fleet.yml"
    path.write_text(text)
    with pytest.raises(PortsError) as caught:
        load_registry(str(path))
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for part in expected:
        assert part in message


def test_owners_may_share_a_port_across_protos_and_fleets():
    registry = registry_of("fleets: {a: {x: {tcp: 25080}, y: {udp: 25080}}, b: {y: {tcp: 25080}}}")
    assert registry.fleet("a") == {("x", "tcp"): R(25080), ("y", "udp"): R(25080)}


def test_an_unreadable_registry_is_refused(tmp_path):
    with pytest.raises(PortsError) as caught:
        load_registry(str(tmp_path))  # a directory
    assert str(caught.value) == "registry %s cannot be read: Is a directory" % tmp_path


def test_entries_outside_the_range_are_refused_with_settings(tmp_path):
    path = write(tmp_path / "fleet.yml", "fleets: {default: {api: {tcp: '25990-26001'}}}")
    assert load_registry(path).fleet("default")  # well-formed on its own
    with pytest.raises(PortsError) as caught:
        load_registry(path, DEFAULT)
    assert str(caught.value) == (
        "registry %s, fleet default: owner api/tcp ports 25990-26001 are outside the range 25000-25999" % path
    )


def test_entries_inside_reserved_are_refused_with_settings(tmp_path):
    path = write(tmp_path / "fleet.yml", "fleets: {default: {api: {udp: 25053}}}")
    with pytest.raises(PortsError) as caught:
        load_registry(path, build_settings(reserved=[25050, "25052-25060"]))
    assert str(caught.value) == "registry %s, fleet default: owner api/udp ports 25053 are inside reserved 25052-25060" % path


def test_only_the_named_fleet_is_held_to_this_runs_range(tmp_path):
    # site-b runs under 26000-26999: a run of site-a must not fail on it.
    path = write(tmp_path / "fleet.yml", "fleets: {site-a: {api: {tcp: 25100}}, site-b: {api: {tcp: 26100}}}")
    assert load_registry(path, DEFAULT, fleet="site-a").fleet("site-a") == {("api", "tcp"): R(25100)}
    with pytest.raises(PortsError, match="fleet site-b: owner api/tcp ports 26100 are outside"):
        load_registry(path, DEFAULT)


# ------------------------------------------------------------ the choice


def test_a_registry_owner_gets_exactly_its_ports_whatever_the_hosts_hold():
    registry = registry_of(HARMONY)
    # The surveyed batch has someone else on 25080: that is the host's conflict
    # to report (rule 4), never a reason to hand ceph-rgw another port.
    taken = {"tcp": [Taken("other", R(25080)), R(25090)]}
    after, chosen = choose_ports(registry, "default", {("ceph-rgw", "tcp"): 1, ("metrics", "tcp"): 10}, taken, DEFAULT)
    assert chosen == {("ceph-rgw", "tcp"): R(25080), ("metrics", "tcp"): R(25090, 25099)}
    assert after == registry


def test_every_batch_of_a_rolling_update_gets_the_registry_port():
    registry = Registry({}, "fleet.yml")
    demand = {("api", "tcp"): 1}
    # Batch 1: nothing in the way, api gets the first port of the upper band.
    registry, first = choose_ports(registry, "default", demand, {"tcp": []}, DEFAULT)
    # Batch 2 already holds 25031 for another owner: api still gets 25031.
    registry, second = choose_ports(registry, "default", demand, {"tcp": [Taken("other", R(25031))]}, DEFAULT)
    assert first == second == {("api", "tcp"): R(25031)}


def test_a_new_owner_avoids_every_owner_of_the_fleet_even_where_not_surveyed():
    registry = registry_of("fleets: {default: {db: {tcp: '25031-25032'}}, staging: {web: {tcp: 25033}}}")
    after, chosen = choose_ports(registry, "default", {("api", "tcp"): 2}, {"tcp": [R(25035)]}, DEFAULT)
    # 25031-25032: db in the registry; 25035 on a host; 25033 is staging's, free here.
    assert chosen == {("api", "tcp"): R(25033, 25034)}
    assert after.fleet("default") == {("db", "tcp"): R(25031, 25032), ("api", "tcp"): R(25033, 25034)}
    assert after.fleet("staging") == registry.fleet("staging")


def test_a_new_owner_skips_reserved_and_what_any_surveyed_host_holds():
    taken = {"tcp": [Taken("a", R(25031)), Taken("b", R(25033)), R(25034)]}
    settings_ = build_settings(reserved=["25035-25040"])
    chosen = choose_ports(Registry({}), "default", {("api", "tcp"): 1, ("web", "tcp"): 3}, taken, settings_)[1]
    assert chosen == {("api", "tcp"): R(25032), ("web", "tcp"): R(25041, 25043)}


def test_an_owners_own_allocations_on_the_hosts_do_not_block_it():
    # api already holds 25031 on the surveyed hosts (from before the registry).
    chosen = choose_ports(Registry({}), "default", {("api", "tcp"): 1}, {"tcp": [Taken("api", R(25031))]}, DEFAULT)[1]
    assert chosen == {("api", "tcp"): R(25031)}


def test_a_new_owner_falls_back_to_the_static_band_when_the_upper_band_is_full():
    small = build_settings("25000-25099")  # static band 25000-25015
    taken = {"tcp": [R(25016, 25099)]}
    chosen = choose_ports(Registry({}), "default", {("api", "tcp"): 2}, taken, small)[1]
    assert chosen == {("api", "tcp"): R(25000, 25001)}


def test_protos_are_separate_name_spaces():
    registry = registry_of("fleets: {default: {dns: {udp: 25031}}}")
    chosen = choose_ports(registry, "default", {("api", "tcp"): 1}, {"udp": [R(25032)]}, DEFAULT)[1]
    assert chosen == {("api", "tcp"): R(25031)}


def test_a_shrunk_demand_keeps_its_first_port_and_frees_the_rest():
    registry = registry_of("fleets: {default: {metrics: {tcp: '25090-25099'}}}")
    tight = build_settings("25090-25105")  # 16 ports: no static band, first fit from 25090
    chosen = choose_ports(registry, "default", {("metrics", "tcp"): 3, ("api", "tcp"): 7}, {}, tight)[1]
    assert chosen[("metrics", "tcp")] == R(25090, 25092)
    assert chosen[("api", "tcp")] == R(25093, 25099)  # the ports metrics gave back are free again


def test_a_grown_demand_keeps_its_first_port_when_the_larger_range_is_free():
    registry = registry_of("fleets: {default: {metrics: {tcp: '25090-25091'}}}")
    taken = {"tcp": [Taken("metrics", R(25090, 25091)), R(25094)]}
    after, chosen = choose_ports(registry, "default", {("metrics", "tcp"): 4}, taken, DEFAULT)
    assert chosen == {("metrics", "tcp"): R(25090, 25093)}
    assert after.fleet("default") == {("metrics", "tcp"): R(25090, 25093)}


@pytest.mark.parametrize(
    "registry_text,taken",
    [
        ("fleets: {default: {metrics: {tcp: '25090-25091'}}}", {"tcp": [R(25093)]}),
        ("fleets: {default: {metrics: {tcp: '25090-25091'}, db: {tcp: 25092}}}", {}),
        ("fleets: {default: {metrics: {tcp: '25997-25998'}}}", {}),  # would leave the range
    ],
    ids=["held-on-a-host", "held-in-the-registry", "end-of-range"],
)
def test_a_grown_demand_that_cannot_grow_in_place_is_chosen_anew(registry_text, taken):
    registry = registry_of(registry_text)
    after, chosen = choose_ports(registry, "default", {("metrics", "tcp"): 4}, taken, DEFAULT)
    assert chosen == {("metrics", "tcp"): R(25031, 25034)}
    assert after.fleet("default")[("metrics", "tcp")] == R(25031, 25034)


def test_a_grown_demand_may_move_over_its_own_old_ports():
    # Only 25031-25034 is free in a 4-port-wide gap that includes its old port.
    registry = registry_of("fleets: {default: {metrics: {tcp: 25032}, db: {tcp: 25036}}}")
    small = build_settings("25031-25040")  # 10 ports: no static band
    taken = {"tcp": [R(25035), R(25037, 25040)]}
    chosen = choose_ports(registry, "default", {("metrics", "tcp"): 4}, taken, small)[1]
    assert chosen == {("metrics", "tcp"): R(25031, 25034)}


def test_owners_not_in_this_run_are_kept_untouched():
    registry = registry_of(HARMONY)
    after, chosen = choose_ports(registry, "default", {("api", "tcp"): 1}, {}, DEFAULT)
    assert set(chosen) == {("api", "tcp")}
    for key, ports in registry.fleet("default").items():
        assert after.fleet("default")[key] == ports
    assert after.fleet("staging") == registry.fleet("staging")


def test_a_zero_demand_chooses_nothing_and_keeps_the_entry():
    registry = registry_of(HARMONY)
    after, chosen = choose_ports(registry, "default", {("metrics", "tcp"): 0, ("gone", "tcp"): 0}, {}, DEFAULT)
    assert chosen == {}
    assert after == registry


def test_exhaustion_names_the_owner_and_the_largest_free_run():
    small = build_settings("25000-25009")
    registry = registry_of("fleets: {default: {db: {tcp: '25000-25004'}}}")
    with pytest.raises(PortsError) as caught:
        choose_ports(registry, "default", {("api", "tcp"): 4}, {"tcp": [R(25007)]}, small)
    assert str(caught.value) == (
        "registry fleet.yml, fleet default: no run of 4 free tcp ports for owner api in 25000-25009, free on every "
        "surveyed host and held by no other owner of the fleet; the largest such run is 2 ports (25005-25006)"
    )


def test_a_registry_that_breaks_the_runs_range_is_refused_before_choosing():
    registry = registry_of("fleets: {default: {db: {tcp: 26000}}}")
    with pytest.raises(PortsError, match="owner db/tcp ports 26000 are outside the range 25000-25999"):
        choose_ports(registry, "default", {("api", "tcp"): 1}, {}, DEFAULT)


@pytest.mark.parametrize(
    "demands,message",
    [
        ({("-x", "tcp"): 1}, "owner '-x'"),
        ({("api", "sctp"): 1}, "proto 'sctp'"),
        ({("api", "tcp"): -1}, "must not be negative"),
        ({("api", "tcp"): "2"}, "is not an integer"),
        ({("api", "tcp"): 1001}, "larger than the range"),
        ({"api": 1}, "not an (owner, proto) pair"),
        ({("api", "tcp", "x"): 1}, "not an (owner, proto) pair"),
    ],
)
def test_bad_demands_are_refused(demands, message):
    with pytest.raises(PortsError) as caught:
        choose_ports(Registry({}), "default", demands, {}, DEFAULT)
    assert message in str(caught.value)


# ------------------------------------------------------------ frozen


def test_frozen_keeps_registry_owners():
    registry = registry_of(HARMONY)
    after, chosen = choose_ports(registry, "default", {("ceph-rgw", "tcp"): 1}, {}, DEFAULT, frozen=True)
    assert chosen == {("ceph-rgw", "tcp"): R(25080)}
    assert after == registry


def test_frozen_refuses_a_new_owner_naming_it_the_file_and_the_entry_to_add():
    registry = registry_of(HARMONY, source="/srv/inventory/fleet.yml")
    with pytest.raises(PortsError) as caught:
        choose_ports(registry, "default", {("api", "tcp"): 2}, {}, DEFAULT, frozen=True)
    message = str(caught.value)
    assert message.startswith("registry /srv/inventory/fleet.yml, fleet default: owner api/tcp is not in the registry")
    assert "frozen" in message
    # The suggested entry is YAML that, merged into the file, gives api its ports.
    hint = yaml.safe_load(message.split("e.g. ", 1)[1])
    assert hint == {"fleets": {"default": {"api": {"tcp": "25031-25032"}}}}


def test_the_frozen_hint_once_added_to_the_file_lets_the_run_through(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)
    demand = {("ns:svc", "udp"): 1}
    with pytest.raises(PortsError) as caught:
        choose_ports(load_registry(path), "default", demand, {}, DEFAULT, frozen=True)
    hint = yaml.safe_load(str(caught.value).split("e.g. ", 1)[1])
    data = yaml.safe_load(HARMONY)
    data["fleets"]["default"].update(hint["fleets"]["default"])
    write(tmp_path / "fleet.yml", yaml.safe_dump(data))
    chosen = choose_ports(load_registry(path), "default", demand, {}, DEFAULT, frozen=True)[1]
    assert chosen == {("ns:svc", "udp"): R(25031)}


@pytest.mark.parametrize("count,spec", [(12, "25090-25101"), (3, "25090-25092")], ids=["grown", "shrunk"])
def test_frozen_refuses_a_changed_count(count, spec):
    registry = registry_of(HARMONY)
    with pytest.raises(PortsError) as caught:
        choose_ports(registry, "default", {("metrics", "tcp"): count}, {}, DEFAULT, frozen=True)
    message = str(caught.value)
    assert "owner metrics/tcp asks for %d ports but the registry holds 25090-25099" % count in message
    assert message.startswith("registry fleet.yml, fleet default: owner metrics/tcp asks for")
    assert yaml.safe_load(message.split("e.g. ", 1)[1]) == {"fleets": {"default": {"metrics": {"tcp": spec}}}}


# ------------------------------------------------------------ properties of the choice

SMALL = build_settings("25000-25099", [25050, "25060-25062"])  # static band 25000-25015
FLEET_OWNERS = ["api", "db", "metrics", "web", "x"]


@st.composite
def scenarios(draw):
    held = {
        key: ports
        for key, ports in _disjoint_fleet(draw, FLEET_OWNERS, 25000, 25099).items()
        if not any(ports.overlaps(reserved) for reserved in SMALL.reserved)
    }
    other_fleet = _disjoint_fleet(draw, FLEET_OWNERS, 25000, 25099)
    registry = Registry({"default": held, "other": other_fleet}, "fleet.yml")
    demands = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(FLEET_OWNERS + ["new1", "new2"]), st.sampled_from(["tcp", "udp"])),
            st.integers(0, 8),
            max_size=6,
        )
    )
    survey_item = st.one_of(
        st.builds(lambda owner, first, size: Taken(owner, R(first, first + size - 1)),
                  st.sampled_from(FLEET_OWNERS + ["new1", "stranger"]), st.integers(24990, 25105), st.integers(1, 4)),
        st.builds(lambda first, size: R(first, first + size - 1), st.integers(24990, 25105), st.integers(1, 3)),
    )
    taken = draw(st.fixed_dictionaries({}, optional={"tcp": st.lists(survey_item, max_size=12), "udp": st.lists(survey_item, max_size=12)}))
    return registry, demands, taken


def _blocks_for(taken, owner, proto):
    for item in taken.get(proto, []):
        if isinstance(item, Taken):
            if item.owner != owner:
                yield item.range
        else:
            yield item


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False))
def test_choice_properties(scenario, rnd):
    registry, demands, taken = scenario
    try:
        after, chosen = choose_ports(registry, "default", demands, taken, SMALL)
    except PortsError as exc:
        assert "no run of" in str(exc)
        return
    before = registry.fleet("default")
    fleet = after.fleet("default")
    wanted = {key: count for key, count in demands.items() if count}
    assert set(chosen) == set(wanted)
    for key, count in wanted.items():
        owner, proto = key
        ports = chosen[key]
        assert ports.size == count
        assert fleet[key] == ports
        assert SMALL.bounds.covers(ports)
        assert not any(ports.overlaps(reserved) for reserved in SMALL.reserved)
        old = before.get(key)
        if old is not None and count == old.size:
            assert ports == old  # the registry is honoured
        elif old is not None and count < old.size:
            assert ports.first == old.first  # a shrink keeps its first port
        else:  # new or grown: free on every surveyed host
            assert not any(ports.overlaps(busy) for busy in _blocks_for(taken, owner, proto))
    # One port, one owner, in the fleet, whoever runs where.
    items = sorted(fleet.items())
    for index, ((owner_a, proto_a), ports_a) in enumerate(items):
        for (owner_b, proto_b), ports_b in items[index + 1:]:
            assert proto_a != proto_b or not ports_a.overlaps(ports_b), (owner_a, owner_b)
    # Owners not demanded, and other fleets, are left alone.
    for key, ports in before.items():
        if key not in wanted:
            assert fleet[key] == ports
    assert after.fleet("other") == registry.fleet("other")
    # The result is a valid registry and survives a write.
    assert parse_registry_text(dump_registry(after), "fleet.yml").fleets == after.fleets
    # The order of the demands and of the surveys does not matter.
    shuffled_demands = list(demands.items())
    rnd.shuffle(shuffled_demands)
    shuffled_taken = {proto: rnd.sample(items_, len(items_)) for proto, items_ in reversed(list(taken.items()))}
    again = choose_ports(registry, "default", dict(shuffled_demands), shuffled_taken, SMALL)
    assert again[1] == chosen
    assert dump_registry(again[0]) == dump_registry(after)
    # Frozen gives the same answer when nothing would change, and refuses otherwise.
    if fleet == before:
        assert choose_ports(registry, "default", demands, taken, SMALL, frozen=True)[1] == chosen
    else:
        with pytest.raises(PortsError, match="frozen"):
            choose_ports(registry, "default", demands, taken, SMALL, frozen=True)
    # A second run over any other batch of hosts gives every owner the same ports.
    other_batch = {"tcp": [R(25000, 25099)], "udp": [Taken("stranger", R(25000, 25099))]}
    final, rerun = choose_ports(after, "default", demands, other_batch, SMALL)
    assert rerun == chosen
    assert final == after


# ------------------------------------------------------------ the write


def add_owner(owner, count=1, proto="tcp", taken=None, settings_=DEFAULT, fleet="default"):
    """A change_fn that adds ``owner`` with the choice, recording what it chose."""
    seen = {}

    def change(registry):
        after, chosen = choose_ports(registry, fleet, {(owner, proto): count}, taken or {}, settings_)
        seen.update(chosen)
        return after

    change.chosen = seen
    return change


def leftovers(directory):
    return sorted(name for name in os.listdir(str(directory)) if name.endswith(".tmp"))


def test_a_new_owner_is_written_and_reads_back(tmp_path):
    path = str(tmp_path / "fleet.yml")
    change = add_owner("api", 2)
    before, after, changed = update_registry(path, "default", change)
    assert (before, changed) == ("", True)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == after
    assert load_registry(path).fleet("default") == {("api", "tcp"): R(25031, 25032)}
    assert change.chosen == {("api", "tcp"): R(25031, 25032)}
    assert leftovers(tmp_path) == []


def test_an_unchanged_registry_is_not_rewritten_and_keeps_its_comments(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)
    stamp = os.stat(path).st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    before, after, changed = update_registry(path, "default", add_owner("ceph-rgw"), settings=DEFAULT)
    assert changed is False and before == after == textwrap.dedent(HARMONY)
    assert os.stat(path).st_mtime_ns == stamp - 10**9


def test_rewriting_a_written_registry_is_byte_identical(tmp_path):
    path = str(tmp_path / "fleet.yml")
    update_registry(path, "default", add_owner("api"))
    with open(path, "rb") as handle:
        first = handle.read()
    assert update_registry(path, "default", lambda registry: Registry(dict(registry.fleets))).changed is False
    with open(path, "rb") as handle:
        assert handle.read() == first


def test_check_mode_writes_nothing_but_shows_the_change(tmp_path):
    path = tmp_path / "fleet.yml"
    before, after, changed = update_registry(str(path), "default", add_owner("api"), check_mode=True)
    assert changed and before == "" and "api:" in after
    assert os.listdir(str(tmp_path)) == []  # no registry, no lock file, no temp file

    write(path, HARMONY)
    before, after, changed = update_registry(str(path), "default", add_owner("api"), check_mode=True)
    assert changed and before == textwrap.dedent(HARMONY)
    assert parse_registry_text(after, "x").fleet("default")[("api", "tcp")] == R(25031)
    assert path.read_text() == textwrap.dedent(HARMONY)
    assert sorted(os.listdir(str(tmp_path))) == ["fleet.yml"]


def test_a_registry_that_fails_validation_is_never_overwritten(tmp_path):
    text = "fleets: {default: {web: {tcp: '25100-25110'}, api: {tcp: 25105}}}\n"
    path = write(tmp_path / "fleet.yml", text)
    with pytest.raises(PortsError) as caught:
        update_registry(path, "default", lambda registry: Registry({}))
    assert str(caught.value).startswith("registry %s, fleet default: owners api (25105/tcp) and web" % os.path.realpath(path))
    assert (tmp_path / "fleet.yml").read_text() == text


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_registry_outside_the_runs_range_is_never_overwritten(tmp_path, check_mode):
    text = "fleets: {default: {web: {tcp: 26000}}}\n"
    path = write(tmp_path / "fleet.yml", text)
    with pytest.raises(PortsError, match="outside the range"):
        update_registry(path, "default", lambda registry: Registry({}, registry.source), check_mode=check_mode, settings=DEFAULT)
    assert (tmp_path / "fleet.yml").read_text() == text


def test_a_change_that_would_make_the_registry_invalid_is_not_written(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)

    def clash(registry):
        fleet = registry.fleet("default")
        fleet[("api", "tcp")] = R(25085, 25095)
        return registry.with_fleet("default", fleet)

    with pytest.raises(PortsError, match=r"owners api \(25085-25095/tcp\) and metrics \(25090-25099/tcp\) overlap on 25090-25095/tcp") as caught:
        update_registry(path, "default", clash)
    assert str(caught.value).startswith("registry %s, fleet default: " % os.path.realpath(path))
    assert (tmp_path / "fleet.yml").read_text() == textwrap.dedent(HARMONY)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = write(tmp_path / "fleet.yml", HARMONY)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PortsError, match="cannot be written: No space left on device"):
        update_registry(path, "default", add_owner("api"))
    assert (tmp_path / "fleet.yml").read_text() == textwrap.dedent(HARMONY)
    assert leftovers(tmp_path) == []


def test_a_change_fn_that_fails_changes_nothing(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)
    with pytest.raises(PortsError, match="frozen"):
        update_registry(
            path, "default", lambda registry: choose_ports(registry, "default", {("api", "tcp"): 1}, {}, DEFAULT, frozen=True)[0]
        )
    assert (tmp_path / "fleet.yml").read_text() == textwrap.dedent(HARMONY)


def test_the_file_keeps_its_mode(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)
    os.chmod(path, 0o640)
    update_registry(path, "default", add_owner("api"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_symlinked_registry_is_written_through_the_link(tmp_path):
    target = write(tmp_path / "real.yml", HARMONY)
    link = tmp_path / "fleet.yml"
    link.symlink_to(target)
    update_registry(str(link), "default", add_owner("api"))
    assert link.is_symlink()
    assert load_registry(target).fleet("default")[("api", "tcp")] == R(25031)


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_missing_directory_is_refused_in_check_mode_too(tmp_path, check_mode):
    with pytest.raises(PortsError, match="nowhere does not exist"):
        update_registry(str(tmp_path / "nowhere" / "fleet.yml"), "default", add_owner("api"), check_mode=check_mode)
    assert os.listdir(str(tmp_path)) == []


def test_a_bad_fleet_name_is_refused(tmp_path):
    with pytest.raises(PortsError, match="fleet name '../x'"):
        update_registry(str(tmp_path / "fleet.yml"), "../x", add_owner("api"))


def _racer(path, owner, start, results):
    start.wait()

    def slow_add(registry):
        after = choose_ports(registry, "default", {(owner, "tcp"): 2}, {}, DEFAULT)[0]
        time.sleep(0.3)  # hold the read registry long enough for the other run to read the same file
        return after

    results.put((owner, update_registry(path, "default", slow_add).changed))


def _race(path, owners):
    """Processes adding ``owners`` to the registry at ``path`` at once; their exit codes and results."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(len(owners) + 1)
    results = context.Queue()
    runs = [context.Process(target=_racer, args=(path, owner, start, results)) for owner in owners]
    for run in runs:
        run.start()
    start.wait()
    for run in runs:
        run.join(30)
    exits = [run.exitcode for run in runs]
    return exits, sorted(results.get(timeout=5) for code in exits if code == 0)


def test_two_runs_at_once_adding_different_owners_both_land_on_different_ports(tmp_path):
    path = write(tmp_path / "fleet.yml", HARMONY)
    exits, results = _race(path, ("api", "web"))
    assert exits == [0, 0]
    assert results == [("api", True), ("web", True)]
    fleet = load_registry(path, DEFAULT).fleet("default")
    assert fleet[("api", "tcp")].size == fleet[("web", "tcp")].size == 2
    assert not fleet[("api", "tcp")].overlaps(fleet[("web", "tcp")])
    assert {fleet[("api", "tcp")], fleet[("web", "tcp")]} == {R(25031, 25032), R(25033, 25034)}
    # Harmony's hand-written entries survived both writes.
    assert fleet[("ceph-rgw", "tcp")] == R(25080) and fleet[("metrics", "tcp")] == R(25090, 25099)
    assert leftovers(tmp_path) == []


def test_the_lock_is_what_keeps_concurrent_runs_apart(tmp_path, monkeypatch):
    # Without the lock both runs read the same registry and one owner is lost:
    # this shows the race the test above guards against is real.
    path = write(tmp_path / "fleet.yml", HARMONY)
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: None)
    _race(path, ("api", "web"))
    fleet = load_registry(path).fleet("default")
    assert len([key for key in fleet if key[0] in ("api", "web")]) == 1


def test_many_writers_each_get_their_own_ports(tmp_path):
    path = str(tmp_path / "fleet.yml")
    owners = ["svc%d" % index for index in range(6)]
    random.Random(17).shuffle(owners)
    context = multiprocessing.get_context("fork")
    runs = [context.Process(target=update_registry, args=(path, "default", add_owner(owner, 3))) for owner in owners]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    assert [run.exitcode for run in runs] == [0] * len(owners)
    fleet = load_registry(path, DEFAULT).fleet("default")
    assert sorted(owner for owner, unused_proto in fleet) == sorted(owners)
    firsts = sorted(ports.first for ports in fleet.values())
    assert firsts == [25031 + 3 * index for index in range(len(owners))]


# ------------------------------------------------------------ issue 22: what the mutants showed unguarded


def test_a_demand_as_large_as_the_range_takes_the_whole_range():
    # Guards _demands mutant 27 (>=).
    chosen = choose_ports(Registry({}), "default", {("api", "tcp"): 10}, {}, build_settings("25000-25009"))[1]
    assert chosen == {("api", "tcp"): R(25000, 25009)}


def test_a_survey_item_that_is_neither_a_range_nor_a_taken_is_refused():
    # Guards _survey_blocks mutants 13 and 16 (a TypeError or ValueError instead of the PortsError).
    with pytest.raises(PortsError) as caught:
        choose_ports(Registry({}), "default", {("api", "tcp"): 1}, {"tcp": [25031]}, DEFAULT)
    assert str(caught.value) == "surveyed tcp ports: 25031 is neither a PortRange nor a Taken"


def test_frozen_names_the_first_owner_that_would_change_past_the_ones_it_keeps():
    # ceph-rgw sorts first and is kept; web is new. Guards _refuse_frozen mutant 7 (break).
    with pytest.raises(PortsError) as caught:
        choose_ports(registry_of(HARMONY), "default", {("ceph-rgw", "tcp"): 1, ("web", "tcp"): 1}, {}, DEFAULT, frozen=True)
    assert str(caught.value).startswith("registry fleet.yml, fleet default: owner web/tcp is not in the registry")


def test_the_frozen_last_resort_is_still_a_one_line_error_naming_the_registry():
    # Unreachable through choose_ports (a frozen registry changes only at a chosen owner), so called
    # directly: a later change that reaches it must not turn into a traceback. Guards _refuse_frozen 40-46.
    registry = registry_of(HARMONY)
    with pytest.raises(PortsError) as caught:
        _refuse_frozen(registry, "default", registry.fleet("default"), {("metrics", "tcp"): R(25090, 25099)})
    assert str(caught.value) == "registry fleet.yml, fleet default: internal error: a frozen registry would change"


def test_a_registry_changed_by_a_choice_still_names_its_file():
    # Guards Registry.with_fleet mutants 6 and 8 (the source dropped).
    registry = registry_of(HARMONY, source="/srv/fleet.yml")
    after = choose_ports(registry, "default", {("api", "tcp"): 1}, {}, DEFAULT)[0]
    assert after.source == "/srv/fleet.yml"
    with pytest.raises(PortsError, match=r"^registry /srv/fleet\.yml, fleet default: owner web/tcp is not in the registry"):
        choose_ports(after, "default", {("web", "tcp"): 1}, {}, DEFAULT, frozen=True)


def test_the_frozen_hint_is_one_line_of_yaml_for_the_longest_names():
    # YAML's default width would fold it (PortsError then joins the lines, but not back into the same text).
    # Guards entry_hint mutants 4 and 7.
    fleet, owner = "f" * 128, "o" * 128
    hint = entry_hint(fleet, owner, "udp", R(25031, 25032))
    assert "\n" not in hint
    assert yaml.safe_load(hint) == {"fleets": {fleet: {owner: {"udp": "25031-25032"}}}}


def test_a_registry_that_is_not_utf8_is_refused(tmp_path):
    # Guards read_registry_text mutants 18 and 21 (a TypeError or ValueError instead of the PortsError).
    path = tmp_path / "fleet.yml"
    path.write_bytes(b"fleets: {caf\xe9: {}}\n")
    with pytest.raises(PortsError, match=r"^registry %s is not UTF-8 text: 'utf-8' codec can't decode" % path):
        load_registry(str(path))


def test_expected_ranges_are_the_fleets_entries_written_as_port_info_writes_ranges(tmp_path):
    # Guards expected_ranges mutants 1-7 (no test called it).
    path = write(tmp_path / "fleet.yml", HARMONY)
    assert expected_ranges(path) == {
        ("ceph-rgw", "tcp"): "25080-25080",
        ("dns", "tcp"): "25053-25053",
        ("dns", "udp"): "25053-25053",
        ("metrics", "tcp"): "25090-25099",
    }
    assert expected_ranges(path, "staging") == {("ceph-rgw", "tcp"): "25080-25080"}
    assert expected_ranges(None) == expected_ranges("") == expected_ranges(str(tmp_path / "none.yml")) == {}
    with pytest.raises(PortsError, match="fleet name '-x'"):
        expected_ranges(path, "-x")


@pytest.mark.parametrize("stale", [0, 1, 2])
def test_the_new_text_goes_through_a_hidden_temporary_file_beside_the_registry(tmp_path, monkeypatch, stale):
    # A leftover of a killed run with the same pid is skipped, not reused or removed.
    # Guards _write_atomically mutants 2, 5, 18, 21 (where and how the temporary file is named)
    # and 13, 34-36 (the attempt counter: 34 loops forever, hence the bound).
    path = write(tmp_path / "fleet.yml", HARMONY)
    directory = os.path.realpath(str(tmp_path))
    temp = os.path.join(directory, ".fleet.yml.%d.%%d.tmp" % os.getpid())
    for attempt in range(stale):
        write(tmp_path / os.path.basename(temp % attempt), "stale\n")
    opened, replaced = [], []
    real_open, real_replace = os.open, os.replace

    def counting_open(name, flags, *mode):
        if str(name).endswith(".tmp"):
            opened.append(name)
            assert len(opened) <= stale + 1, opened
        return real_open(name, flags, *mode)

    def recording_replace(src, dst):
        replaced.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "replace", recording_replace)
    update_registry(path, "default", add_owner("api"))
    assert replaced == [(temp % stale, os.path.join(directory, "fleet.yml"))]
    assert leftovers(tmp_path) == sorted(os.path.basename(temp % attempt) for attempt in range(stale))


def test_a_new_registry_and_its_lock_file_are_created_0666_less_the_umask(tmp_path):
    # Guards _write_atomically mutants 29, 32 and update_registry 35, 37 (the modes given to os.open).
    path = str(tmp_path / "fleet.yml")
    umask = os.umask(0o022)
    try:
        update_registry(path, "default", add_owner("api"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(path + ".lock").st_mode) == 0o644


@pytest.mark.parametrize("check_mode", [False, True])
def test_only_the_runs_fleet_is_held_to_its_range_when_the_registry_is_updated(tmp_path, check_mode):
    # site-b runs under 26000-26999. Guards update_registry 15, 56 and _update 11, 14, 32, 35 (every fleet checked).
    path = write(tmp_path / "fleet.yml", "fleets: {site-a: {api: {tcp: 25100}}, site-b: {api: {tcp: 26100}}}")
    result = update_registry(path, "site-a", add_owner("web", fleet="site-a"), check_mode=check_mode, settings=DEFAULT)
    assert result.changed
    after = parse_registry_text(result.after, "x")
    assert after.fleet("site-a")[("web", "tcp")] == R(25031)
    assert after.fleet("site-b") == {("api", "tcp"): R(26100)}


def test_a_run_waits_while_another_holder_has_the_lock_file(tmp_path):
    # The lock is <path>.lock, taken by this process like any other. Guards update_registry 27, 28 (another
    # lock file) and 43 (no lock taken); the race tests above fork, so they do not guard it.
    path = str(tmp_path / "fleet.yml")
    holder = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)
    released = threading.Event()
    seen = []

    def release():
        time.sleep(0.2)
        released.set()
        os.close(holder)

    def change(registry):
        seen.append(released.is_set())
        return add_owner("api")(registry)

    thread = threading.Thread(target=release)
    thread.start()
    try:
        assert update_registry(path, "default", change).changed
    finally:
        thread.join()
    assert seen == [True]
    assert sorted(os.listdir(str(tmp_path))) == ["fleet.yml", "fleet.yml.lock"]


def test_a_lock_interrupted_by_a_signal_is_waited_for_again(tmp_path, monkeypatch):
    # Guards update_registry mutant 49 (EINTR refused).
    path = str(tmp_path / "fleet.yml")
    real_flock = fcntl.flock
    calls = []

    def interrupted_once(fd, operation):
        calls.append(operation)
        if len(calls) == 1:
            raise OSError(errno.EINTR, os.strerror(errno.EINTR))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", interrupted_once)
    assert update_registry(path, "default", add_owner("api")).changed
    assert calls == [fcntl.LOCK_EX, fcntl.LOCK_EX]


def test_a_lock_that_cannot_be_taken_is_refused_in_one_line(tmp_path, monkeypatch):
    # Guards update_registry mutants 51, 53, 54 (the message's formatting) and 49 (retrying forever: bounded).
    path = write(tmp_path / "fleet.yml", HARMONY)
    calls = []

    def no_locks(fd, operation):
        calls.append(operation)
        assert len(calls) == 1, "retried a lock error that is not EINTR"
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(PortsError) as caught:
        update_registry(path, "default", add_owner("api"))
    real = os.path.realpath(path)
    assert str(caught.value) == "registry %s: cannot lock %s.lock: No locks available" % (real, real)
    assert (tmp_path / "fleet.yml").read_text() == textwrap.dedent(HARMONY)


def test_a_lock_file_that_cannot_be_opened_is_refused_in_one_line(tmp_path):
    # Guards update_registry mutants 39, 41, 42 (the message's formatting).
    path = str(tmp_path / "fleet.yml")
    os.mkdir(path + ".lock")
    with pytest.raises(PortsError) as caught:
        update_registry(path, "default", add_owner("api"))
    real = os.path.realpath(path)
    assert str(caught.value) == "registry %s: cannot open lock file %s.lock: Is a directory" % (real, real)
    assert not os.path.exists(path)


def test_a_change_that_does_not_read_back_as_returned_is_not_written(tmp_path):
    # A change_fn's range the file cannot express (a fractional port) is caught before the write.
    # Guards _update mutants 26 and 28 (a TypeError or ValueError instead of the PortsError).
    path = write(tmp_path / "fleet.yml", HARMONY)
    with pytest.raises(PortsError) as caught:
        update_registry(path, "default", lambda registry: registry.with_fleet("default", {("api", "tcp"): PortRange(25031, 25032.5)}))
    assert str(caught.value) == "registry %s: internal error: the new registry does not read back as written" % os.path.realpath(path)
    assert (tmp_path / "fleet.yml").read_text() == textwrap.dedent(HARMONY)


@pytest.mark.parametrize(
    "text,message",
    [
        ("fleets:\n  default:\n    api: {tcp: 25080}\n    api: {tcp: 25081}\n",
         "is not valid YAML at line 4, column 5: duplicate key 'api' (first at line 3)"),
        ("fleets: {default: {api: {tcp: 25080}}\n", "is not valid YAML at line 2, column 1: expected ',' or '}', but got '<stream end>'"),
        # The reader's error has neither a mark nor a problem: its own words, without a place.
        ("fleets: {default: {api: {tcp: '\x07'}}}\n",
         'is not valid YAML: unacceptable character #x0007: special characters are not allowed in "<unicode string>", position 31'),
    ],
    ids=["duplicate", "parser", "reader"],
)
def test_invalid_yaml_is_refused_with_its_place_and_its_problem(text, message):
    # Guards _Loader.construct_mapping mutant 20 and parse_registry_text 11, 16, 18, 22-35.
    with pytest.raises(PortsError) as caught:
        parse_registry_text(text, "fleet.yml")
    assert str(caught.value) == "registry fleet.yml " + message


def test_exhaustion_with_no_free_port_at_all_says_none():
    # Guards choose_ports mutant 84 (the largest run's text built from None).
    small = build_settings("25000-25009")
    with pytest.raises(PortsError) as caught:
        choose_ports(Registry({}), "default", {("api", "tcp"): 1}, {"tcp": [R(25000, 25009)]}, small)
    assert str(caught.value).endswith("held by no other owner of the fleet; the largest such run is none")


def test_unknown_top_level_keys_are_all_named_in_order():
    # parse_registry: `", ".join(unknown)` -> `"XX, XX".join(...)`.
    with pytest.raises(PortsError, match=r"^registry fleet\.yml: unknown top-level key fleet, owners; expected version and fleets$"):
        registry_of("""\
            version: 1
            owners: {}
            fleet: {}
            fleets: {}
            """)
