# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values as they reach the controller-side filters from registered results
and Jinja: numbers (ints, or strings of digits where a template rendered
them) and port_info's allocation records."""

from __future__ import annotations

import re
from typing import Mapping, NamedTuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT, MIN_PORT
from ansible_collections.berth.ports.plugins.module_utils.request import validate_proto

DIGITS_RE = re.compile(r"[0-9]+")


def as_int(value: object, what: str) -> int:
    """An int, or a string of digits; nothing else (not a bool, not a float)."""
    if isinstance(value, bool):
        raise PortsError("%s %r is not an integer" % (what, value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and DIGITS_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise PortsError("%s %r is not an integer" % (what, value))


def as_port(value: object, what: str) -> int:
    """A port number, 1-65535."""
    port = as_int(value, what)
    if not MIN_PORT <= port <= MAX_PORT:
        raise PortsError("%s %d is outside %d-%d" % (what, port, MIN_PORT, MAX_PORT))
    return port


class SurveyAllocation(NamedTuple):
    """One allocation record of a registered berth.ports.port_info result, checked."""

    owner: str
    proto: str
    first: int
    last: int
    shared: bool


def survey_allocation(raw: object, where: str) -> SurveyAllocation:
    """Check one record of port_info's ``allocations`` as it reaches the controller."""
    if not isinstance(raw, Mapping):
        raise PortsError("%s: allocation %r is not a dict" % (where, raw))
    owner = raw.get("owner")
    if not isinstance(owner, str) or not owner:
        raise PortsError("%s: allocation %r has no owner" % (where, dict(raw)))
    try:
        proto = validate_proto(raw.get("proto"))
        first = as_port(raw.get("first"), "first port")
        last = as_port(raw.get("last"), "last port")
    except PortsError as exc:
        raise PortsError("%s: allocation of owner %s: %s" % (where, owner, exc)) from exc
    if first > last:
        raise PortsError("%s: allocation of owner %s/%s is inverted: %d-%d" % (where, owner, proto, first, last))
    return SurveyAllocation(owner, proto, first, last, bool(raw.get("shared")))
