# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoints (issue 19): each owner's ports per host, from hosts' results or from the fleet registry."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.endpoints import (
    endpoints_from_registry,
    endpoints_from_results,
)


def service(owner, tcp=(), udp=(), state="present"):
    return {"unit": owner + ".service", "owner": owner, "state": state, "env": {},
            "ports": {"tcp": list(tcp), "udp": list(udp)}, "freed": [], "drift": []}


def row(owner, first, last=None, proto="tcp"):
    return {"owner": owner, "proto": proto, "first": first, "last": first if last is None else last,
            "shared": False, "kind": "dynamic", "created": "2026-01-15T09:30:00Z", "origin": "port_allocations"}


HOSTVARS = {
    "app2": {"ansible_host": "10.0.0.12",
             "service_ports_results": [service("web", tcp=[25031]), service("dns", udp=[25031])]},
    "app1": {"ansible_host": "10.0.0.11",
             "service_ports_results": [service("web", tcp=[25040, 25041]), service("gone", state="absent")]},
    "lb": {"ansible_host": "10.0.0.1"},
}


def test_groups_per_owner_and_proto_sorted():
    assert endpoints_from_results(HOSTVARS) == [
        {"owner": "dns", "proto": "udp", "endpoints": [
            {"host": "app2", "address": "10.0.0.12", "port": 25031, "ports": [25031]}]},
        {"owner": "web", "proto": "tcp", "endpoints": [
            {"host": "app1", "address": "10.0.0.11", "port": 25040, "ports": [25040, 25041]},
            {"host": "app2", "address": "10.0.0.12", "port": 25031, "ports": [25031]}]},
    ]


def test_hosts_select_and_keep_their_order_out_of_the_result():
    assert endpoints_from_results(HOSTVARS, hosts=["app2"]) == endpoints_from_results({"app2": HOSTVARS["app2"]})
    assert endpoints_from_results(HOSTVARS, hosts=["app2", "app1"]) == endpoints_from_results(HOSTVARS)


def test_a_named_host_without_results_fails_naming_it():
    with pytest.raises(PortsError, match="host lb has no service_ports_results"):
        endpoints_from_results(HOSTVARS, hosts=["app1", "lb"])
    with pytest.raises(PortsError, match="host nowhere is not in the input"):
        endpoints_from_results(HOSTVARS, hosts=["nowhere"])


def test_address_falls_back_to_the_inventory_name_and_follows_address_var():
    hostvars = {"app1": {"service_ports_results": [service("web", tcp=[25031])], "ansible_host": "",
                         "private_ip": "192.168.1.5"}}
    (group,) = endpoints_from_results(hostvars)
    assert group["endpoints"][0]["address"] == "app1"
    (group,) = endpoints_from_results(hostvars, address_var="private_ip")
    assert group["endpoints"][0]["address"] == "192.168.1.5"
    hostvars["app1"]["private_ip"] = ["192.168.1.5"]
    with pytest.raises(PortsError, match="host app1: private_ip .* is not a string"):
        endpoints_from_results(hostvars, address_var="private_ip")


def test_port_info_results():
    hostvars = {"db1": {"berth_survey": {"changed": False, "allocations": [
        row("web", 25031, 25033), row("dns", 25031, proto="udp")], "conflicts": []}}}
    groups = endpoints_from_results(hostvars, results_var="berth_survey")
    assert groups == [
        {"owner": "dns", "proto": "udp", "endpoints": [{"host": "db1", "address": "db1", "port": 25031, "ports": [25031]}]},
        {"owner": "web", "proto": "tcp", "endpoints": [
            {"host": "db1", "address": "db1", "port": 25031, "ports": [25031, 25032, 25033]}]},
    ]


@pytest.mark.parametrize("result, message", [
    ({"failed": True, "msg": "database locked"}, "is a failed result: database locked"),
    ({"changed": False}, "has no list of allocations"),
    ({"allocations": [row("web", 25033, 25031)]}, "is inverted"),
    ({"allocations": [row("web", 70000)]}, "outside 1-65535"),
    ("25031", "neither service_ports_results"),
    ([service("web", tcp=[25031, 25033])], "not one contiguous range"),
    ([{"owner": "web", "ports": {"tcp": "25031"}}], "are not a list"),
    ([{"owner": "", "ports": {}}], "has no owner"),
    ([{"owner": "web", "ports": {"sctp": [1]}}], "sctp"),
])
def test_malformed_results_fail_in_one_line(result, message):
    with pytest.raises(PortsError, match=message) as caught:
        endpoints_from_results({"h1": {"r": result}}, results_var="r")
    assert "\n" not in str(caught.value)
    assert "h1" in str(caught.value)


def test_the_input_must_be_a_dict_of_hosts():
    with pytest.raises(PortsError, match="must be hostvars"):
        endpoints_from_results(["app1"])


REGISTRY = """\
fleets:
  default:
    web:
      tcp: 25031
    metrics:
      tcp: 25090-25091
  staging:
    web:
      tcp: 25500
"""


def test_registry_lists_every_owner_on_every_host(tmp_path):
    path = tmp_path / "berth-ports-registry.yml"
    path.write_text(REGISTRY)
    groups = endpoints_from_registry(str(path), ["app2", "app1"], hostvars=HOSTVARS)
    assert [(g["owner"], g["proto"]) for g in groups] == [("metrics", "tcp"), ("web", "tcp")]
    assert groups[0]["endpoints"] == [
        {"host": "app1", "address": "10.0.0.11", "port": 25090, "ports": [25090, 25091]},
        {"host": "app2", "address": "10.0.0.12", "port": 25090, "ports": [25090, 25091]},
    ]
    (staging,) = endpoints_from_registry(str(path), ["x"], fleet="staging")
    assert staging["endpoints"] == [{"host": "x", "address": "x", "port": 25500, "ports": [25500]}]
    assert endpoints_from_registry(str(tmp_path / "missing.yml"), ["app1"]) == []
    with pytest.raises(PortsError, match="host nowhere is not in the input"):
        endpoints_from_registry(str(path), ["nowhere"], hostvars=HOSTVARS)


# ----------------------------------------------------------------- properties

OWNERS = st.sampled_from(["web", "api", "dns", "metrics", "a.b"])
PROTOS = st.sampled_from(["tcp", "udp"])
ALLOCATION = st.tuples(OWNERS, PROTOS, st.integers(1, 65000), st.integers(0, 3))
HOSTS = st.dictionaries(st.sampled_from(["h1", "h2", "h3", "lb-1", "z"]), st.lists(ALLOCATION, max_size=6), max_size=5)


def as_survey(hosts):
    return {host: {"survey": {"allocations": [row(o, first, first + extra, proto) for o, proto, first, extra in rows]},
                   "ansible_host": "addr-" + host}
            for host, rows in hosts.items()}


def flatten(groups):
    return sorted((g["owner"], g["proto"], e["host"], e["address"], e["port"], tuple(e["ports"]))
                  for g in groups for e in g["endpoints"])


@settings(max_examples=200, deadline=None)
@given(HOSTS)
def test_every_allocation_in_exactly_one_group_and_nothing_invented(hosts):
    groups = endpoints_from_results(as_survey(hosts), results_var="survey")
    expected = sorted((o, proto, host, "addr-" + host, first, tuple(range(first, first + extra + 1)))
                      for host, rows in hosts.items() for o, proto, first, extra in rows)
    assert flatten(groups) == expected
    keys = [(g["owner"], g["proto"]) for g in groups]
    assert keys == sorted(set(keys)), "one group per owner and proto, sorted"
    assert all(g["endpoints"] for g in groups), "no empty group"


@settings(max_examples=100, deadline=None)
@given(HOSTS, st.randoms(use_true_random=False))
def test_the_same_fleet_in_any_order_gives_the_same_list(hosts, rnd):
    shuffled = {}
    items = list(as_survey(hosts).items())
    rnd.shuffle(items)
    for host, host_vars in items:
        rows = list(host_vars["survey"]["allocations"])
        rnd.shuffle(rows)
        shuffled[host] = {"survey": {"allocations": rows}, "ansible_host": host_vars["ansible_host"]}
    assert endpoints_from_results(shuffled, results_var="survey") == endpoints_from_results(as_survey(hosts), results_var="survey")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(OWNERS, st.lists(st.integers(1, 65000), min_size=1, max_size=3, unique=True), max_size=5),
       st.lists(st.sampled_from(["h1", "h2", "h3"]), unique=True, max_size=3))
def test_service_results_give_one_endpoint_per_service_and_proto(ports_by_owner, hosts):
    hostvars = {host: {"service_ports_results": [service(o, tcp=range(p[0], p[0] + len(p))) for o, p in ports_by_owner.items()]}
                for host in hosts}
    groups = endpoints_from_results(hostvars)
    assert len(flatten(groups)) == len(ports_by_owner) * len(hosts)
    for group in groups:
        first = ports_by_owner[group["owner"]][0]
        assert [e["port"] for e in group["endpoints"]] == [first] * len(hosts)
        assert [e["host"] for e in group["endpoints"]] == sorted(hosts)


def test_order_of_hostvars_is_irrelevant_for_a_fixed_example():
    items = list(HOSTVARS.items())
    random.Random(4).shuffle(items)
    assert endpoints_from_results(dict(items)) == endpoints_from_results(HOSTVARS)


# ------------------------------------------------ errors name where the fault is
# The operator reads "berth.ports.endpoints: <this>" and must find the host, the
# variable and the item at fault; a malformed input is a PortsError (the filter
# turns it into one line), never a TypeError or ValueError (a traceback).

@pytest.mark.parametrize("result, message", [
    # x__service_results__mutmut_5/9/11, x_held_by_host__mutmut_9, x_endpoints_from_results__mutmut_55
    (["web"], r"^host h1: r\[0\] is not a dict: 'web'$"),
    # x__service_results__mutmut_30/32
    ([service("api", tcp=[25030]), {"owner": "web", "ports": [25031]}],
     r"^host h1: r\[1\]: ports of owner web is not a dict of proto to ports: \[25031\]$"),
    # x__service_results__mutmut_53/57
    ([{"owner": "web", "ports": {"tcp": [70000]}}], r"^host h1: r\[0\]: tcp port of owner web 70000 is outside 1-65535$"),
    # x__service_results__mutmut_34/36: protos of mixed types are sorted as text, then refused
    ([{"owner": "web", "ports": {1: [25031], "tcp": [25031]}}], r"^host h1: r\[0\]: owner web: proto 1 is not one of"),
    # x__survey_results__mutmut_3/13/15, x_held_by_host__mutmut_3
    ({"failed": True}, r"^host h1: r is a failed result: no message$"),
])
def test_malformed_results_fail_naming_host_variable_and_item(result, message):
    with pytest.raises(PortsError, match=message):
        endpoints_from_results({"h1": {"r": result}}, results_var="r")


def test_host_lists_must_be_lists_of_names_and_say_which_list(tmp_path):
    # x__host_names__mutmut_1/4/6/8/12/14, x_endpoints_from_results__mutmut_19/22/23/26/29/30,
    # x_endpoints_from_registry__mutmut_12/15/16
    for hosts in (5, "", "app1"):
        with pytest.raises(PortsError, match=r"^hosts must be a list of host names, got %r$" % (hosts,)):
            endpoints_from_results(HOSTVARS, hosts=hosts)
    with pytest.raises(PortsError, match=r"^hosts: '' is not a host name$"):
        endpoints_from_results(HOSTVARS, hosts=["app1", ""])
    with pytest.raises(PortsError, match=r"^the input's hosts: 5 is not a host name$"):
        endpoints_from_results({5: HOSTVARS["app1"]})
    path = tmp_path / "berth-ports-registry.yml"
    path.write_text(REGISTRY)
    with pytest.raises(PortsError, match=r"^hosts must be a list of host names, got 5$"):
        endpoints_from_registry(str(path), 5)
    for bad in ("", 5, None):
        with pytest.raises(PortsError, match=r"^hosts: %r is not a host name$" % (bad,)):
            endpoints_from_registry(str(path), ["app1", bad])


def test_host_variables_and_results_and_registry_arguments_are_checked(tmp_path):
    # x__vars_of__mutmut_8/10
    with pytest.raises(PortsError, match=r"^host h1: its variables are not a dict: 'x'$"):
        endpoints_from_results({"h1": "x"})
    # x_endpoints_from_results__mutmut_6/10/12: an empty or odd name would read nothing and list no backend
    for results_var in ("", 5):
        with pytest.raises(PortsError, match=r"^results must name a variable, got %r$" % (results_var,)):
            endpoints_from_results(HOSTVARS, results_var=results_var)
    # x_endpoints_from_registry__mutmut_1/5/7: "" is no registry, not an empty one
    for path in ("", None):
        with pytest.raises(PortsError, match=r"^registry must be the path of the fleet registry, got %r$" % (path,)):
            endpoints_from_registry(path, ["app1"])


def test_hosts_without_the_variable_are_left_out_wherever_they_sort():
    # x_endpoints_from_results__mutmut_38: a host without results sorting first must not end the reading
    hostvars = {"app1": HOSTVARS["app1"], "a-lb": {"ansible_host": "10.0.0.1"}, "z-lb": {}}
    assert endpoints_from_results(hostvars) == endpoints_from_results({"app1": HOSTVARS["app1"]}) != []


def test_addresses_are_taken_as_given_and_an_empty_address_var_means_the_names(tmp_path):
    # x_address_of__mutmut_8: any non-empty address is the address, whatever it spells
    hostvars = {"app1": {"service_ports_results": [service("web", tcp=[25031])], "ansible_host": "XXXX", "": "10.9.9.9"}}
    (group,) = endpoints_from_results(hostvars)
    assert group["endpoints"][0]["address"] == "XXXX"
    # x_address_of__mutmut_3: address_var "" names no variable, so the inventory name is the address
    (group,) = endpoints_from_results(hostvars, address_var="")
    assert group["endpoints"][0]["address"] == "app1"
    # x_endpoints_from_registry__mutmut_23: with hostvars, a host without an address is reached by its name
    path = tmp_path / "berth-ports-registry.yml"
    path.write_text(REGISTRY)
    groups = endpoints_from_registry(str(path), ["app1", "lb", "db"], hostvars=dict(HOSTVARS, db={}))
    assert [(e["host"], e["address"]) for e in groups[1]["endpoints"]] == [
        ("app1", "10.0.0.11"), ("db", "db"), ("lb", "10.0.0.1")]
