# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's hosts as the fleet port choice reads them: per host, its demand and its survey.

A host's demand is the list of entries the play would give
``berth.ports.port_allocations`` (parsed by the same rules, with the digit
strings Jinja renders turned back into numbers); its survey is the
registered result of ``berth.ports.port_info`` on it: the rows it holds and
the listeners no row covers. Anything malformed is a one-line PortsError
naming the host. Shared by the ``fleet_ports`` filter and the fleet registry.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.declared_entries import DeclaredEntry, build_declaration
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, validate_proto
from ansible_collections.berth.ports.plugins.plugin_utils.rendered_values import DIGITS_RE, as_int, as_port, survey_allocation

Key = Tuple[str, str]  # (owner, proto)


class Row(NamedTuple):
    """One allocation row of a host's survey."""

    owner: str
    proto: str
    range: PortRange
    shared: bool


class Listener(NamedTuple):
    """An ``unallocated`` conflict of a survey: a listener in the range that no row covers."""

    proto: str
    port: int
    pid: Optional[int]
    unit: Optional[str]


class HostView(NamedTuple):
    name: str
    entries: Tuple[DeclaredEntry, ...]
    rows: Tuple[Row, ...]
    listeners: Tuple[Listener, ...]


class Claim(NamedTuple):
    """Ports this choice gives (or a static entry asks) on a host, before any survey shows them."""

    owner: str
    proto: str
    range: PortRange


def _as_list(value: object, what: str) -> Sequence[object]:
    if isinstance(value, (list, tuple)):
        return value
    raise PortsError("%s is not a list: %r" % (what, value))


def _numbers_from_jinja(raw: object) -> object:
    """The entry with count and port as ints where Jinja rendered them as digit strings."""
    if not isinstance(raw, Mapping):
        return raw
    entry = dict(raw)
    for name in ("count", "port"):
        value = entry.get(name)
        if isinstance(value, str) and DIGITS_RE.fullmatch(value.strip()):
            entry[name] = int(value.strip())
    return entry


def _optional_int(value: object) -> Optional[int]:
    if value is None or isinstance(value, bool):
        return None
    try:
        return as_int(value, "pid")
    except PortsError:
        return None


def _read_survey(host: str, survey: object) -> Tuple[Tuple[Row, ...], Tuple[Listener, ...]]:
    where = "host %s: survey" % host
    if not isinstance(survey, Mapping):
        raise PortsError("%s is not the registered result of berth.ports.port_info: %r" % (where, survey))
    if survey.get("failed"):
        raise PortsError("%s failed: %s" % (where, survey.get("msg", "no message")))
    if survey.get("skipped"):
        raise PortsError("%s was skipped; every host of the play needs a port_info survey" % where)
    if "allocations" not in survey:
        raise PortsError("%s has no allocations; register berth.ports.port_info's result" % where)
    rows = []  # type: List[Row]
    for raw in _as_list(survey["allocations"], "%s allocations" % where):
        held = survey_allocation(raw, where)
        rows.append(Row(held.owner, held.proto, PortRange(held.first, held.last), held.shared))
    listeners = []  # type: List[Listener]
    conflicts = survey.get("conflicts")
    for raw in _as_list([] if conflicts is None else conflicts, "%s conflicts" % where):
        if not isinstance(raw, Mapping):
            raise PortsError("%s: conflict %r is not a dict" % (where, raw))
        if raw.get("type") != "unallocated":
            continue  # on ports some row already holds: the rows block them
        try:
            proto = validate_proto(raw.get("proto"))
            port = as_port(raw.get("port"), "port")
        except PortsError as exc:
            raise PortsError("%s: unallocated listener: %s" % (where, exc)) from exc
        unit = raw.get("unit")
        listeners.append(Listener(proto, port, _optional_int(raw.get("pid")), str(unit) if unit else None))
    rows.sort(key=lambda row: (row.proto, row.range, row.owner))
    listeners.sort(key=lambda seen: (seen.proto, seen.port, -1 if seen.pid is None else seen.pid, seen.unit or ""))
    return tuple(rows), tuple(listeners)


def _read_host(name: str, data: object, settings: Settings) -> HostView:
    if not isinstance(data, Mapping):
        raise PortsError("host %s: expected a dict with demand and survey, got %r" % (name, data))
    if "survey" not in data:
        raise PortsError("host %s has no survey; register berth.ports.port_info's result as its survey" % name)
    rows, listeners = _read_survey(name, data["survey"])
    demand = data.get("demand")
    raw_entries = _as_list([] if "demand" not in data else demand, "host %s: demand" % name)
    try:
        entries = build_declaration([_numbers_from_jinja(raw) for raw in raw_entries], settings)
    except PortsError as exc:
        raise PortsError("host %s: %s" % (name, exc)) from exc
    return HostView(name, tuple(entries), rows, listeners)


def read_fleet(hosts: object, settings: Settings) -> List[HostView]:
    """Every host's demand and survey, checked, in sorted host order (PortsError when malformed)."""
    if not isinstance(hosts, Mapping):
        raise PortsError("hosts must be a dict of host name to {demand, survey}, got %r" % (hosts,))
    for name in hosts:
        if not isinstance(name, str):
            raise PortsError("host name %r is not a string" % (name,))
    return [_read_host(str(name), hosts[name], settings) for name in sorted(hosts, key=str)]


def static_claims(views: Sequence[HostView]) -> Dict[str, List[Claim]]:
    """Per host, the ports its static entries ask for: no fleet port may land on another owner's."""
    claims = {}  # type: Dict[str, List[Claim]]
    for view in views:
        claims[view.name] = []
        for entry in view.entries:
            wanted = entry.static_range
            if wanted is not None:
                claims[view.name].append(Claim(entry.owner, entry.proto, wanted))
    return claims


def dynamic_demands(views: Sequence[HostView]) -> Dict[Key, int]:
    """Who asks for a dynamic port of which proto, and how many ports at most on any host."""
    wanted_count = {}  # type: Dict[Key, int]
    for view in views:
        for entry in view.entries:
            if entry.dynamic:
                wanted_count[entry.key] = max(wanted_count.get(entry.key, 0), entry.count)
    return wanted_count
