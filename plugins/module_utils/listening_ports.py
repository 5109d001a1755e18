# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sockets bound on this host, asked of the kernel (no `ss` or psutil on minimal hosts).

The ports alone come from the sock_diag netlink interface when it answers and
from /proc/net otherwise; the inodes that tie a socket to its process always
come from /proc/net (see socket_holders for the processes).
"""

from __future__ import annotations

import os
import socket
import struct
from typing import List, NamedTuple, Set

PROC_NET = "/proc/net"

# /proc/net/tcp* "st" column: 0A is TCP_LISTEN. For UDP a bound, unconnected
# socket shows 07 (TCP_CLOSE): that is a UDP "listener".
_LISTEN_STATE = {"tcp": "0A", "udp": "07"}


class Listener(NamedTuple):
    proto: str
    port: int
    inode: int


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


# NETLINK_SOCK_DIAG: the kernel answers "which sockets listen" directly, in
# microseconds, where reading /proc/net/tcp* costs milliseconds on some
# kernels (sandboxes, hosts with many sockets). Same sockets, same netns.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x301  # NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
# The states read_listeners() reads from /proc: TCP_LISTEN (10) for TCP,
# TCP_CLOSE (7, bound and unconnected) for UDP.
_DIAG_STATES = {"tcp": (socket.IPPROTO_TCP, 1 << 10), "udp": (socket.IPPROTO_UDP, 1 << 7)}


def _sock_diag_ports(proto: str) -> Set[int]:
    """Local ports of ``proto`` sockets in the listening state (v4 and v6), via sock_diag.

    Raises OSError when the kernel cannot answer (not Linux, no inet_diag).
    """
    ip_proto, states = _DIAG_STATES[proto]
    ports = set()  # type: Set[int]
    sock = socket.socket(getattr(socket, "AF_NETLINK"), socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    try:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            # struct inet_diag_req_v2 with an all-zero inet_diag_sockid (dump everything)
            request = struct.pack("=BBBBI", family, ip_proto, 0, 0, states) + b"\0" * 48
            sock.send(struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, seq, 0) + request)
            done = False
            while not done:
                data = sock.recv(65536)
                if not data:
                    raise OSError("sock_diag: empty answer")
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR or length < 16 + 8:
                        raise OSError("sock_diag: error answer")
                    # struct inet_diag_msg: family, state, timer, retrans, then
                    # inet_diag_sockid whose first field is the source port (big endian)
                    ports.add(struct.unpack_from(">H", data, offset + 16 + 4)[0])
                    offset += (length + 3) & ~3
    finally:
        sock.close()
    return ports


def proc_listening_ports(proto: str, proc_net: str = PROC_NET) -> Set[int]:
    return set(listener.port for listener in read_listeners(proto, proc_net))


def listening_ports(proto: str) -> Set[int]:
    """Ports of ``proto`` (v4 and v6) some socket listens on: sock_diag, else /proc/net."""
    try:
        return _sock_diag_ports(proto)
    except (OSError, AttributeError, struct.error):
        return proc_listening_ports(proto)
