# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules and the lookup hand back: records and diff text.

Composition only: every decision stays in allocator/allocation_policy; this
file shapes their results the way the documented return values promise.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import Allocation
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import PROTOCOLS


def selected_protos(proto: Optional[str]) -> Tuple[str, ...]:
    """``tcp``/``udp`` as themselves; ``all`` or None as both."""
    return PROTOCOLS if proto in (None, "all") else (str(proto),)


def _order(row: Allocation) -> tuple:
    return (row.proto, row.first, row.last, row.owner)


def allocation_records(
    rows: Iterable[Allocation],
    owners: Optional[Sequence[str]] = None,
    proto: Optional[str] = None,
) -> List[dict]:
    """Rows as plain dicts, by proto then port; ``owners`` empty or None means every owner."""
    protos = selected_protos(proto)
    wanted = set(owners or ())
    chosen = [row for row in rows if row.proto in protos and (not wanted or row.owner in wanted)]
    return [row.as_dict() for row in sorted(chosen, key=_order)]


def freed_records(rows: Iterable[Allocation]) -> List[dict]:
    """Freed rows as ``{"proto": "tcp", "range": "LOW-HIGH"}``, by proto then port."""
    return [{"proto": row.proto, "range": str(row.range)} for row in sorted(rows, key=_order)]


# One range in diff mode: its owner, proto and ports.
DiffRange = Tuple[str, str, PortRange]


def owner_diff_ranges(owner: str, proto: str, ranges: Iterable[PortRange]) -> List[DiffRange]:
    """One owner's ranges of one proto, in the order given (oldest first)."""
    return [(owner, proto, port_range) for port_range in ranges]


def rows_diff_ranges(rows: Iterable[Allocation]) -> List[DiffRange]:
    """Rows by owner, then proto, then port."""
    return [(row.owner, row.proto, row.range) for row in sorted(rows, key=lambda r: (r.owner,) + _order(r))]


def _diff_lines(ranges: Iterable[DiffRange], with_owner: bool) -> str:
    # firewalld's LOW-HIGH/proto notation, after the owner when the diff spans several.
    return "".join(
        ("%s %s/%s\n" % (owner, port_range, proto)) if with_owner else ("%s/%s\n" % (port_range, proto))
        for owner, proto, port_range in ranges
    )


def task_diff(header: str, before: Iterable[DiffRange], after: Iterable[DiffRange], with_owner: bool = False) -> dict:
    """A module's ``diff``: one line per range before and after, under one header."""
    return dict(
        before_header=header,
        after_header=header,
        before=_diff_lines(before, with_owner),
        after=_diff_lines(after, with_owner),
    )
