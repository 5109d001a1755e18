# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocate and free ports: the one entry point the modules, the agent and
scripts call. Validates, reads the host, plans, and applies the plan in the
transaction that read the state (or only reports it, in check mode).
port_info's read-only survey is in port_info."""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import (
    ORIGIN_LIBRARY,
    Allocation,
    Plan,
    apply_plan,
    owner_ranges,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, utc_now
from ansible_collections.berth.ports.plugins.module_utils.errors import PortLimitExceeded, PortsError, StoreError
from ansible_collections.berth.ports.plugins.module_utils.indexed_planning import plan_dynamic_indexed
from ansible_collections.berth.ports.plugins.module_utils.listening_ports import listening_ports
from ansible_collections.berth.ports.plugins.module_utils.port_environment import port_environment
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, parse_port_list
from ansible_collections.berth.ports.plugins.module_utils.request import (
    PROTOCOLS,
    AllocationRequest,
    Settings,
    validate_owner,
    validate_proto,
)

ListeningProbe = Callable[[str], Set[int]]


class OwnerPorts(NamedTuple):
    """What an owner holds for one proto, in the shape the modules return."""

    owner: str
    proto: str
    ranges: List[PortRange]  # oldest first

    @property
    def port(self) -> Optional[int]:
        return self.ranges[0].first if self.ranges else None

    @property
    def ports(self) -> List[int]:
        return [p for r in self.ranges for p in r.ports()]

    @property
    def env(self) -> Dict[str, str]:
        return port_environment(self.proto, self.ranges)

    def as_dict(self) -> dict:
        return {
            "owner": self.owner,
            "proto": self.proto,
            "port": self.port,
            "ports": self.ports,
            "ranges": [str(r) for r in self.ranges],
            "env": self.env,
        }


class Outcome(NamedTuple):
    changed: bool
    before: OwnerPorts
    after: OwnerPorts


class Deallocation(NamedTuple):
    changed: bool
    freed: List[Allocation]
    before: List[Allocation]
    after: List[Allocation]


def holdings(rows: Sequence[Allocation], owner: str, proto: str) -> OwnerPorts:
    return OwnerPorts(owner, proto, [row.range for row in owner_ranges(rows, owner, proto)])


def stamp_origin(plan: Plan, origin: str) -> Plan:
    """The plan with every row it adds marked as made by ``origin``."""
    return plan._replace(add=tuple(row._replace(origin=origin) for row in plan.add))


@contextlib.contextmanager
def on_behalf_of(owner: str, protos: Sequence[str]) -> Iterator[None]:
    """Store errors name the file; add whose request met them, so that the one
    line an operator reads says which task of which service failed.
    ``owner`` may also describe several owners."""
    try:
        yield
    except StoreError as exc:
        raise PortsError("owner %s (%s): %s" % (owner, ", ".join(protos), exc)) from exc


def _check_port_limit(request: AllocationRequest, after: OwnerPorts, max_ports: int) -> None:
    held = len(after.ports)
    if held > max_ports:
        raise PortLimitExceeded(
            "owner %s (%s): the request would hold %d port%s, more than the %d allowed (max_%s_ports); nothing changed"
            % (request.owner, request.proto, held, "" if held == 1 else "s", max_ports, request.proto)
        )


def allocate(
    store: AllocationStore,
    request: AllocationRequest,
    settings: Settings,
    check_mode: bool = False,
    probe: ListeningProbe = listening_ports,
    origin: str = ORIGIN_LIBRARY,
    max_ports: Optional[int] = None,
) -> Outcome:
    """Serve ``request``; rows it adds record ``origin``, the kind of caller.

    ``max_ports``: the most ports of the proto the owner may hold once the
    request is served (its kept ranges counted); past it, PortLimitExceeded
    and nothing is written.
    """
    # Read the sockets before taking the lock: /proc can be slow on busy hosts
    # and nothing here depends on it being read under the lock.
    listening = probe(request.proto) if settings.skip_listening else set()
    now = utc_now()
    with on_behalf_of(request.owner, (request.proto,)), (store.read() if check_mode else store.write()) as tx:
        plan = None
        if request.port is None and tx.prepare_free_list(request.proto):
            # Dynamic: the owner's rows and a few free runs, read by index,
            # instead of every row of the proto (same plan; see the tests).
            rows = owner_ranges(tx.rows(proto=request.proto, owner=request.owner), request.owner, request.proto)
            plan = plan_dynamic_indexed(
                request,
                settings,
                rows,
                listening,
                now,
                lambda port: tx.free_runs_from(request.proto, port),
                lambda span: tx.rows_overlapping(request.proto, span),
            )
        if plan is None:
            # Static ports, a request the free list cannot meet (this words
            # its error), or a read of a file without a free list.
            from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (  # pylint: disable=import-outside-toplevel
                plan_allocation,
            )

            rows = tx.rows(proto=request.proto)
            plan = plan_allocation(request, settings, rows, listening, now)
        plan = stamp_origin(plan, origin)
        after = None  # type: Optional[OwnerPorts]
        if max_ports is not None:
            # Checked on the plan, inside the transaction: two requests of one
            # owner racing each other cannot both pass on a stale count.
            after = holdings(apply_plan(rows, plan), request.owner, request.proto)
            _check_port_limit(request, after, max_ports)
        if plan.changed and not check_mode:
            tx.apply(plan)
    if after is None:  # uncapped: worked out after the lock is released
        after = holdings(apply_plan(rows, plan), request.owner, request.proto)
    return Outcome(plan.changed, holdings(rows, request.owner, request.proto), after)


def deallocate(
    store: AllocationStore,
    owner: str,
    proto: str = "tcp",
    ports: Optional[Sequence[object]] = None,
    check_mode: bool = False,
) -> Deallocation:
    owner = validate_owner(owner)
    protos = PROTOCOLS if validate_proto(proto, allow_all=True) == "all" else (proto,)
    wanted = None if ports is None else parse_port_list(ports, what="ports")
    # Only deallocation plans this way; port_allocate's tasks never load it.
    from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (  # pylint: disable=import-outside-toplevel
        plan_deallocation,
    )

    with on_behalf_of(owner, protos):
        # Nothing to free never needs the write lock, nor creates the database.
        with store.read() as tx:
            rows = tx.rows(owner=owner)
        plan = plan_deallocation(owner, protos, rows, wanted)
        if plan.changed and not check_mode:
            with store.write() as tx:
                rows = tx.rows(owner=owner)
                plan = plan_deallocation(owner, protos, rows, wanted)
                tx.apply(plan)
    mine = [row for row in rows if row.proto in protos]
    return Deallocation(plan.changed, list(plan.remove), mine, apply_plan(mine, plan))
