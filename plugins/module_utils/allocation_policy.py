# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allocation policy as pure functions: existing rows + request -> plan.

Nothing here touches a file, so the same plan serves check mode (shown, not
applied) and a real run (applied in the very transaction that read the rows).

This file plans every request from all the rows of its proto (static ports,
the wording of a request that cannot be met, deallocation, the survey's
view). The common dynamic request is planned by indexed_planning, and the
row and plan types live in allocation_rows; both are re-exported here.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Set

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import (  # noqa: F401 (re-exported)
    KIND_DYNAMIC,
    KIND_STATIC,
    ORIGIN_AGENT,
    ORIGIN_LIBRARY,
    ORIGIN_PORT_ALLOCATE,
    ORIGIN_PORT_ALLOCATIONS,
    ORIGIN_UNKNOWN,
    Allocation,
    Plan,
    apply_plan,
    held_ports as _held_ports,
    owner_ranges,
)
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.indexed_planning import plan_dynamic_indexed  # noqa: F401 (re-exported)
from ansible_collections.berth.ports.plugins.module_utils.port_range import (
    PortRange,
    bands,
    free_runs,
    merge,
)
from ansible_collections.berth.ports.plugins.module_utils.request import AllocationRequest, Settings


def _describe(ports: Iterable[int]) -> str:
    runs = merge(PortRange(p, p) for p in ports)
    return ", ".join(str(run.first) if run.size == 1 else str(run) for run in runs)


def largest_run(runs: Sequence[PortRange]) -> Optional[PortRange]:
    """The largest run, the lowest one on a tie (deterministic)."""
    best = None  # type: Optional[PortRange]
    for run in runs:
        if best is None or run.size > best.size:
            best = run
    return best


def dynamic_blocked(
    rows: Iterable[Allocation],
    settings: Settings,
    listening: Iterable[int],
    exempt: Sequence[Allocation] = (),
) -> List[PortRange]:
    """Ranges dynamic allocation may not hand out: held (shared or not), reserved, listened on.

    ``exempt`` rows are the owner's own, being replaced: their ports stay usable
    even when reserved since or listened on (the owner's own service is the
    listener). Other owners' rows always block, even where they overlap the
    owner's own shared ports.
    """
    exempt_ids = set(id(row) for row in exempt)
    own = merge(row.range for row in exempt)
    own_ports = _held_ports(exempt)
    soft = list(settings.reserved)
    if settings.skip_listening:
        soft.extend(PortRange(p, p) for p in listening if p not in own_ports)
    blocked = [row.range for row in rows if id(row) not in exempt_ids]
    for busy in merge(soft):
        blocked.extend(free_runs(busy, own) if own else [busy])
    return merge(blocked)


def first_fit(bounds: PortRange, blocked: Sequence[PortRange], count: int) -> Optional[PortRange]:
    """Lowest run of ``count`` free ports: upper (dynamic) band first, then anywhere."""
    for band in list(bands(bounds)) + [bounds]:
        for run in free_runs(band, blocked):
            if run.size >= count:
                return PortRange(run.first, run.first + count - 1)
    return None


def plan_allocation(
    request: AllocationRequest,
    settings: Settings,
    rows: Sequence[Allocation],
    listening: Iterable[int],
    now: str,
) -> Plan:
    """Plan ``request`` against ``rows`` (every allocation of the request's proto)."""
    rows = [row for row in rows if row.proto == request.proto]
    mine = owner_ranges(rows, request.owner, request.proto)
    if request.port is not None:
        return _plan_static(request, settings, rows, mine, set(listening), now)
    return _plan_dynamic(request, settings, rows, mine, listening, now)


def _who(row: Allocation) -> str:
    return "%s (%s%s)" % (row.owner, row.range, ", shared" if row.shared else "")


def _plan_static(
    request: AllocationRequest,
    settings: Settings,
    rows: Sequence[Allocation],
    mine: Sequence[Allocation],
    listening: Set[int],
    now: str,
) -> Plan:
    wanted = request.static_range
    if wanted is None:  # plan_allocation only sends static requests here
        raise PortsError("internal error: static plan without a port")
    label = "%s/%s ports %s" % (request.owner, request.proto, wanted)

    def holds_it(row: Allocation) -> bool:
        return row.range == wanted and row.shared == request.shared

    if request.keep_existing:
        if any(holds_it(row) for row in mine):
            return Plan()
    elif len(mine) == 1 and holds_it(mine[0]):
        return Plan()

    for row in rows:
        if row.owner == request.owner or not row.range.overlaps(wanted):
            continue
        if not (request.shared and row.shared):
            if row.shared:
                raise PortsError("%s: held by %s; ask with shared to join it" % (label, _who(row)))
            raise PortsError("%s: held by %s" % (label, _who(row)))
    if request.keep_existing:
        for row in mine:
            if row.range.overlaps(wanted):
                raise PortsError("%s: owner already holds %s; free it first or drop keep_existing" % (label, row.range))
    if not settings.static_reserved:
        taken = [r for r in settings.reserved if r.overlaps(wanted)]
        if taken:
            raise PortsError("%s: reserved on this host (%s); not for this caller" % (label, ", ".join(str(r) for r in taken)))
    if settings.skip_listening and not (request.shared and settings.shared_skips_listening):
        own = _held_ports(mine)
        if request.shared:
            # A listener on a port a shared holder holds is that holder's SO_REUSEPORT
            # peer; one on a port nobody holds belongs to someone else.
            own |= _held_ports([row for row in rows if row.shared])
        busy = sorted(p for p in listening if wanted.contains(p) and p not in own)
        if busy:
            raise PortsError(
                "%s: a process listens on %s; ask with shared if it is a SO_REUSEPORT peer, "
                "or set skip_listening to false" % (label, _describe(busy))
                if not request.shared
                else "%s: a process listens on %s that holds no allocation; shared does not join it for this caller"
                % (label, _describe(busy))
            )
    new = Allocation(request.owner, request.proto, wanted.first, wanted.last, request.shared, KIND_STATIC, now)
    return Plan(remove=() if request.keep_existing else tuple(mine), add=(new,))


def _plan_dynamic(
    request: AllocationRequest,
    settings: Settings,
    rows: Sequence[Allocation],
    mine: Sequence[Allocation],
    listening: Iterable[int],
    now: str,
) -> Plan:
    held = sum(row.last - row.first + 1 for row in mine)
    if not request.keep_existing and mine and held == request.count:
        return Plan()

    replaced = () if request.keep_existing else tuple(mine)
    blocked = dynamic_blocked(rows, settings, listening, exempt=replaced)
    chosen = None  # type: Optional[PortRange]
    if replaced:
        # Grow or shrink in place: keep the first port the service already uses.
        in_place = PortRange(replaced[0].first, replaced[0].first + request.count - 1)
        if settings.bounds.covers(in_place) and not any(in_place.overlaps(b) for b in blocked):
            chosen = in_place
    if chosen is None:
        chosen = first_fit(settings.bounds, blocked, request.count)
    if chosen is None:
        best = largest_run(free_runs(settings.bounds, blocked))
        raise PortsError(
            "no run of %d free %s ports for owner %s in %s; largest free run: %s"
            % (
                request.count,
                request.proto,
                request.owner,
                settings.bounds,
                "%d ports (%s)" % (best.size, best) if best else "none",
            )
        )
    new = Allocation(request.owner, request.proto, chosen.first, chosen.last, False, KIND_DYNAMIC, now)
    return Plan(remove=replaced, add=(new,))


def plan_deallocation(
    owner: str,
    protos: Sequence[str],
    rows: Sequence[Allocation],
    ports: Optional[Sequence[PortRange]] = None,
) -> Plan:
    """Free the owner's ranges of ``protos``; with ``ports``, only the ranges that hold them."""
    doomed = []
    for row in rows:
        if row.owner != owner or row.proto not in protos:
            continue
        if ports is None or any(row.range.overlaps(p) for p in ports):
            doomed.append(row)
    return Plan(remove=tuple(doomed))


# What callers import from here: the planners above and, so that every import
# path of before the split keeps working, the rows' names and the indexed planner.
__all__ = [
    "KIND_DYNAMIC",
    "KIND_STATIC",
    "ORIGIN_AGENT",
    "ORIGIN_LIBRARY",
    "ORIGIN_PORT_ALLOCATE",
    "ORIGIN_PORT_ALLOCATIONS",
    "ORIGIN_UNKNOWN",
    "Allocation",
    "Plan",
    "apply_plan",
    "dynamic_blocked",
    "first_fit",
    "largest_run",
    "owner_ranges",
    "plan_allocation",
    "plan_deallocation",
    "plan_dynamic_indexed",
]
