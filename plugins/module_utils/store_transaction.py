# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads and writes inside one open transaction of an AllocationStore: the
allocations, and the free list (free_runs) kept in step with them."""

from __future__ import annotations

import sqlite3
from typing import Dict, Iterator, List, Optional

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import Allocation, Plan
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT, MIN_PORT, PortRange, free_runs
from ansible_collections.berth.ports.plugins.module_utils.store_schema import COLUMNS, COLUMNS_BEFORE_ORIGIN, Schema


class Transaction:
    """Reads and writes inside one open transaction."""

    def __init__(self, conn: Optional[sqlite3.Connection], writable: bool = False, schema: Optional[Schema] = None) -> None:
        self._conn = conn  # None: the database does not exist yet
        self._writable = writable and conn is not None
        self._free_list = bool(schema and schema.free_list) and conn is not None  # the free_runs tables exist
        self._columns = COLUMNS if schema is None or schema.origin else COLUMNS_BEFORE_ORIGIN
        self._spans = {}  # type: Dict[str, Optional[int]]  # max_span per proto, read once

    def rows(self, proto: Optional[str] = None, owner: Optional[str] = None) -> List[Allocation]:
        if self._conn is None:
            return []
        where, args = [], []  # type: List[str], List[object]
        if proto is not None:
            where.append("proto = ?")
            args.append(proto)
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        sql = "SELECT %s FROM allocations%s ORDER BY id" % (self._columns, " WHERE " + " AND ".join(where) if where else "")
        return [
            Allocation(owner_, proto_, first, last, bool(shared), kind, created, id_, origin)
            for id_, owner_, proto_, first, last, shared, kind, created, origin in self._conn.execute(sql, args)
        ]

    def apply(self, plan: Plan) -> None:
        # Only a write() transaction holds the writers' lock; a read() one that
        # wrote would race other writers (one port handed out twice).
        if not self._writable:
            raise PortsError("internal error: cannot write through a read-only transaction")
        if plan.remove:
            self._conn.executemany("DELETE FROM allocations WHERE id = ?", [(row.id,) for row in plan.remove])
        if plan.add:
            self._conn.executemany(
                "INSERT INTO allocations (owner, proto, first_port, last_port, shared, kind, created, origin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.owner, r.proto, r.first, r.last, int(r.shared), r.kind, r.created, r.origin) for r in plan.add],
            )
        if not self._free_list:
            return
        for row in plan.add:
            span = self._max_span(row.proto)
            if span is not None and row.last - row.first + 1 > span:
                self._conn.execute(
                    "UPDATE free_runs_state SET max_span = ? WHERE proto = ?", (row.last - row.first + 1, row.proto)
                )
                self._spans[row.proto] = row.last - row.first + 1
        for row in tuple(plan.remove) + tuple(plan.add):
            if self._max_span(row.proto) is None:
                continue
            # Nothing freed: the new row's ports usually lie in one free run,
            # which then shrinks in place (two statements instead of five).
            if plan.remove or not self._take_from_free_run(row.proto, row.first, row.last):
                self._refresh_free_runs(row.proto, row.first, row.last)

    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PortsError("internal error: no database to read in this transaction")
        return self._conn

    # -- the free list (free_runs), an index of what no row covers -------------

    def _max_span(self, proto: str) -> Optional[int]:
        """The longest row ever held for ``proto`` (an upper bound); None: no free list yet."""
        if not self._free_list:
            return None
        if proto not in self._spans:
            found = self._open_conn().execute("SELECT max_span FROM free_runs_state WHERE proto = ?", (proto,)).fetchone()
            self._spans[proto] = None if found is None else found[0]
        return self._spans[proto]

    def prepare_free_list(self, proto: str) -> bool:
        """Make sure ``proto``'s free list exists (building it once from the rows, when
        writing); False when it cannot be used (a read of a file without one)."""
        if self._max_span(proto) is not None:
            return True
        if not self._writable or not self._free_list:
            return False
        spans = [(row.first, row.last) for row in self.rows(proto=proto)]
        runs = free_runs(PortRange(MIN_PORT, MAX_PORT), [PortRange(f, l) for f, l in spans])
        self._conn.executemany(
            "INSERT INTO free_runs (proto, first_port, last_port) VALUES (?, ?, ?)", [(proto, r.first, r.last) for r in runs]
        )
        longest = max([last - first + 1 for first, last in spans] or [1])
        self._conn.execute("INSERT INTO free_runs_state (proto, max_span) VALUES (?, ?)", (proto, longest))
        self._spans[proto] = longest
        return True

    def free_runs_from(self, proto: str, port: int) -> Iterator[PortRange]:
        """Maximal runs of ports no row of ``proto`` covers, ascending, from the one holding
        or following ``port``; read lazily, so a first-fit stops after a few."""
        conn = self._open_conn()
        start = conn.execute(
            "SELECT first_port FROM free_runs WHERE proto = ? AND first_port <= ? ORDER BY first_port DESC LIMIT 1",
            (proto, port),
        ).fetchone()
        cursor = conn.execute(
            "SELECT first_port, last_port FROM free_runs WHERE proto = ? AND first_port >= ? ORDER BY first_port",
            (proto, start[0] if start else port),
        )
        for first, last in cursor:
            if last >= port:
                yield PortRange(first, last)

    def rows_overlapping(self, proto: str, span: PortRange) -> List[Allocation]:
        """Rows of ``proto`` that hold any port of ``span`` (needs the free list's max_span)."""
        conn = self._open_conn()
        longest = self._max_span(proto)
        if longest is None:
            raise PortsError("internal error: the %s free list is not built" % proto)
        sql = "SELECT %s FROM allocations WHERE proto = ? AND first_port BETWEEN ? AND ? AND last_port >= ? ORDER BY id" % self._columns
        return [
            Allocation(owner_, proto_, first, last, bool(shared), kind, created, id_, origin)
            for id_, owner_, proto_, first, last, shared, kind, created, origin in conn.execute(
                sql, (proto, span.first - longest + 1, span.last, span.first)
            )
        ]

    def _take_from_free_run(self, proto: str, first: int, last: int) -> bool:
        """Take ports ``first``-``last`` out of the free run holding them all; False
        (nothing written) when no one run does, as for a shared row over held ports.

        The runs are maximal, so what is left of that run is still maximal: the
        ports on either side of it were held before and still are.
        """
        conn = self._open_conn()
        run = conn.execute(
            "SELECT first_port, last_port FROM free_runs WHERE proto = ? AND first_port <= ? ORDER BY first_port DESC LIMIT 1",
            (proto, first),
        ).fetchone()
        if run is None or run[1] < last:
            return False
        run_first, run_last = run
        if run_first < first:
            conn.execute(
                "UPDATE free_runs SET last_port = ? WHERE proto = ? AND first_port = ?", (first - 1, proto, run_first)
            )
            if last < run_last:
                conn.execute(
                    "INSERT INTO free_runs (proto, first_port, last_port) VALUES (?, ?, ?)", (proto, last + 1, run_last)
                )
        elif last < run_last:
            conn.execute("UPDATE free_runs SET first_port = ? WHERE proto = ? AND first_port = ?", (last + 1, proto, run_first))
        else:
            conn.execute("DELETE FROM free_runs WHERE proto = ? AND first_port = ?", (proto, run_first))
        return True

    def _refresh_free_runs(self, proto: str, first: int, last: int) -> None:
        """Recompute the free list around ports ``first``-``last`` after rows changed there."""
        self._open_conn()
        low, high = first, last
        before = self._conn.execute(
            "SELECT first_port, last_port FROM free_runs WHERE proto = ? AND first_port < ? ORDER BY first_port DESC LIMIT 1",
            (proto, first),
        ).fetchone()
        if before is not None and before[1] >= first - 1:
            low, high = before[0], max(high, before[1])
        for _first, run_last in self._conn.execute(
            "SELECT first_port, last_port FROM free_runs WHERE proto = ? AND first_port BETWEEN ? AND ?",
            (proto, first, last + 1),
        ).fetchall():
            high = max(high, run_last)
        self._conn.execute("DELETE FROM free_runs WHERE proto = ? AND first_port BETWEEN ? AND ?", (proto, low, high))
        window = PortRange(max(low, MIN_PORT), min(high, MAX_PORT))
        held = [row.range for row in self.rows_overlapping(proto, window)]
        self._conn.executemany(
            "INSERT INTO free_runs (proto, first_port, last_port) VALUES (?, ?, ?)",
            [(proto, r.first, r.last) for r in free_runs(window, held)],
        )
