# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``berth-ports-metrics``: a host's berth.ports state as a node_exporter textfile (issue 11).

    berth-ports-metrics [--config /etc/berth/agent.json] [--db-path PATH]
                        [--output /var/lib/prometheus/node-exporter/berth_ports.prom]

Reads the database read-only (a missing one reads as empty and is never
created) and the host's listeners, and writes the Prometheus text format
atomically: a temporary file in the output's directory, fsync, rename, so a
scrape never reads half a file. Every metric is a gauge (these are levels,
not counts of events), so none ends in ``_total``:

    berth_ports_range_ports{proto,range}             ports in the block
    berth_ports_used_ports{proto,range}              ports of the block some allocation holds
    berth_ports_free_ports{proto,range}              ports a dynamic request could still get
    berth_ports_reserved_ports{proto,range}          reserved ports of the block no allocation holds
    berth_ports_largest_free_run_ports{proto,range}  the largest count one request could get
    berth_ports_owner_allocations{owner,proto}       ranges an owner holds
    berth_ports_owner_ports{owner,proto}             ports an owner holds
    berth_ports_stray_listeners{proto,range}         listeners in the block without an allocation
    berth_ports_listener_conflicts{proto,range,type} listeners that disagree with the allocations, by type
    berth_ports_database_present                     1 when the database file exists
    berth_ports_database_schema_version              PRAGMA user_version (0: no database)
    berth_ports_database_last_change_timestamp_seconds  when the database file last changed
    berth_ports_metrics_success                      1 when the database was read, 0 when not
    berth_ports_metrics_timestamp_seconds            when this file was written

When the database cannot be read (corrupt, not a berth database, newer
schema), the file still gets written, with ``berth_ports_metrics_success 0``
and the error in a comment, and the command exits 1, so an alert can fire
on the metric and systemd shows the failure.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, TextIO, Tuple
from urllib.parse import quote

from ansible_collections.berth.ports.plugins.module_utils.agent.config import load_config
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import DEFAULT_CONFIG_PATH
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, merge
from ansible_collections.berth.ports.plugins.module_utils.port_info import SYSTEMD_UNIT_DIRS, find_conflicts, summarize
from ansible_collections.berth.ports.plugins.module_utils.request import PROTOCOLS, Settings
from ansible_collections.berth.ports.plugins.module_utils.task_failure import TASK_ERRORS, failure_message

DEFAULT_OUTPUT = "/var/lib/prometheus/node-exporter/berth_ports.prom"
CONFLICT_TYPES = ("unallocated", "foreign_listener", "in_use")

Labels = Tuple[Tuple[str, str], ...]


class Sample(NamedTuple):
    name: str
    labels: Labels
    value: float


class Family(NamedTuple):
    name: str
    help: str
    samples: Tuple[Sample, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_families(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (version 0.0.4), gauges only."""
    lines = []  # type: List[str]
    for family in families:
        lines.append("# HELP %s %s" % (family.name, family.help.replace("\\", "\\\\").replace("\n", " ")))
        lines.append("# TYPE %s gauge" % family.name)
        for sample in family.samples:
            labels = ",".join('%s="%s"' % (key, _escape(value)) for key, value in sample.labels)
            lines.append("%s%s %s" % (sample.name, "{%s}" % labels if labels else "", _number(sample.value)))
    return "\n".join(lines) + "\n"


def _family(name: str, help_text: str, samples: Iterable[Tuple[Labels, float]]) -> Family:
    return Family(name, help_text, tuple(Sample(name, labels, value) for labels, value in samples))


def _schema_version(db_path: str) -> int:
    """PRAGMA user_version, read through a read-only connection (after the store checked the file)."""
    uri = "file:%s?mode=ro" % quote(os.path.abspath(db_path))
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _in_range(rows: Sequence[Allocation], proto: str, bounds: PortRange) -> List[PortRange]:
    return merge(PortRange(max(r.first, bounds.first), min(r.last, bounds.last))
                 for r in rows if r.proto == proto and r.range.overlaps(bounds))


def collect(
    db_path: str,
    settings: Settings,
    now: Optional[float] = None,
    proc_net: str = "/proc/net",
    proc: str = "/proc",
    unit_dirs: Iterable[str] = SYSTEMD_UNIT_DIRS,
) -> Tuple[List[Family], Optional[str]]:
    """The metric families of this host, and the error that kept the database from being read (or None)."""
    now = time.time() if now is None else now
    bounds = settings.bounds
    rng = str(bounds)
    present = os.path.lexists(db_path)
    error = None  # type: Optional[str]
    rows = []  # type: Sequence[Allocation]
    version = 0
    changed = None  # type: Optional[float]
    try:
        rows = load_rows(AllocationStore(db_path), readonly=True)
        if present:
            version = _schema_version(db_path)
            changed = os.stat(db_path).st_mtime
    except TASK_ERRORS as exc:
        error = failure_message(exc, db_path, writes=False)
        rows = []
    families = []  # type: List[Family]
    per_proto = {}  # type: Dict[str, Dict[str, float]]
    conflicts = {}  # type: Dict[Tuple[str, str], int]
    for proto in PROTOCOLS:
        held = _in_range(rows, proto, bounds)
        used = sum(run.size for run in held)
        reserved = merge(PortRange(max(r.first, bounds.first), min(r.last, bounds.last))
                         for r in settings.reserved if r.overlaps(bounds))
        reserved_free = sum(run.size for run in reserved) - sum(
            max(0, min(a.last, b.last) - max(a.first, b.first) + 1) for a in reserved for b in held)
        summary = summarize(rows, proto, settings)
        per_proto[proto] = {
            "range": bounds.size, "used": used, "free": summary.free, "reserved": reserved_free,
            "largest": summary.largest_free_run.size if summary.largest_free_run else 0,
        }
        for kind in CONFLICT_TYPES:
            conflicts[(proto, kind)] = 0
        if error is None:
            for entry in find_conflicts(rows, proto, settings, proc_net=proc_net, proc=proc, unit_dirs=unit_dirs):
                conflicts[(proto, entry["type"])] += 1

    def by_proto(key: str) -> List[Tuple[Labels, float]]:
        return [((("proto", p), ("range", rng)), per_proto[p][key]) for p in PROTOCOLS]

    families.append(_family("berth_ports_range_ports", "Ports in the block berth.ports hands out from.", by_proto("range")))
    families.append(_family("berth_ports_used_ports", "Ports of the block that some allocation holds.", by_proto("used")))
    families.append(_family("berth_ports_free_ports",
                            "Ports of the block a dynamic request could still get (not allocated, not reserved).",
                            by_proto("free")))
    families.append(_family("berth_ports_reserved_ports", "Reserved ports of the block that no allocation holds.",
                            by_proto("reserved")))
    families.append(_family("berth_ports_largest_free_run_ports",
                            "The largest number of contiguous free ports, the largest count one request can get.",
                            by_proto("largest")))
    owners = {}  # type: Dict[Tuple[str, str], List[int]]
    for row in rows:
        tally = owners.setdefault((row.owner, row.proto), [0, 0])
        tally[0] += 1
        tally[1] += row.last - row.first + 1
    families.append(_family("berth_ports_owner_allocations", "Port ranges an owner holds.",
                            [((("owner", o), ("proto", p)), t[0]) for (o, p), t in sorted(owners.items())]))
    families.append(_family("berth_ports_owner_ports", "Ports an owner holds.",
                            [((("owner", o), ("proto", p)), t[1]) for (o, p), t in sorted(owners.items())]))
    families.append(_family("berth_ports_stray_listeners",
                            "Listening sockets in the block that no allocation covers.",
                            [((("proto", p), ("range", rng)), conflicts[(p, "unallocated")]) for p in PROTOCOLS]))
    families.append(_family("berth_ports_listener_conflicts",
                            "Listening sockets in the block that disagree with the allocations, by port_info's conflict type.",
                            [((("proto", p), ("range", rng), ("type", k)), conflicts[(p, k)])
                             for p in PROTOCOLS for k in CONFLICT_TYPES]))
    families.append(_family("berth_ports_database_present", "1 when the berth.ports database file exists.",
                            [((), 1 if present else 0)]))
    families.append(_family("berth_ports_database_schema_version",
                            "Schema version of the berth.ports database (PRAGMA user_version; 0 without a database).",
                            [((), version)]))
    if changed is not None:
        families.append(_family("berth_ports_database_last_change_timestamp_seconds",
                                "When the berth.ports database file last changed, in seconds since the epoch.",
                                [((), round(changed, 3))]))
    families.append(_family("berth_ports_metrics_success", "1 when the database was read, 0 when it could not be.",
                            [((), 0 if error else 1)]))
    families.append(_family("berth_ports_metrics_timestamp_seconds",
                            "When berth-ports-metrics wrote this file, in seconds since the epoch.", [((), round(now, 3))]))
    return families, error


def write_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename.

    The temporary name starts with a dot and does not end in ``.prom``, so
    node_exporter's textfile collector never reads it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # the rename itself, durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def render(db_path: str, settings: Settings, now: Optional[float] = None, **where: str) -> Tuple[str, Optional[str]]:
    families, error = collect(db_path, settings, now=now, **where)
    head = "# berth.ports state of %s, written by berth-ports-metrics\n" % db_path
    if error:
        head += "# ERROR reading the database: %s\n" % error.replace("\n", " ")
    return head + format_families(families), error


def main(argv: Optional[List[str]] = None, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(prog="berth-ports-metrics",
                                     description="Write berth.ports metrics for node_exporter's textfile collector.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="host settings (default %(default)s)")
    parser.add_argument("--db-path", help="database (default: the config's)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="the .prom file (default %(default)s; - for stdout)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except PortsError as exc:
        err.write("berth-ports-metrics: %s\n" % exc)
        return 2
    db_path = args.db_path or config.db_path
    text, error = render(db_path, config.settings)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            write_atomically(args.output, text)
        except OSError as exc:
            err.write("berth-ports-metrics: cannot write %s: %s\n" % (args.output, exc.strerror or exc))
            return 1
    if error:
        err.write("berth-ports-metrics: %s\n" % error)
        return 1
    return 0
