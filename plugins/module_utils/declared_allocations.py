# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's allocations declared at once (port_allocations): every entry is
planned against what the entries before it leave, and the whole declaration
is applied in one transaction, or nothing is.

Each entry follows port_allocate's rules (the same planner); what is new here
is the order of the work, the all-or-nothing commit and prune. The entries
are parsed and checked beforehand by ``declared_entries.build_declaration``.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (
    ORIGIN_PORT_ALLOCATIONS,
    Allocation,
    Plan,
    apply_plan,
    plan_allocation,
    plan_deallocation,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, utc_now
from ansible_collections.berth.ports.plugins.module_utils.allocator import (
    ListeningProbe,
    OwnerPorts,
    holdings,
    on_behalf_of,
    stamp_origin,
)
from ansible_collections.berth.ports.plugins.module_utils.declared_entries import DeclaredEntry
from ansible_collections.berth.ports.plugins.module_utils.listening_ports import listening_ports
from ansible_collections.berth.ports.plugins.module_utils.request import Settings


class Declaration(NamedTuple):
    changed: bool
    after: List[OwnerPorts]  # one per entry, in the order given
    before_rows: List[Allocation]  # the rows of every owner+proto touched, before
    after_rows: List[Allocation]  # and after
    freed: List[Allocation]  # freed by count 0 entries and prune (not resized rows)

    @property
    def env(self) -> Dict[str, Dict[str, str]]:
        """Owner -> its TCP_* and UDP_* variables together (what one drop-in needs)."""
        merged = {}  # type: Dict[str, Dict[str, str]]
        for held in self.after:
            merged.setdefault(held.owner, {}).update(held.env)
        return merged


def _work_order(entries: Sequence[DeclaredEntry]) -> List[DeclaredEntry]:
    """Frees first, then static requests, then dynamic ones (each in the order given),
    so a dynamic entry never takes a port that a later static entry names, and ports
    freed by this declaration can serve it."""

    def phase(entry: DeclaredEntry) -> int:
        if entry.count == 0:
            return 0
        return 1 if entry.port is not None else 2

    return sorted(entries, key=phase)  # stable: the given order within a phase


def plan_declaration(
    entries: Sequence[DeclaredEntry],
    settings: Settings,
    rows: Sequence[Allocation],
    listening: Mapping[str, Iterable[int]],
    now: str,
    prune: bool = False,
) -> Tuple[Plan, List[Allocation], List[Allocation]]:
    """The one plan for the whole declaration against ``rows`` (every row, both protos).

    Returns the plan, the rows after it, and the rows it frees outright.
    Raises PortsError for the first entry that cannot be met.
    """
    current = list(rows)
    removed = []  # type: List[Allocation]
    added = []  # type: List[Allocation]
    freed = []  # type: List[Allocation]

    def take(plan: Plan, frees: bool) -> None:
        nonlocal current
        current = apply_plan(current, plan)
        removed.extend(plan.remove)
        added.extend(plan.add)
        if frees:
            freed.extend(plan.remove)

    if prune:
        declared = set(entry.key for entry in entries)
        doomed = [row for row in current if row.origin == ORIGIN_PORT_ALLOCATIONS and (row.owner, row.proto) not in declared]
        take(Plan(remove=tuple(doomed)), frees=True)
    for entry in _work_order(entries):
        if entry.count == 0:
            take(plan_deallocation(entry.owner, (entry.proto,), current), frees=True)
            continue
        plan = plan_allocation(entry.request(), settings, current, listening.get(entry.proto, ()), now)
        take(stamp_origin(plan, ORIGIN_PORT_ALLOCATIONS), frees=False)
    return Plan(remove=tuple(removed), add=tuple(added)), current, freed


def declare(
    store: AllocationStore,
    entries: Sequence[DeclaredEntry],
    settings: Settings,
    prune: bool = False,
    check_mode: bool = False,
    probe: ListeningProbe = listening_ports,
) -> Declaration:
    """Apply a declaration in one transaction (or, in check mode, only plan it).

    It is planned first under a read transaction: a declaration the host already
    meets never takes the write lock, and one that cannot be met never creates
    the database. A change is planned again under the write lock, against what
    other writers committed meanwhile, and applied in that same transaction.
    """
    protos = sorted(set(entry.proto for entry in entries if entry.count > 0))
    # Read the sockets before taking any lock, as allocate() does.
    listening = dict((proto, probe(proto)) for proto in protos) if settings.skip_listening else {}
    now = utc_now()
    owners = sorted(set(entry.owner for entry in entries))
    who = ", ".join(owners[:3]) + (" and %d more" % (len(owners) - 3) if len(owners) > 3 else "")
    with on_behalf_of(who or "(none)", sorted(set(entry.proto for entry in entries)) or ["tcp", "udp"]):
        with store.read() as tx:
            rows = tx.rows()
            plan, after, freed = plan_declaration(entries, settings, rows, listening, now, prune)
        if plan.changed and not check_mode:
            with store.write() as tx:
                rows = tx.rows()
                plan, after, freed = plan_declaration(entries, settings, rows, listening, now, prune)
                if plan.changed:
                    tx.apply(plan)
    touched = set(entry.key for entry in entries) | set((row.owner, row.proto) for row in freed)
    return Declaration(
        changed=plan.changed,
        after=[holdings(after, entry.owner, entry.proto) for entry in entries],
        before_rows=[row for row in rows if (row.owner, row.proto) in touched],
        after_rows=[row for row in after if (row.owner, row.proto) in touched],
        freed=freed,
    )
