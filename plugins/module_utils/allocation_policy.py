# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allocation policy as pure functions: existing rows + request -> plan.

Nothing here touches a file, so the same plan serves check mode (shown, not
applied) and a real run (applied in the very transaction that read the rows).
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import (
    PortRange,
    bands,
    free_runs,
    merge,
)
from ansible_collections.berth.ports.plugins.module_utils.request import AllocationRequest, Settings

KIND_DYNAMIC = "dynamic"
KIND_STATIC = "static"

# Which call made a row. port_allocations' prune frees only the rows it made
# itself, so a port handed out ad hoc, by port_allocate or by the agent is
# never taken away by a declaration that does not mention it.
ORIGIN_PORT_ALLOCATE = "port_allocate"
ORIGIN_PORT_ALLOCATIONS = "port_allocations"
ORIGIN_AGENT = "agent"
ORIGIN_LIBRARY = "library"  # a script calling the allocator directly
ORIGIN_UNKNOWN = "unknown"  # rows written before the database recorded it


class Allocation(NamedTuple):
    """One row of the state: ``first``..``last`` of ``proto`` held by ``owner``."""

    owner: str
    proto: str
    first: int
    last: int
    shared: bool
    kind: str
    created: str
    id: Optional[int] = None  # None until stored
    origin: str = ORIGIN_UNKNOWN

    @property
    def range(self) -> PortRange:
        return PortRange(self.first, self.last)

    def as_dict(self) -> dict:
        return {
            "owner": self.owner,
            "proto": self.proto,
            "first": self.first,
            "last": self.last,
            "shared": self.shared,
            "kind": self.kind,
            "created": self.created,
            "origin": self.origin,
        }


class Plan(NamedTuple):
    """Rows to delete and rows to insert, in one transaction."""

    remove: Tuple[Allocation, ...] = ()
    add: Tuple[Allocation, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.remove or self.add)


def owner_ranges(rows: Iterable[Allocation], owner: str, proto: str) -> List[Allocation]:
    """The owner's rows for ``proto``, oldest first (the order TCP_PORT is taken from)."""
    mine = [row for row in rows if row.owner == owner and row.proto == proto]
    return sorted(mine, key=lambda row: (row.id is None, row.id or 0, row.created, row.first))


def apply_plan(rows: Sequence[Allocation], plan: Plan) -> List[Allocation]:
    """The rows after ``plan``: what check mode reports without writing."""
    removed = set(id(row) for row in plan.remove)
    return [row for row in rows if id(row) not in removed] + list(plan.add)


def _held_ports(rows: Iterable[Allocation]) -> Set[int]:
    ports = set()  # type: Set[int]
    for row in rows:
        ports.update(range(row.first, row.last + 1))
    return ports


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
    own_ports = _held_ports(replaced)
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
