# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet's port_info results as the port map and the drift check read them.

The input maps a host name to the registered result of
``berth.ports.port_info`` on that host. A host whose survey is missing,
failed, skipped or unreachable is set aside with the reason (``unread``);
the others become a :class:`SurveyedHost`: its allocations (without the pid
or anything else that differs between identical hosts), its listener
conflicts and its strays. Malformed input is a one-line PortsError naming
the host.
"""

from __future__ import annotations

from typing import Any, List, Mapping, NamedTuple, Optional, Tuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import validate_proto
from ansible_collections.berth.ports.plugins.plugin_utils.rendered_values import as_int, as_port, survey_allocation

CONFLICT_TYPES = ("unallocated", "foreign_listener", "in_use")


class Holding(NamedTuple):
    """One allocation as the map compares it: everything but when it was made."""

    owner: str
    proto: str
    first: int
    last: int
    shared: bool
    kind: str

    @property
    def range(self) -> PortRange:
        return PortRange(self.first, self.last)


class Mark(NamedTuple):
    """A listener conflict from a survey (the pid is left out: it differs between hosts)."""

    type: str
    proto: str
    port: int
    unit: Optional[str]
    owner: Optional[str]


class Stray(NamedTuple):
    host: str
    proto: str
    port: int
    pid: Optional[int]
    unit: Optional[str]


class SurveyedHost(NamedTuple):
    """One readable host's survey, sorted so that identical hosts compare equal."""

    name: str
    holdings: Tuple[Tuple[Holding, str], ...]  # (holding, created), sorted
    marks: Tuple[Mark, ...]
    strays: Tuple[Stray, ...]


def _optional_text(value: object) -> Optional[str]:
    return None if value is None or value == "" else str(value)


def _optional_pid(value: object) -> Optional[int]:
    try:
        return None if value is None else as_int(value, "pid")
    except PortsError:
        return None


def _why_unread(survey: object) -> Optional[str]:
    if not isinstance(survey, Mapping) or not survey:
        return "no port_info survey"
    if survey.get("unreachable"):
        return "unreachable: %s" % survey.get("msg", "no message")
    if survey.get("failed"):
        return "port_info failed: %s" % survey.get("msg", "no message")
    if survey.get("skipped"):
        return "port_info was skipped"
    if "allocations" not in survey:
        return "no allocations in the survey"
    return None


def _read_host(name: str, survey: Mapping[str, Any]) -> SurveyedHost:
    where = "host %s" % name
    raw_rows = survey.get("allocations")
    if not isinstance(raw_rows, (list, tuple)):
        raise PortsError("%s: allocations is not a list: %r" % (where, raw_rows))
    holdings = []  # type: List[Tuple[Holding, str]]
    for raw in raw_rows:
        held = survey_allocation(raw, where)
        kind = str(raw.get("kind") or "dynamic")
        created = str(raw.get("created") or "")
        holdings.append((Holding(held.owner, held.proto, held.first, held.last, held.shared, kind), created))
    marks = []  # type: List[Mark]
    strays = []  # type: List[Stray]
    raw_conflicts = survey.get("conflicts")
    if raw_conflicts is None:
        raw_conflicts = []
    if not isinstance(raw_conflicts, (list, tuple)):
        raise PortsError("%s: conflicts is not a list: %r" % (where, raw_conflicts))
    for raw in raw_conflicts:
        if not isinstance(raw, Mapping):
            raise PortsError("%s: conflict %r is not a dict" % (where, raw))
        kind = raw.get("type")
        if kind not in CONFLICT_TYPES:
            raise PortsError("%s: conflict type %r is not one of %s" % (where, kind, ", ".join(CONFLICT_TYPES)))
        try:
            proto = validate_proto(raw.get("proto"))
            port = as_port(raw.get("port"), "port")
        except PortsError as exc:
            raise PortsError("%s: %s listener: %s" % (where, kind, exc)) from exc
        unit = _optional_text(raw.get("unit"))
        marks.append(Mark(str(kind), proto, port, unit, _optional_text(raw.get("owner"))))
        if kind == "unallocated":
            strays.append(Stray(name, proto, port, _optional_pid(raw.get("pid")), unit))
    holdings.sort(key=lambda item: (item[0].proto, item[0].first, item[0].last, item[0].owner, item[0].kind, item[0].shared, item[1]))
    unique_marks = sorted(set(marks), key=lambda m: (m.proto, m.port, m.type, m.unit or "", m.owner or ""))
    strays.sort(key=lambda s: (s.proto, s.port, -1 if s.pid is None else s.pid, s.unit or ""))
    return SurveyedHost(name, tuple(holdings), tuple(unique_marks), tuple(strays))


def read_surveys(surveys: Mapping[str, Any]) -> Tuple[List[SurveyedHost], List[Tuple[str, str]]]:
    """The hosts whose survey can be read, and (host, why) for the others."""
    if not isinstance(surveys, Mapping):
        raise PortsError("expected a dict of host name to port_info result, got %r" % (type(surveys).__name__,))
    hosts = []  # type: List[SurveyedHost]
    unread = []  # type: List[Tuple[str, str]]
    for name in sorted(surveys, key=str):
        if not isinstance(name, str):
            raise PortsError("host name %r is not a string" % (name,))
        survey = surveys[name]
        why = _why_unread(survey)
        if why is not None:
            unread.append((name, why))
            continue
        hosts.append(_read_host(name, survey))
    return hosts, unread
