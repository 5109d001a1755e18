# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inclusive port ranges: parsing, formatting and the static/dynamic bands."""

from __future__ import annotations

import re
from typing import Iterable, List, NamedTuple, Sequence

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

MIN_PORT = 1
MAX_PORT = 65535

DEFAULT_RANGE = "25000-25999"

_RANGE_RE = re.compile(r"^\s*([0-9]{1,5})\s*-\s*([0-9]{1,5})\s*$")
_PORT_RE = re.compile(r"^\s*([0-9]{1,5})\s*$")


class PortRange(NamedTuple):
    """Ports ``first`` to ``last``, both included."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return "%d-%d" % (self.first, self.last)

    def overlaps(self, other: "PortRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    def contains(self, port: int) -> bool:
        return self.first <= port <= self.last

    def covers(self, other: "PortRange") -> bool:
        return self.first <= other.first and other.last <= self.last

    def ports(self) -> List[int]:
        return list(range(self.first, self.last + 1))


def _check_port(port: int, text: object) -> int:
    if not MIN_PORT <= port <= MAX_PORT:
        raise PortsError("port %r is outside %d-%d" % (text, MIN_PORT, MAX_PORT))
    return port


def parse_range(text: object) -> PortRange:
    """Parse "LOW-HIGH" (a bare "N" means N-N); refuse inverted or out-of-bounds ranges."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise PortsError("range %r is not a string of the form LOW-HIGH" % (text,))
    if isinstance(text, int):
        port = _check_port(text, text)
        return PortRange(port, port)
    match = _RANGE_RE.match(text)
    if match:
        first = _check_port(int(match.group(1)), text)
        last = _check_port(int(match.group(2)), text)
        if first > last:
            raise PortsError("range %r is inverted: %d is above %d" % (text, first, last))
        return PortRange(first, last)
    match = _PORT_RE.match(text)
    if match:
        port = _check_port(int(match.group(1)), text)
        return PortRange(port, port)
    raise PortsError("range %r is not of the form LOW-HIGH" % (text,))


def parse_port_list(items: Iterable[object], what: str = "ports") -> List[PortRange]:
    """Parse a list of ports and "LOW-HIGH" strings, as `reserved` and `ports` take them."""
    if isinstance(items, (str, int)) and not isinstance(items, bool):
        items = [items]
    elif not isinstance(items, (list, tuple, set, frozenset)):
        raise PortsError("%s %r is not a list of ports and LOW-HIGH ranges" % (what, items))
    ranges = []
    for item in items:
        try:
            ranges.append(parse_range(item))
        except PortsError as exc:
            raise PortsError("%s: %s" % (what, exc))
    return ranges


def static_band_size(size: int) -> int:
    """Size of the static band of a range of ``size`` ports (Kubernetes' NodePort rule).

    A range of 16 ports or fewer has no static band: SPEC.md's own example
    (30000-30015, which is 16 ports, gives 0) and Kubernetes' portallocator
    (``if rangeSize <= min``) agree on that, against the SPEC's "fewer than 16".
    """
    if size <= 16:
        return 0
    return min(max(16, size // 32), 128)


def bands(bounds: PortRange) -> Sequence[PortRange]:
    """The (dynamic, static) bands of ``bounds``: upper band first, the order dynamic
    allocation searches them in. A band of size 0 is left out."""
    static = static_band_size(bounds.size)
    result = []
    if static < bounds.size:
        result.append(PortRange(bounds.first + static, bounds.last))
    if static:
        result.append(PortRange(bounds.first, bounds.first + static - 1))
    return result


def merge(ranges: Iterable[PortRange]) -> List[PortRange]:
    """Sort and coalesce overlapping or adjacent ranges."""
    merged = []  # type: List[PortRange]
    for current in sorted(ranges):
        if merged and current.first <= merged[-1].last + 1:
            if current.last > merged[-1].last:
                merged[-1] = PortRange(merged[-1].first, current.last)
        else:
            merged.append(current)
    return merged


def free_runs(bounds: PortRange, taken: Iterable[PortRange]) -> List[PortRange]:
    """The maximal runs of ports inside ``bounds`` that no range in ``taken`` covers."""
    runs = []
    cursor = bounds.first
    for busy in merge(taken):
        if busy.last < cursor:
            continue
        if busy.first > bounds.last:
            break
        if busy.first > cursor:
            runs.append(PortRange(cursor, busy.first - 1))
        cursor = max(cursor, busy.last + 1)
    if cursor <= bounds.last:
        runs.append(PortRange(cursor, bounds.last))
    return runs
