# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sockets bound on this host, read from /proc (no `ss` or psutil on minimal hosts)."""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, NamedTuple, Optional, Set

PROC_NET = "/proc/net"

# /proc/net/tcp* "st" column: 0A is TCP_LISTEN. For UDP a bound, unconnected
# socket shows 07 (TCP_CLOSE): that is a UDP "listener".
_LISTEN_STATE = {"tcp": "0A", "udp": "07"}


class Listener(NamedTuple):
    proto: str
    port: int
    inode: int


class SocketHolder(NamedTuple):
    pid: int
    unit: Optional[str]  # the systemd unit whose cgroup holds the process, if any


def read_listeners(proto: str, proc_net: str = PROC_NET) -> List[Listener]:
    """Every socket of ``proto`` (v4 and v6) in the listening state."""
    result = []
    for name in (proto, proto + "6"):
        try:
            with open(os.path.join(proc_net, name)) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue  # no IPv6, or not Linux: nothing to skip
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN_STATE[proto]:
                continue
            try:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                inode = int(fields[9])
            except (IndexError, ValueError):
                continue
            result.append(Listener(proto, port, inode))
    return result


def listening_ports(proto: str, proc_net: str = PROC_NET) -> Set[int]:
    return set(listener.port for listener in read_listeners(proto, proc_net))


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
