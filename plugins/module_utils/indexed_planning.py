# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""First fit for a dynamic request over the free list (free_runs), reading
the owner's rows and a few free runs by index instead of every row: the
path of nearly every port_allocate task. It plans what
allocation_policy.plan_allocation plans (test_free_list checks both)."""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import KIND_DYNAMIC, Allocation, Plan, held_ports
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, bands, free_runs, merge
from ansible_collections.berth.ports.plugins.module_utils.request import AllocationRequest, Settings


def _union_runs(first: Iterator[PortRange], second: Sequence[PortRange]) -> Iterator[PortRange]:
    """Merge two ascending streams of ranges into ascending maximal runs (lazily)."""
    pending = None  # type: Optional[PortRange]
    for run in heapq.merge(first, sorted(second)):
        if pending is not None and run.first <= pending.last + 1:
            if run.last > pending.last:
                pending = PortRange(pending.first, run.last)
            continue
        if pending is not None:
            yield pending
        pending = run
    if pending is not None:
        yield pending


def plan_dynamic_indexed(
    request: AllocationRequest,
    settings: Settings,
    mine: Sequence[Allocation],
    listening: Iterable[int],
    now: str,
    unheld_from: Callable[[int], Iterator[PortRange]],
    overlapping: Callable[[PortRange], Sequence[Allocation]],
) -> Optional[Plan]:
    """What ``plan_allocation`` plans for a dynamic request, without every row in hand.

    ``mine`` are the owner's rows of the proto (oldest first), ``unheld_from(p)``
    yields the maximal runs no row covers from port ``p`` up, and
    ``overlapping(r)`` the rows holding any port of ``r``. Returns None when the
    request cannot be met: the caller then plans with every row
    (``plan_allocation``), which also words the error.
    """
    if request.port is not None:
        raise PortsError("internal error: indexed planning is for dynamic requests only")
    held = sum(row.last - row.first + 1 for row in mine)
    if not request.keep_existing and mine and held == request.count:
        return Plan()
    replaced = () if request.keep_existing else tuple(mine)
    exempt = set(row.id for row in replaced)
    own = merge(row.range for row in replaced)
    own_ports = held_ports(replaced)
    soft = list(settings.reserved)
    if settings.skip_listening:
        soft.extend(PortRange(p, p) for p in listening if p not in own_ports)
    soft_blocked = []  # type: List[PortRange]
    for busy in merge(soft):
        soft_blocked.extend(free_runs(busy, own) if own else [busy])
    soft_blocked = merge(soft_blocked)
    # The owner's own ports, where no other row holds them, are free for it.
    released = []  # type: List[PortRange]
    for span in own:
        others = [row.range for row in overlapping(span) if row.id not in exempt]
        released.extend(free_runs(span, others))

    def usable(band: PortRange) -> Iterator[PortRange]:
        for run in _union_runs(unheld_from(band.first), released):
            if run.first > band.last:
                return
            clipped = PortRange(max(run.first, band.first), min(run.last, band.last))
            if clipped.first <= clipped.last:
                yield from free_runs(clipped, soft_blocked)

    chosen = None  # type: Optional[PortRange]
    if replaced:
        in_place = PortRange(replaced[0].first, replaced[0].first + request.count - 1)
        if settings.bounds.covers(in_place) and not any(in_place.overlaps(b) for b in soft_blocked):
            for run in usable(in_place):
                chosen = in_place if run.covers(in_place) else None
                break
    if chosen is None:
        for band in list(bands(settings.bounds)) + [settings.bounds]:
            for run in usable(band):
                if run.size >= request.count:
                    chosen = PortRange(run.first, run.first + request.count - 1)
                    break
            if chosen is not None:
                break
    if chosen is None:
        return None
    new = Allocation(request.owner, request.proto, chosen.first, chosen.last, False, KIND_DYNAMIC, now)
    return Plan(remove=replaced, add=(new,))
