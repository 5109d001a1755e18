# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rows of the state and the plans that change them, with the few pure
helpers every write uses. The planners are in indexed_planning (the common
dynamic request) and allocation_policy (every other request): a module
imports only what its path runs, because each file a task imports is
compiled on the host on every run (see benchmarks/README.md, row 1)."""

from __future__ import annotations

from typing import Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange

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


def held_ports(rows: Iterable[Allocation]) -> Set[int]:
    ports = set()  # type: Set[int]
    for row in rows:
        ports.update(range(row.first, row.last + 1))
    return ports
