# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocate, free and inspect ports: the one entry point the modules, the lookup
and scripts call. Validates, reads the host, plans, and applies the plan in the
transaction that read the state (or only reports it, in check mode)."""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (
    Allocation,
    apply_plan,
    dynamic_blocked,
    largest_run,
    owner_ranges,
    plan_allocation,
    plan_deallocation,
    plan_dynamic_indexed,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, utc_now
from ansible_collections.berth.ports.plugins.module_utils.listening_ports import (
    listening_ports,
    read_listeners,
    socket_holders,
)
from ansible_collections.berth.ports.plugins.module_utils.port_environment import port_environment
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs, parse_port_list
from ansible_collections.berth.ports.plugins.module_utils.request import (
    PROTOCOLS,
    AllocationRequest,
    Settings,
    validate_owner,
    validate_proto,
)

ListeningProbe = Callable[[str], Set[int]]

SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


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


def _holdings(rows: Sequence[Allocation], owner: str, proto: str) -> OwnerPorts:
    return OwnerPorts(owner, proto, [row.range for row in owner_ranges(rows, owner, proto)])


def allocate(
    store: AllocationStore,
    request: AllocationRequest,
    settings: Settings,
    check_mode: bool = False,
    probe: ListeningProbe = listening_ports,
) -> Outcome:
    # Read the sockets before taking the lock: /proc can be slow on busy hosts
    # and nothing here depends on it being read under the lock.
    listening = probe(request.proto) if settings.skip_listening else set()
    opener = store.read() if check_mode else store.write()
    now = utc_now()
    with opener as tx:
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
            rows = tx.rows(proto=request.proto)
            plan = plan_allocation(request, settings, rows, listening, now)
        if plan.changed and not check_mode:
            tx.apply(plan)
    return Outcome(
        plan.changed,
        _holdings(rows, request.owner, request.proto),
        _holdings(apply_plan(rows, plan), request.owner, request.proto),
    )


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


class ProtoSummary(NamedTuple):
    free: int
    largest_free_run: Optional[PortRange]


def summarize(rows: Sequence[Allocation], proto: str, settings: Settings) -> ProtoSummary:
    """Ports of the range a dynamic request could still get (ignoring listeners)."""
    blocked = dynamic_blocked([r for r in rows if r.proto == proto], settings._replace(skip_listening=False), ())
    runs = free_runs(settings.bounds, blocked)
    return ProtoSummary(sum(run.size for run in runs), largest_run(runs))


def _owner_matches_unit(owner: str, unit: Optional[str]) -> bool:
    if unit is None:
        return False
    return unit == owner or unit.rsplit(".", 1)[0] == owner


def _is_systemd_unit(owner: str, unit_dirs: Iterable[str]) -> bool:
    names = (owner, owner + ".service")
    return any(os.path.exists(os.path.join(d, n)) for d in unit_dirs for n in names)


def find_conflicts(
    rows: Sequence[Allocation],
    proto: str,
    settings: Settings,
    proc_net: str = "/proc/net",
    proc: str = "/proc",
    unit_dirs: Iterable[str] = SYSTEMD_UNIT_DIRS,
) -> List[dict]:
    """Listeners in the range without an allocation, and allocated ports someone else listens on.

    Each entry's ``type``: ``unallocated`` (a listener in the range that no
    allocation covers), ``foreign_listener`` (the owner is a systemd unit and
    the listener runs in another unit's cgroup), ``in_use`` (the owner is not a
    unit we can match, so the operator judges whether the listener is its own).
    """
    unit_dirs = tuple(unit_dirs)
    listeners = [l for l in read_listeners(proto, proc_net) if settings.bounds.contains(l.port)]
    holders = socket_holders([l.inode for l in listeners], proc)
    conflicts = []
    seen = set()
    for listener in sorted(listeners, key=lambda l: (l.port, l.inode)):
        holder = holders.get(listener.inode)
        unit = holder.unit if holder else None
        owners = [row for row in rows if row.proto == proto and row.range.contains(listener.port)]
        entry = {"proto": proto, "port": listener.port, "pid": holder.pid if holder else None, "unit": unit}
        if not owners:
            entry.update(type="unallocated", owner=None)
        elif any(_owner_matches_unit(row.owner, unit) for row in owners):
            continue
        elif unit is not None and any(_is_systemd_unit(row.owner, unit_dirs) for row in owners):
            entry.update(type="foreign_listener", owner=owners[0].owner)
        else:
            entry.update(type="in_use", owner=owners[0].owner)
        key = (entry["type"], listener.port, entry["pid"])
        if key not in seen:
            seen.add(key)
            conflicts.append(entry)
    return conflicts
