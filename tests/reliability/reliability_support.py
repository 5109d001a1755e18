# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the reliability suite.

The collection is found through the import machinery (whatever
``ansible_collections`` root is on ``sys.path``: the development symlink or the
harness' ``.build/collections`` copy), never through a hard-coded checkout path.
Subprocesses get the same root on their PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import ansible_collections.berth.ports as _collection
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange

# abspath, not realpath: the development root is a symlink whose target is not
# below any ansible_collections/ directory.
COLLECTION_DIR = os.path.abspath(list(_collection.__path__)[0])
COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_DIR)))
MODULES_DIR = os.path.join(COLLECTION_DIR, "plugins", "modules")
HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS_DIR = os.path.join(HERE, "workers")


def subprocess_env(**extra: str) -> Dict[str, str]:
    """The environment a child needs to import the collection the way this process does."""
    env = dict(os.environ)
    parts = [COLLECTIONS_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.pop("MODULE_ID", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def worker_cmd(script: str, *args: str) -> List[str]:
    return [sys.executable, os.path.join(WORKERS_DIR, script)] + list(args)


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def dir_snapshot(directory: str) -> Dict[str, Optional[str]]:
    """name -> sha256 of every entry in ``directory`` (None for non-files)."""
    snap = {}  # type: Dict[str, Optional[str]]
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        snap[name] = sha256(full) if os.path.isfile(full) and not os.path.islink(full) else None
    return snap


def row_key(row: Allocation) -> Tuple[str, str, int, int, bool, str]:
    return (row.owner, row.proto, row.first, row.last, bool(row.shared), row.kind)


def normalise(rows: Iterable[Allocation]) -> List[Tuple[str, str, int, int, bool, str]]:
    """Rows without id and timestamp, sorted: what two equal states share."""
    return sorted(row_key(row) for row in rows)


def invariant_violations(rows: Sequence[Allocation], bounds: Dict[str, PortRange]) -> List[str]:
    """Everything wrong with a state: empty list when the invariants hold.

    * every row is a valid range (first <= last) inside the proto's bounds;
    * proto and kind are known, a dynamic row is never shared;
    * no port of a proto is held by two rows unless every holder is shared.
    """
    problems = []
    holders = defaultdict(list)  # type: Dict[Tuple[str, int], List[Allocation]]
    for row in rows:
        if row.proto not in bounds:
            problems.append("unknown proto in %r" % (row,))
            continue
        if row.kind not in ("dynamic", "static"):
            problems.append("unknown kind in %r" % (row,))
        if row.kind == "dynamic" and row.shared:
            problems.append("dynamic row is shared: %r" % (row,))
        if not row.first <= row.last:
            problems.append("inverted range %r" % (row,))
            continue
        if not bounds[row.proto].covers(row.range):
            problems.append("range %s outside %s: %r" % (row.range, bounds[row.proto], row))
        for port in range(row.first, row.last + 1):
            holders[(row.proto, port)].append(row)
    for (proto, port), rows_ in sorted(holders.items()):
        if len(rows_) > 1 and not all(r.shared for r in rows_):
            who = sorted(set("%s%s" % (r.owner, "(shared)" if r.shared else "") for r in rows_))
            problems.append("%s/%d held %d times, not all shared: %s" % (proto, port, len(rows_), ", ".join(who)))
    return problems


def integrity(path: str) -> str:
    """PRAGMA integrity_check through a plain read-only connection."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def rows_from_json(items: Iterable[list]) -> List[Allocation]:
    return [Allocation(o, p, f, l, bool(s), k, c, i) for o, p, f, l, s, k, c, i in items]
