# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet port choice (issue 9): one port per (owner, proto) on every host of a play.

Runs on the controller, before any host is changed. Its input is, per host,
the entries the play would give ``berth.ports.port_allocations`` (the demand)
and the registered result of ``berth.ports.port_info`` on that host (the
survey). Its output is, per host, the same entries with every dynamic one
turned into a static request for the fleet port, plus the conflicts that stop
a host from taking that port and the entries that fell back to a host-local
port.

How the fleet port of an (owner, proto) is chosen:

- an owner that already holds ports of that proto on some hosts keeps the
  port the most hosts hold (its lowest first port on each host; a tie goes to
  the lowest port); hosts holding it elsewhere move, hosts joining take it;
- a new owner gets the lowest run of its largest count that is free on every
  host, in first-fit order (upper band first, then the whole range), never
  outside the range, never in ``reserved``.

Existing owners are settled first, then new ones, each group in sorted
(owner, proto) order, so the result depends on the input only, never on the
order of a dict. Reading the hosts' demand and survey is ``fleet_hosts``.
Nothing here imports Ansible: the filter plugin
``berth.ports.fleet_ports`` is a thin wrapper and pytest tests this directly.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import first_fit, largest_run
from ansible_collections.berth.ports.plugins.module_utils.declared_entries import DeclaredEntry
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs, merge
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_hosts import (
    Claim,
    HostView,
    Key,
    Listener,
    dynamic_demands,
    read_fleet,
    static_claims,
)

FALLBACKS = ("fail", "local")


class Settled(NamedTuple):
    """What one dynamic entry became on one host."""

    entry: Dict[str, Any]
    conflict: Optional[Dict[str, Any]]
    local: Optional[Dict[str, Any]]


# --------------------------------------------------------------- the choice


def _majority_port(held: Mapping[str, int]) -> int:
    """The port the most hosts hold; a tie goes to the lowest port."""
    tally = {}  # type: Dict[int, int]
    for port in held.values():
        tally[port] = tally.get(port, 0) + 1
    return min(tally, key=lambda port: (-tally[port], port))


def _blocked_everywhere(
    views: Sequence[HostView],
    key: Key,
    reserved: Sequence[PortRange],
    given: Sequence[PortRange],
    claims: Mapping[str, Sequence[Claim]],
) -> List[PortRange]:
    """What a new owner's run may not touch on any host."""
    owner, proto = key
    blocked = list(reserved) + list(given)
    for view in views:
        blocked.extend(row.range for row in view.rows if row.proto == proto and row.owner != owner)
        blocked.extend(PortRange(seen.port, seen.port) for seen in view.listeners if seen.proto == proto)
        blocked.extend(c.range for c in claims[view.name] if c.proto == proto and c.owner != owner)
    return merge(blocked)


def _listener_text(listener: Listener) -> str:
    parts = []
    if listener.unit:
        parts.append("unit %s" % listener.unit)
    if listener.pid is not None:
        parts.append("pid %d" % listener.pid)
    return "a listener (%s)" % (", ".join(parts) if parts else "process unknown")


def _holders(
    view: HostView,
    key: Key,
    wanted: PortRange,
    bounds: PortRange,
    claims: Sequence[Claim],
) -> List[str]:
    """Who keeps ``wanted`` from the owner on this host, lowest port first; empty when free."""
    owner, proto = key
    found = []  # type: List[Tuple[int, str]]
    if not bounds.covers(wanted):
        found.append((wanted.first, "the end of the range %s" % (bounds,)))
    for row in view.rows:
        if row.proto == proto and row.owner != owner and row.range.overlaps(wanted):
            shared = ", shared" if row.shared else ""
            found.append((max(row.range.first, wanted.first), "owner %s (%s%s)" % (row.owner, row.range, shared)))
    for claim in claims:
        if claim.proto == proto and claim.owner != owner and claim.range.overlaps(wanted):
            text = "owner %s (%s, asked in this run)" % (claim.owner, claim.range)
            found.append((max(claim.range.first, wanted.first), text))
    for listener in view.listeners:
        if listener.proto == proto and wanted.contains(listener.port):
            found.append((listener.port, _listener_text(listener)))
    texts = []  # type: List[str]
    for unused_port, text in sorted(found, key=lambda item: item[0]):
        if text not in texts:
            texts.append(text)
    return texts


def majority_ports(views: Sequence[HostView], keys: Sequence[Key], bounds: PortRange) -> Dict[Key, int]:
    """The port the most hosts hold, for each of ``keys`` some host holds (the owners that exist).

    An owner's port on a host is its lowest first port inside the range there.
    Hosts whose demand frees the owner (count 0) do not count: they are about
    to give their port back. One pass over every host's rows, whatever the
    number of keys.
    """
    wanted = set(keys)
    held = {}  # type: Dict[Key, Dict[str, int]]
    for view in views:
        freeing = {entry.key for entry in view.entries if entry.count == 0}
        lowest = {}  # type: Dict[Key, int]
        for row in view.rows:
            key = (row.owner, row.proto)
            if key in wanted and key not in freeing and bounds.contains(row.range.first):
                lowest[key] = min(lowest.get(key, row.range.first), row.range.first)
        for key, first in lowest.items():
            held.setdefault(key, {})[view.name] = first
    return {key: _majority_port(by_host) for key, by_host in held.items()}


def choose_fleet_ports(
    hosts: Mapping[str, Mapping[str, Any]],
    port_range: str = "25000-25999",
    reserved: Sequence[object] = (),
    fallback: str = "fail",
) -> Dict[str, Dict[str, Any]]:
    """Per host: the port_allocations entries with fleet ports, the conflicts, the local fallbacks.

    ``hosts`` maps a host name to ``{"demand": [entries], "survey": port_info's
    result}``. The result maps every host name to ``{"allocations": [...],
    "conflicts": [...], "local": [...]}`` (see the module docstring and the
    berth.ports.fleet_ports filter's documentation). Bad input raises
    PortsError with a one-line message.
    """
    if fallback not in FALLBACKS:
        raise PortsError("fallback %r is not one of %s" % (fallback, ", ".join(FALLBACKS)))
    settings = build_settings(port_range, () if reserved is None else reserved)
    bounds = settings.bounds
    reserved_runs = merge(settings.reserved)
    views = read_fleet(hosts, settings)

    wanted_count = dynamic_demands(views)
    majority = majority_ports(views, sorted(wanted_count), bounds)
    existing = sorted(key for key in wanted_count if key in majority)
    new = sorted(key for key in wanted_count if key not in majority)

    claims = static_claims(views)
    given = {}  # type: Dict[str, List[PortRange]]
    fleet = {}  # type: Dict[Key, Optional[int]]
    why_none = {}  # type: Dict[Key, Tuple[str, str]]
    for key in existing:
        port = majority[key]
        fleet[key] = port
        given.setdefault(key[1], []).append(PortRange(port, min(bounds.last, port + wanted_count[key] - 1)))
    for key in new:
        blocked = _blocked_everywhere(views, key, reserved_runs, given.get(key[1], ()), claims)
        run = first_fit(bounds, blocked, wanted_count[key])
        fleet[key] = None if run is None else run.first
        if run is not None:
            given.setdefault(key[1], []).append(run)
            continue
        best = largest_run(free_runs(bounds, blocked))
        why_none[key] = (
            "no run of %d free %s ports on every host" % (wanted_count[key], key[1]),
            "in %s; the largest run free on every host is %s"
            % (bounds, "%d ports (%s)" % (best.size, best) if best else "none"),
        )
    return settle_fleet_ports(views, fleet, existing + new, bounds, fallback, why_none, claims)


def settle_fleet_ports(
    views: Sequence[HostView],
    fleet: Mapping[Key, Optional[int]],
    order: Sequence[Key],
    bounds: PortRange,
    fallback: str,
    why_none: Optional[Mapping[Key, Tuple[str, str]]] = None,
    claims: Optional[Mapping[str, Sequence[Claim]]] = None,
) -> Dict[str, Dict[str, Any]]:
    """What each host does with the fleet's ports: takes them, or meets a conflict or a local fallback.

    ``fleet`` gives every dynamic (owner, proto) its fleet port (None: none
    could be found, ``why_none`` says why); ``order`` is the order in which
    owners claim their ports on a host; ``claims``, the hosts' static asks
    when the caller has them already.
    """
    if fallback not in FALLBACKS:
        raise PortsError("fallback %r is not one of %s" % (fallback, ", ".join(FALLBACKS)))
    why_none = why_none or {}
    claims = static_claims(views) if claims is None else claims
    rank = {key: index for index, key in enumerate(order)}
    result = {}  # type: Dict[str, Dict[str, Any]]
    for view in views:
        host_claims = list(claims[view.name])
        settled = {}  # type: Dict[Key, Settled]
        # Existing owners first, then new ones: an earlier owner's fleet ports
        # on this host are claimed before a later one checks its own.
        for entry in sorted((e for e in view.entries if e.dynamic), key=lambda e: rank[e.key]):
            port = fleet[entry.key]
            if port is None:
                settled[entry.key] = _refuse(view.name, entry, None, None, why_none[entry.key], fallback)
                continue
            wanted = PortRange(port, port + entry.count - 1)
            holders = _holders(view, entry.key, wanted, bounds, host_claims)
            if holders:
                settled[entry.key] = _refuse(view.name, entry, port, wanted, ("; ".join(holders), ""), fallback)
                continue
            host_claims.append(Claim(entry.owner, entry.proto, wanted))
            settled[entry.key] = Settled(entry._replace(port=port, shared=False).as_dict(), None, None)
        outcome = {"allocations": [], "conflicts": [], "local": []}  # type: Dict[str, List[Dict[str, Any]]]
        for entry in view.entries:
            if not entry.dynamic:
                outcome["allocations"].append(entry.as_dict())
                continue
            done = settled[entry.key]
            outcome["allocations"].append(done.entry)
            if done.conflict is not None:
                outcome["conflicts"].append(done.conflict)
            if done.local is not None:
                outcome["local"].append(done.local)
        result[view.name] = dict(outcome)
    return result


def _refuse(
    host: str,
    entry: DeclaredEntry,
    port: Optional[int],
    wanted: Optional[PortRange],
    why: Tuple[str, str],
    fallback: str,
) -> Settled:
    """An entry that cannot have its fleet port on this host: a conflict, or a host-local port."""
    if fallback == "local":
        return Settled(
            entry._replace(port=None, shared=False).as_dict(),
            None,
            {"owner": entry.owner, "proto": entry.proto, "fleet_port": port},
        )
    holder, detail = why
    label = "host %s: owner %s/%s" % (host, entry.owner, entry.proto)
    if wanted is None:
        msg = "%s gets no fleet port: %s %s" % (label, holder, detail)
    else:
        msg = "%s cannot take its fleet ports %s, blocked by %s" % (label, wanted, holder)
    conflict = {
        "owner": entry.owner,
        "proto": entry.proto,
        "port": port,
        "ports": None if wanted is None else str(wanted),
        "holder": holder,
        "msg": msg,
    }
    return Settled(entry._replace(port=port, shared=False).as_dict(), conflict, None)
