# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port map (issue 11): a fleet's port_info surveys shaped for one page.

Runs on the controller over results already gathered. Its input maps a host
name to the registered result of ``berth.ports.port_info`` on that host; its
output (:class:`PortMap`) is what ``port_map_html`` draws:

- ``rows``: hosts whose allocations and listener conflicts are the same
  (owner, proto, ports, shared, kind; listener type, port, unit, owner) are
  one row with the list of its hosts; creation times may differ between them
  and are kept per host. Rows come by host count, largest first, then name.
- ``drift``: an (owner, proto) whose ranges differ between the hosts that hold
  it, with each variant and its hosts (report.yml's ``owners_differ``); given
  the fleet registry's ranges (``expected``), an owner it names drifts where
  a host holds other ranges than the registry's, whatever most hosts hold.
- ``strays``: listeners in the range without an allocation, per host.
- ``doubles``: ports of one host held by two or more allocations (shared
  holders, or rows that overlap for any other reason).
- ``owners``: every owner with a colour that depends on its name only, the
  number of hosts that hold it and whether it drifts.
- ``unread``: hosts whose survey is missing, failed or skipped.

Every allocation of every read host appears in exactly one row, in exactly
one segment; the rows' host counts add up to the number of read hosts.
Reading the surveys is ``fleet_surveys``; finding drift, ``fleet_drift``.
Nothing here imports Ansible: the filter ``berth.ports.port_map_html`` is a
thin wrapper and pytest tests this directly.
"""

from __future__ import annotations

import colorsys
import hashlib
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs, merge, parse_range
from ansible_collections.berth.ports.plugins.module_utils.request import PROTOCOLS
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_drift import Drift, find_drift
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_surveys import Holding, Mark, Stray, SurveyedHost, read_surveys


class Segment(NamedTuple):
    """One allocation of a row; ``created`` holds one time per host of the row, in host order."""

    holding: Holding
    created: Tuple[str, ...]
    drift: bool
    double: bool  # some of its ports are held by another allocation too, not every holder shared
    held_with: Tuple[str, ...] = ()  # the other owners of the host holding some of its ports

    @property
    def since(self) -> str:
        """The earliest creation time among the row's hosts."""
        known = [c for c in self.created if c]
        return min(known) if known else ""

    @property
    def until(self) -> str:
        """The latest creation time among the row's hosts."""
        known = [c for c in self.created if c]
        return max(known) if known else ""


class MapRow(NamedTuple):
    hosts: Tuple[str, ...]
    segments: Tuple[Segment, ...]
    marks: Tuple[Mark, ...]
    free: Dict[str, int]  # per proto: ports of the range no allocation covers
    used: Dict[str, int]  # per proto: ports of the range some allocation covers

    @property
    def count(self) -> int:
        return len(self.hosts)


class Double(NamedTuple):
    """Ports of one host that two or more allocations hold; ``shared`` when every holder asked to share."""

    host: str
    proto: str
    first: int
    last: int
    owners: Tuple[str, ...]
    shared: bool


class Owner(NamedTuple):
    name: str
    color: str
    hosts: int
    drift: bool


class PortMap(NamedTuple):
    bounds: PortRange
    rows: Tuple[MapRow, ...]
    drift: Tuple[Drift, ...]
    strays: Tuple[Stray, ...]
    doubles: Tuple[Double, ...]
    owners: Tuple[Owner, ...]
    unread: Tuple[Tuple[str, str], ...]  # (host, why)

    @property
    def hosts(self) -> int:
        """Hosts read (those in some row)."""
        return sum(row.count for row in self.rows)


# ------------------------------------------------------------------ colour


def owner_color(owner: str) -> str:
    """A colour for ``owner`` that depends on its name only (same on every run and machine).

    Hue from a SHA-256 of the name; lightness and saturation vary a little so
    that owners of nearby hues still tell apart, and stay in a band where black
    text and the red, black and white marks of the map remain visible.
    """
    digest = hashlib.sha256(owner.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536.0
    lightness = 0.50 + (digest[2] % 4) * 0.05  # 0.50 .. 0.65
    saturation = 0.50 + (digest[3] % 3) * 0.12  # 0.50 .. 0.74
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return "#%02x%02x%02x" % (round(red * 255), round(green * 255), round(blue * 255))


# ------------------------------------------------------------------ input


# ------------------------------------------------------------------ shaping


def _doubles(host: SurveyedHost) -> List[Double]:
    """Runs of ports that two or more allocations of this host hold, with their owners."""
    found = []  # type: List[Double]
    for proto in PROTOCOLS:
        rows = [h for h, unused in host.holdings if h.proto == proto]
        events = sorted({r.first for r in rows} | {r.last + 1 for r in rows})
        current = None  # type: Optional[List[Any]]
        for index, start in enumerate(events[:-1]):
            end = events[index + 1] - 1
            covering = [r for r in rows if r.first <= start and end <= r.last]
            holders = (tuple(sorted({r.owner for r in covering})), all(r.shared for r in covering))
            if len(covering) > 1:
                if current is not None and current[1] == start - 1 and current[2] == holders:
                    current[1] = end
                else:
                    if current is not None:
                        found.append(Double(host.name, proto, current[0], current[1], *current[2]))
                    current = [start, end, holders]
            elif current is not None:
                found.append(Double(host.name, proto, current[0], current[1], *current[2]))
                current = None
        if current is not None:
            found.append(Double(host.name, proto, current[0], current[1], *current[2]))
    return found


def _usage(holdings: Sequence[Holding], bounds: PortRange) -> Tuple[Dict[str, int], Dict[str, int]]:
    free = {}  # type: Dict[str, int]
    used = {}  # type: Dict[str, int]
    for proto in PROTOCOLS:
        taken = [PortRange(max(h.first, bounds.first), min(h.last, bounds.last))
                 for h in holdings if h.proto == proto and h.range.overlaps(bounds)]
        free[proto] = sum(run.size for run in free_runs(bounds, taken))
        used[proto] = sum(run.size for run in merge(taken))
    return free, used


def shape_port_map(
    surveys: Mapping[str, Any], port_range: str = "25000-25999", expected: Optional[Mapping[Tuple[str, str], str]] = None
) -> PortMap:
    """Shape ``{host: port_info result}`` into a :class:`PortMap`; PortsError on bad input.

    ``expected``: the fleet registry's ranges per (owner, proto), "A-B", that drift is measured against.
    """
    bounds = parse_range(port_range)
    hosts, unread = read_surveys(surveys)

    drift = find_drift(hosts, expected)
    drifting = {(d.owner, d.proto) for d in drift}

    groups = {}  # type: Dict[Tuple[Any, ...], List[SurveyedHost]]
    for host in hosts:
        signature = (tuple(h for h, unused in host.holdings), host.marks)
        groups.setdefault(signature, []).append(host)

    doubles = []  # type: List[Double]
    rows = []  # type: List[MapRow]
    for (holdings, marks), members in groups.items():
        first_doubles = _doubles(members[0])
        for member in members:
            doubles.extend(d._replace(host=member.name) for d in first_doubles)
        segments = []
        for index, holding in enumerate(holdings):
            touching = [d for d in first_doubles
                        if d.proto == holding.proto and holding.range.overlaps(PortRange(d.first, d.last))]
            segments.append(Segment(
                holding=holding,
                created=tuple(member.holdings[index][1] for member in members),
                drift=(holding.owner, holding.proto) in drifting,
                double=any(not d.shared for d in touching),
                held_with=tuple(sorted({o for d in touching for o in d.owners} - {holding.owner})),
            ))
        free, used = _usage(holdings, bounds)
        rows.append(MapRow(tuple(m.name for m in members), tuple(segments), marks, free, used))
    rows.sort(key=lambda row: (-row.count, row.hosts[0]))

    held_by = {}  # type: Dict[str, Set[str]]
    for host in hosts:
        for holding, unused_created in host.holdings:
            held_by.setdefault(holding.owner, set()).add(host.name)
    drifting_owners = {owner for owner, unused_proto in drifting}
    owners = tuple(
        Owner(name, owner_color(name), len(held_by[name]), name in drifting_owners) for name in sorted(held_by)
    )
    strays = tuple(stray for host in hosts for stray in host.strays)
    doubles.sort(key=lambda d: (d.host, d.proto, d.first))
    return PortMap(bounds, tuple(rows), drift, strays, tuple(doubles), owners, tuple(unread))


def port_map_summary(port_map: PortMap) -> Dict[str, Any]:
    """The headline numbers of a map, as plain data (the page's header, and tests)."""
    return {
        "range": str(port_map.bounds),
        "hosts": port_map.hosts,
        "rows": len(port_map.rows),
        "owners": len(port_map.owners),
        "drift": ["%s/%s" % (d.owner, d.proto) for d in port_map.drift],
        "strays": len(port_map.strays),
        "doubles": sum(1 for d in port_map.doubles if not d.shared),
        "shared": sum(1 for d in port_map.doubles if d.shared),
        "unread": [host for host, unused in port_map.unread],
    }
