# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the fleet against the registry: the hosts' demands and surveys in, each host's
entries, conflicts and local fallbacks out, the registry written before any host changes."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry import registry_fleet_ports
from ansible_collections.berth.ports.tests.unit.plugins.plugin_utils.test_fleet_ports_choice import host, ports, row, stray


def entries(path, fleet="default"):
    with open(path) as handle:
        return yaml.safe_load(handle)["fleets"][fleet]


API = {"owner": "api", "count": 2}


def test_owners_the_hosts_already_hold_are_adopted_at_the_port_most_hosts_hold(tmp_path):
    """A fleet converged before the registry existed keeps its ports, and the minority host moves."""
    path = str(tmp_path / "registry.yml")
    hosts = {"a": host([API], row("api", 25040, 25041)), "b": host([API], row("api", 25040, 25041)),
             "c": host([API], row("api", 25031, 25032))}
    run = registry_fleet_ports(hosts, path)
    assert ports(run.hosts, "api") == {"a": 25040, "b": 25040, "c": 25040}
    assert entries(path) == {"api": {"tcp": "25040-25041"}} and run.write.changed


def test_an_adopted_port_held_by_another_registry_owner_is_chosen_anew(tmp_path):
    path = str(tmp_path / "registry.yml")
    with open(path, "w") as handle:
        handle.write("fleets: {default: {metrics: {tcp: 25041}}}\n")
    run = registry_fleet_ports({"a": host([API], row("api", 25040, 25041))}, path)
    # 25031-25032 is free on the host and in the registry; the host moves there
    assert ports(run.hosts, "api") == {"a": 25031}
    assert entries(path) == {"api": {"tcp": "25031-25032"}, "metrics": {"tcp": "25041"}}


def test_a_registry_port_taken_on_a_host_is_a_conflict_there_or_a_local_port(tmp_path):
    path = str(tmp_path / "registry.yml")
    with open(path, "w") as handle:
        handle.write("fleets: {default: {api: {tcp: 25050-25051}}}\n")
    hosts = {"a": host([API]), "b": host([API], conflicts=[stray(25051)])}
    failing = registry_fleet_ports(hosts, path)
    assert ports(failing.hosts, "api") == {"a": 25050, "b": 25050}
    assert failing.hosts["a"]["conflicts"] == []
    assert failing.hosts["b"]["conflicts"][0]["msg"] == (
        "host b: owner api/tcp cannot take its fleet ports 25050-25051, blocked by a listener (unit stray.service, pid 42)")
    local = registry_fleet_ports(hosts, path, fallback="local")
    assert ports(local.hosts, "api") == {"a": 25050, "b": None}
    assert local.hosts["b"]["local"] == [{"owner": "api", "proto": "tcp", "fleet_port": 25050}]
    assert not failing.write.changed and not local.write.changed


def test_frozen_fails_an_owner_the_hosts_hold_but_the_registry_does_not_name(tmp_path):
    path = str(tmp_path / "registry.yml")
    with pytest.raises(PortsError, match="owner api/tcp is not in the registry, which is frozen"):
        registry_fleet_ports({"a": host([API], row("api", 25040, 25041))}, path, frozen=True)
    assert not os.path.exists(path)


def test_static_entries_pass_through_and_block_new_owners_where_they_are_asked(tmp_path):
    path = str(tmp_path / "registry.yml")
    static = {"owner": "rgw", "count": 1, "port": 25031}
    run = registry_fleet_ports({"a": host([static, API]), "b": host([API])}, path)
    assert run.hosts["a"]["allocations"][0] == {"owner": "rgw", "proto": "tcp", "count": 1, "port": 25031, "shared": False}
    assert ports(run.hosts, "api") == {"a": 25032, "b": 25032}
    assert entries(path) == {"api": {"tcp": "25032-25033"}}  # static ports are the host's, not the registry's


def test_check_mode_returns_the_choice_and_the_text_without_writing(tmp_path):
    path = str(tmp_path / "registry.yml")
    run = registry_fleet_ports({"a": host([API])}, path, check_mode=True)
    assert ports(run.hosts, "api") == {"a": 25031}
    assert run.write.changed and "api:\n      tcp: 25031-25032" in run.write.after and run.write.before == ""
    assert not os.path.exists(path)


def test_a_bad_fallback_or_host_is_refused_before_anything(tmp_path):
    path = str(tmp_path / "registry.yml")
    with pytest.raises(PortsError, match="fallback 'maybe' is not one of fail, local"):
        registry_fleet_ports({"a": host([API])}, path, fallback="maybe")
    with pytest.raises(PortsError, match="host a has no survey"):
        registry_fleet_ports({"a": {"demand": [API]}}, path)
    assert not os.path.exists(path)
