"""TCP_PORT / TCP_PORTS_RANGE / TCP_PORTS as NethServer 8 hands them out."""

from __future__ import annotations

from ansible_collections.berth.ports.plugins.module_utils.port_environment import port_environment
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange


def test_single_port_gives_only_port():
    assert port_environment("tcp", [PortRange(20001, 20001)]) == {"TCP_PORT": "20001"}


def test_three_ports_give_range_and_list():
    assert port_environment("tcp", [PortRange(20001, 20003)]) == {
        "TCP_PORT": "20001",
        "TCP_PORTS_RANGE": "20001-20003",
        "TCP_PORTS": "20001,20002,20003",
    }


def test_eight_ports_are_still_listed_nine_are_not():
    eight = port_environment("udp", [PortRange(100, 107)])
    assert eight["UDP_PORTS"] == ",".join(str(p) for p in range(100, 108))
    nine = port_environment("udp", [PortRange(100, 108)])
    assert nine == {"UDP_PORT": "100", "UDP_PORTS_RANGE": "100-108"}


def test_several_ranges_describe_the_oldest():
    env = port_environment("tcp", [PortRange(25040, 25041), PortRange(25001, 25004)])
    assert env == {"TCP_PORT": "25040", "TCP_PORTS_RANGE": "25040-25041", "TCP_PORTS": "25040,25041"}


def test_nothing_held_gives_nothing():
    assert port_environment("tcp", []) == {}
