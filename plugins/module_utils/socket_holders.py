# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which process, and which systemd unit, holds a socket: read from /proc.

Only port_info asks (to tell a service's own listener from a stranger's), so
this stays off the path of port_allocate, which only needs the ports.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, NamedTuple, Optional


class SocketHolder(NamedTuple):
    pid: int
    unit: Optional[str]  # the systemd unit whose cgroup holds the process, if any


def _unit_of(cgroup_text: str) -> Optional[str]:
    # The deepest *.service/*.socket/*.scope component of any hierarchy line,
    # e.g. "0::/system.slice/ceph-rgw.service" -> "ceph-rgw.service".
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope", ".socket")):
                return part
    return None


def socket_holders(inodes: Iterable[int], proc: str = "/proc") -> Dict[int, SocketHolder]:
    """Map socket inodes to the process (and systemd unit) holding them.

    Best effort: processes that exit or that we may not inspect are skipped.
    """
    wanted = set("socket:[%d]" % inode for inode in inodes)
    found = {}  # type: Dict[int, SocketHolder]
    if not wanted:
        return found
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted:
                inode = int(target[len("socket:["):-1])
                if inode in found:
                    continue
                try:
                    with open(os.path.join(proc, pid, "cgroup")) as handle:
                        unit = _unit_of(handle.read())
                except OSError:
                    unit = None
                found[inode] = SocketHolder(int(pid), unit)
    return found
