# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet of port_info surveys for the port map's tests: many identical hosts,
a few that drift, a stray listener, shared holders and an unreachable host."""

from __future__ import annotations

from typing import Any, Dict, List

SINCE = "2026-01-15T09:30:00Z"


def allocation(owner: str, first: int, last: int = 0, proto: str = "tcp", kind: str = "dynamic",
               shared: bool = False, created: str = SINCE) -> Dict[str, Any]:
    return {"owner": owner, "proto": proto, "first": first, "last": last or first, "shared": shared,
            "kind": kind, "created": created, "origin": "port_allocations"}


def survey(allocations: List[Dict[str, Any]], conflicts: List[Dict[str, Any]] = ()) -> Dict[str, Any]:
    return {"changed": False, "failed": False, "allocations": list(allocations), "conflicts": list(conflicts),
            "free": {}, "largest_free_run": {}}


def _base(day: int) -> List[Dict[str, Any]]:
    created = "2026-01-%02dT09:30:00Z" % (1 + day % 28)
    return [
        allocation("ceph-rgw", 25080, kind="static", created=created),
        allocation("haproxy-a", 25443, kind="static", shared=True, created=created),
        allocation("haproxy-b", 25443, kind="static", shared=True, created=created),
        allocation("web", 25031, 25034, created=created),
        allocation("api", 25035, 25036, created=created),
        allocation("metrics", 25037, created=created),
        allocation("node-exporter", 25100, 25109, created=created),
        allocation("dns", 25031, proto="udp", created=created),
        allocation("syslog", 25032, 25035, proto="udp", created=created),
    ]


def fleet(hosts: int = 500) -> Dict[str, Any]:
    """``hosts`` surveys: four profiles of identical hosts, drift on every 50th host,
    one stray listener, one host not read."""
    out = {}  # type: Dict[str, Any]
    for index in range(hosts):
        name = "node%03d.dc1.example.org" % index
        rows = _base(index)
        profile = index % 4
        if profile >= 1:
            rows.append(allocation("cache", 25200, 25203))
        if profile >= 2:
            rows.append(allocation("queue", 25300, 25315))
            rows.append(allocation("gossip", 25300, 25301, proto="udp"))
        if profile == 3:
            rows.append(allocation("search-%d" % (index % 3), 25400 + 20 * (index % 3), 25409 + 20 * (index % 3)))
        if index % 50 == 7:  # api drifts on these hosts
            rows = [r for r in rows if r["owner"] != "api"] + [allocation("api", 25600 + index // 50, 25601 + index // 50)]
        conflicts = []
        if index == 13:
            conflicts.append({"type": "unallocated", "proto": "tcp", "port": 25700, "pid": 4242,
                              "unit": "stray-listener.service", "owner": None})
        out[name] = survey(rows, conflicts)
    if hosts > 1:
        out["node%03d.dc1.example.org" % (hosts - 1)] = {"unreachable": True, "msg": "ssh: connect timed out"}
    return out
