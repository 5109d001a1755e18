# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The berth.ports.fleet_ports filter, called from a template as a play calls it."""

from __future__ import annotations

import pytest
import yaml

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.berth.ports.plugins.filter import fleet_ports as filter_source
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.tests.unit.plugins.filter.filter_renderer import template_renderer


def survey(*rows, conflicts=()):
    return {"changed": False, "failed": False, "allocations": list(rows), "conflicts": list(conflicts)}


def row(owner, first, last=None, proto="tcp"):
    last = first if last is None else last
    return {"owner": owner, "proto": proto, "first": first, "last": last, "shared": False, "kind": "dynamic",
            "created": "2026-01-15T09:30:00Z"}


FLEET = {
    "web1": {"demand": [{"owner": "web", "count": "2"}, {"owner": "dns", "proto": "udp"}],
             "survey": survey(row("web", 25100, 25101))},
    "web2": {"demand": [{"owner": "web", "count": 2}, {"owner": "dns", "proto": "udp"}],
             "survey": survey(row("web", 25100, 25101))},
    "web3": {"demand": [{"owner": "web", "count": 2}],
             "survey": survey(conflicts=[{"type": "unallocated", "proto": "tcp", "port": 25101, "pid": 42,
                                          "unit": "stray.service", "owner": None}])},
}


@pytest.fixture(scope="module")
def render():
    return template_renderer(filter_source)


def test_defaults(render):
    result = render("fleet | berth.ports.fleet_ports", fleet=FLEET)
    assert sorted(result) == ["web1", "web2", "web3"]
    assert result["web1"]["allocations"] == [
        {"owner": "web", "proto": "tcp", "count": 2, "port": 25100, "shared": False},
        {"owner": "dns", "proto": "udp", "count": 1, "port": 25031, "shared": False},
    ]
    (conflict,) = result["web3"]["conflicts"]
    assert (conflict["owner"], conflict["port"], conflict["ports"]) == ("web", 25100, "25100-25101")
    assert conflict["holder"] == "a listener (unit stray.service, pid 42)"
    assert "web3" in conflict["msg"]


def test_keywords_range_reserved_fallback(render):
    result = render(
        "fleet | berth.ports.fleet_ports(range='25000-25499', reserved=[25016, '25017-25025'], fallback='local')",
        fleet=FLEET,
    )
    # dns is a new owner: the upper band of 25000-25499 starts at 25016, then the reserved ports.
    assert result["web1"]["allocations"][1]["port"] == 25026
    assert result["web3"]["allocations"] == [{"owner": "web", "proto": "tcp", "count": 2, "port": None, "shared": False}]
    assert result["web3"]["local"] == [{"owner": "web", "proto": "tcp", "fleet_port": 25100}]
    assert result["web3"]["conflicts"] == []


def test_the_range_keyword_bounds_the_choice(render):
    fleet = {"h": {"demand": [{"owner": "a"}], "survey": survey()}}
    result = render("fleet | berth.ports.fleet_ports(range='30000-30127')", fleet=fleet)
    assert result["h"]["allocations"][0]["port"] == 30016


@pytest.mark.parametrize(
    "call, words",
    [
        ("berth.ports.fleet_ports(fallback='sometimes')", ["fallback", "sometimes"]),
        ("berth.ports.fleet_ports(range='9-1')", ["range"]),
        ("berth.ports.fleet_ports(reserved=['x'])", ["reserved"]),
    ],
)
def test_bad_options_fail_as_filter_errors(render, call, words):
    with pytest.raises(AnsibleError) as info:
        render("fleet | " + call, fleet=FLEET)
    for word in ["berth.ports.fleet_ports"] + words:
        assert word in str(info.value)


def test_a_failed_survey_names_the_host(render):
    fleet = dict(FLEET, web2={"demand": [], "survey": {"failed": True, "msg": "database is corrupt"}})
    with pytest.raises(AnsibleError, match="host web2.*database is corrupt"):
        render("fleet | berth.ports.fleet_ports", fleet=fleet)


def test_ports_error_becomes_an_ansible_filter_error_with_its_cause():
    function = filter_source.FilterModule().filters()["fleet_ports"]
    with pytest.raises(AnsibleFilterError) as info:
        function({"h": {"demand": "web", "survey": survey()}})
    assert isinstance(info.value.__cause__, PortsError)
    assert "host h" in str(info.value) and "\n" not in str(info.value)


def test_reserved_none_means_none(render):
    fleet = {"h": {"demand": [{"owner": "a"}], "survey": survey()}}
    result = render("fleet | berth.ports.fleet_ports(reserved=None)", fleet=fleet)
    assert result["h"]["allocations"][0]["port"] == 25031


def test_documentation_matches_the_call():
    doc = yaml.safe_load(filter_source.DOCUMENTATION)
    assert doc["name"] == "fleet_ports"
    assert doc["positional"] == "_input"
    assert set(doc["options"]) == {"_input", "range", "reserved", "fallback"}
    assert doc["options"]["fallback"]["choices"] == ["fail", "local"]
    assert doc["options"]["range"]["default"] == "25000-25999"
    yaml.safe_load(filter_source.EXAMPLES)
    returned = yaml.safe_load(filter_source.RETURN)["_value"]["contains"]
    assert set(returned) == {"allocations", "conflicts", "local"}
