# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry (issue 17): one YAML file on the controller that remembers each fleet's ports.

This file is one run of the ``fleet_registry`` action (the service_ports
role's fleet-consistent mode): read the hosts, choose under the registry's
lock, settle each host. The parts, each in its own file:

- ``fleet_registry_file``: the file's format, read and validated, written as text;
- ``fleet_registry_choice``: which ports each owner gets (:func:`choose_ports`);
- ``fleet_registry_update``: the locked, atomic rewrite (:func:`update_registry`).

Controller-only: nothing here imports Ansible and nothing runs on a managed
host. An action plugin or filter wraps it; pytest tests it directly.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, merge
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, build_settings
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_hosts import (
    Claim,
    HostView,
    Key,
    dynamic_demands,
    read_fleet,
    static_claims,
)
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_ports import FALLBACKS, majority_ports, settle_fleet_ports
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_choice import Surveyed, Taken, choose_ports
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import (
    DEFAULT_FLEET,
    Registry,
    parse_registry_text,
    read_registry_text,
    validate_fleet,
)
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_update import RegistryWrite, update_registry


class RegistryRun(NamedTuple):
    """What a run of the fleet gets from the registry."""

    hosts: Dict[str, Dict[str, Any]]  # per host, what berth.ports.fleet_ports returns
    ports: Dict[Key, PortRange]  # the fleet's ports of every dynamic (owner, proto) of the run
    write: RegistryWrite


def _surveyed(views: Sequence[HostView], claims: Mapping[str, Sequence[Claim]]) -> Dict[str, List[Surveyed]]:
    """What the run's hosts hold, per proto: rows and static asks by owner, listeners for everyone."""
    taken = {"tcp": [], "udp": []}  # type: Dict[str, List[Surveyed]]
    for view in views:
        for row in view.rows:
            taken[row.proto].append(Taken(row.owner, row.range))
        for claim in claims[view.name]:
            taken[claim.proto].append(Taken(claim.owner, claim.range))
        for seen in view.listeners:
            taken[seen.proto].append(PortRange(seen.port, seen.port))
    return taken


def _adopt_existing(
    registry: Registry, fleet: str, demands: Mapping[Key, int], majority: Mapping[Key, int], settings: Settings
) -> Registry:
    """The registry with owners that hosts already hold but the registry does not name, at the
    port the most hosts hold, where that fits the range and no other owner of the fleet holds it.

    A fleet that adopts the registry keeps its ports; an owner whose port does
    not fit is chosen like a new one.
    """
    held = registry.fleet(fleet)
    reserved = merge(settings.reserved)
    for key in sorted(majority):
        if key in held or key not in demands:
            continue
        ports = PortRange(majority[key], majority[key] + demands[key] - 1)
        others = [busy for (owner, proto), busy in held.items() if proto == key[1] and owner != key[0]]
        if settings.bounds.covers(ports) and not any(ports.overlaps(busy) for busy in reserved + others):
            held[key] = ports
    return registry if held == registry.fleet(fleet) else registry.with_fleet(fleet, held)


def registry_fleet_ports(
    hosts: Mapping[str, Mapping[str, Any]],
    path: str,
    fleet: str = DEFAULT_FLEET,
    port_range: str = "25000-25999",
    reserved: Sequence[object] = (),
    fallback: str = "fail",
    frozen: bool = False,
    check_mode: bool = False,
) -> RegistryRun:
    """The fleet's ports for the hosts of this run, as the registry at ``path`` holds them.

    ``hosts`` is what berth.ports.fleet_ports takes: host -> {demand, survey}.
    Owners of the registry get its ports (rules 1 and 2 of :func:`choose_ports`);
    owners the hosts hold but the registry does not name are adopted at the
    port the most hosts hold; the rest are chosen. The registry is written,
    under its lock, before any host is changed; frozen, it is only read, and
    an owner it does not name fails. Each host then takes the fleet's ports
    or meets a conflict (``fallback`` fail) or a local port (``local``).
    """
    if fallback not in FALLBACKS:
        raise PortsError("fallback %r is not one of %s" % (fallback, ", ".join(FALLBACKS)))
    fleet = validate_fleet(fleet)
    settings = build_settings(port_range, () if reserved is None else reserved)
    views = read_fleet(hosts, settings)
    demands = dynamic_demands(views)
    claims = static_claims(views)
    taken = _surveyed(views, claims)
    majority = majority_ports(views, sorted(demands), settings.bounds)
    chosen = {}  # type: Dict[Key, PortRange]

    def change(registry: Registry) -> Registry:
        start = registry if frozen else _adopt_existing(registry, fleet, demands, majority, settings)
        after, picked = choose_ports(start, fleet, demands, taken, settings, frozen=frozen)
        chosen.clear()
        chosen.update(picked)
        return after

    if frozen:
        text = read_registry_text(path)
        change(parse_registry_text(text, path))
        write = RegistryWrite(text, text, False)
    else:
        write = update_registry(path, fleet, change, check_mode=check_mode, settings=settings)
    ports = {key: chosen[key].first for key in demands}  # type: Dict[Key, Optional[int]]
    settled = settle_fleet_ports(views, ports, sorted(demands), settings.bounds, fallback, claims=claims)
    return RegistryRun(settled, chosen, write)
