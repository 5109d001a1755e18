# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the fleet against the registry: the hosts' demands and surveys in, each host's
entries, conflicts and local fallbacks out, the registry written before any host changes."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
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


# ------------------------------------------------------------ issue 22: what the mutants showed unguarded

WEB = {"owner": "web", "count": 1}


def registry_file(tmp_path, text):
    path = str(tmp_path / "registry.yml")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_a_registry_owner_keeps_its_ports_and_the_owners_after_it_are_still_adopted(tmp_path):
    # Guards _adopt_existing mutants 6 (a registry owner re-adopted at the hosts' port) and 9 (break).
    path = registry_file(tmp_path, "fleets: {default: {api: {tcp: 25050-25051}}}\n")
    held = host([API, WEB], row("api", 25040, 25041), row("web", 25060))
    run = registry_fleet_ports({"a": held, "b": held}, path)
    assert ports(run.hosts, "api") == {"a": 25050, "b": 25050}
    assert ports(run.hosts, "web") == {"a": 25060, "b": 25060}
    assert entries(path) == {"api": {"tcp": "25050-25051"}, "web": {"tcp": "25060"}}


ADOPTION = [
    # Only the owner's own count of ports is checked against the registry: a neighbour just above fits.
    ("fleets: {default: {metrics: {tcp: 25042}}}", 25040),
    # Another proto, or the same owner on another proto, never blocks.
    ("fleets: {default: {dns: {udp: 25040}}}", 25040),
    ("fleets: {default: {api: {udp: 25040-25041}}}", 25040),
    # An owner named like a proto is an owner like any other.
    ("fleets: {default: {tcp: {tcp: 25041}}}", 25031),
]


@pytest.mark.parametrize("text,port", ADOPTION, ids=["neighbour-above", "other-proto", "own-other-proto", "owner-named-tcp"])
def test_adoption_checks_exactly_the_owners_ports_against_the_other_owners_of_its_proto(tmp_path, text, port):
    # Guards _adopt_existing mutants 15 (one port too many), 19 (or: every proto) and 23 (owner compared to proto).
    path = registry_file(tmp_path, text + "\n")
    run = registry_fleet_ports({"a": host([API], row("api", 25040, 25041))}, path)
    assert ports(run.hosts, "api") == {"a": port}
    assert entries(path)["api"]["tcp"] == "%d-%d" % (port, port + 1)


def test_an_adopted_port_is_kept_even_where_one_host_has_another_owner_on_it(tmp_path):
    # Adoption asks the registry only: the host where another owner sits meets a conflict (rule 4).
    # Guards _adopt_existing mutants 16 and 17 (a short range that choose_ports would then regrow and move).
    path = str(tmp_path / "registry.yml")
    held = host([API], row("api", 25040, 25041))
    run = registry_fleet_ports({"a": held, "b": held, "c": host([API], row("web", 25041))}, path)
    assert ports(run.hosts, "api") == {"a": 25040, "b": 25040, "c": 25040}
    assert run.hosts["c"]["conflicts"][0]["msg"].startswith("host c: owner api/tcp cannot take its fleet ports 25040-25041")
    assert entries(path) == {"api": {"tcp": "25040-25041"}}


def test_an_owner_chosen_anew_may_take_the_ports_it_holds_on_a_minority_host(tmp_path):
    # The majority port is another owner's in the registry; api's own rows on c do not block it.
    # Guards _surveyed mutant 7 (rows of any owner blocking everyone, their own owner too).
    path = registry_file(tmp_path, "fleets: {default: {metrics: {tcp: 25051}}}\n")
    held = host([API], row("api", 25050, 25051))
    run = registry_fleet_ports({"a": held, "b": held, "c": host([API], row("api", 25031, 25032))}, path)
    assert ports(run.hosts, "api") == {"a": 25031, "b": 25031, "c": 25031}
    assert run.ports == {("api", "tcp"): PortRange(25031, 25032)}  # mutant 115


def test_an_owner_static_on_one_host_gets_the_same_port_where_it_is_dynamic(tmp_path):
    # Guards _surveyed mutant 12 (a static ask blocking its own owner).
    path = str(tmp_path / "registry.yml")
    run = registry_fleet_ports({"a": host([{"owner": "rgw", "count": 1, "port": 25031}]), "b": host([{"owner": "rgw", "count": 1}])}, path)
    assert ports(run.hosts, "rgw") == {"a": 25031, "b": 25031}
    assert entries(path) == {"rgw": {"tcp": "25031"}}


def test_a_listener_on_any_host_keeps_new_owners_off_its_port(tmp_path):
    # Guards _surveyed mutants 17 and 18 (the listener's range).
    path = str(tmp_path / "registry.yml")
    run = registry_fleet_ports({"a": host([API]), "b": host([API], conflicts=[stray(25032)])}, path)
    assert ports(run.hosts, "api") == {"a": 25033, "b": 25033}


def test_a_run_without_dynamic_owners_leaves_a_missing_registry_missing(tmp_path):
    # Guards _adopt_existing mutant 31 (an empty fleet added to the registry, and written).
    path = str(tmp_path / "registry.yml")
    run = registry_fleet_ports({"a": host([{"owner": "rgw", "count": 1, "port": 25031}])}, path)
    assert run.write == ("", "", False) and run.ports == {}
    assert not os.path.exists(path)


def test_the_runs_range_and_reserved_ports_apply_to_hosts_and_registry(tmp_path):
    # Guards registry_fleet_ports mutants 16, 17, 19, 21, 22 (range or reserved dropped) and 25 (hosts read
    # against the default range: the static 26005 would be refused).
    path = str(tmp_path / "registry.yml")
    hosts = {"a": host([{"owner": "rgw", "count": 1, "port": 26005}, API])}
    run = registry_fleet_ports(hosts, path, port_range="26000-26999", reserved=["26031-26032"])
    assert ports(run.hosts, "api") == {"a": 26033}
    assert ports(run.hosts, "rgw") == {"a": 26005}
    assert entries(path) == {"api": {"tcp": "26033-26034"}}
    assert registry_fleet_ports(hosts, path, port_range="26000-26999", reserved=None).write.changed is False


def test_frozen_reads_the_registry_and_reports_it_unchanged(tmp_path):
    # Guards registry_fleet_ports mutants 80-87 (the frozen run's RegistryWrite) and 77 (the file's name).
    text = "# by hand\nfleets: {default: {api: {tcp: 25050-25051}}}\n"
    path = registry_file(tmp_path, text)
    run = registry_fleet_ports({"a": host([API])}, path, frozen=True)
    assert ports(run.hosts, "api") == {"a": 25050}
    assert run.write == (text, text, False) and run.write.changed is False
    assert run.ports == {("api", "tcp"): PortRange(25050, 25051)}
    with pytest.raises(PortsError) as caught:
        registry_fleet_ports({"a": host([WEB])}, path, frozen=True)
    assert str(caught.value).startswith("registry %s, fleet default: owner web/tcp is not in the registry" % path)
