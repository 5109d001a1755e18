# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""port_info's survey of a host: the allocations, the ports still free, and the
listeners that disagree with the allocations. Read-only; kept apart from the
allocator so that a module that only allocates does not load it."""

from __future__ import annotations

import os
from typing import Iterable, List, NamedTuple, Optional, Sequence

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation, dynamic_blocked, largest_run
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.listening_ports import read_listeners
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs
from ansible_collections.berth.ports.plugins.module_utils.reporting import allocation_records, selected_protos
from ansible_collections.berth.ports.plugins.module_utils.request import Settings
from ansible_collections.berth.ports.plugins.module_utils.socket_holders import socket_holders

SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


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


def port_report(
    store: AllocationStore,
    settings: Settings,
    owner: Optional[str] = None,
    proto: Optional[str] = None,
    proc_net: str = "/proc/net",
    proc: str = "/proc",
    unit_dirs: Iterable[str] = SYSTEMD_UNIT_DIRS,
) -> dict:
    """port_info's result: allocations, free ports and conflicts, read without writing.

    ``free``, ``largest_free_run`` and the conflict check always count every
    owner (a listener is only "unallocated" if nobody holds its port); an
    ``owner`` narrows ``allocations`` and ``conflicts`` to that owner's own.
    """
    rows = load_rows(store)
    unit_dirs = tuple(unit_dirs)
    free = {}
    largest = {}
    conflicts = []  # type: List[dict]
    for name in selected_protos(proto):
        summary = summarize(rows, name, settings)
        free[name] = summary.free
        largest[name] = str(summary.largest_free_run) if summary.largest_free_run else None
        found = find_conflicts(rows, name, settings, proc_net=proc_net, proc=proc, unit_dirs=unit_dirs)
        if owner is not None:
            found = [entry for entry in found if entry.get("owner") == owner]
        conflicts.extend(found)
    return {
        "allocations": allocation_records(rows, [owner] if owner is not None else None, proto),
        "free": free,
        "largest_free_run": largest,
        "conflicts": conflicts,
    }
