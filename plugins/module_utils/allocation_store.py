# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-host SQLite state: one file, versioned, written one transaction at a time.

Guarantees kept here, whatever calls it:

* every write is one ``BEGIN IMMEDIATE`` transaction with a busy timeout, so
  concurrent writers serialise and each plans against what the previous one
  committed;
* a crash leaves the file as before or as after (SQLite's rollback journal);
* a file that is not ours (not SQLite, corrupt, another application's) is
  never written, recreated or "repaired": the call fails and says so;
* read-only calls never create anything.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import signal
import sqlite3
import stat
import threading
import time
import weakref
from typing import Deque, Dict, Iterator, List, NamedTuple, Optional, Sequence
from urllib.parse import quote

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation, Plan
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError, StoreError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT, MIN_PORT, PortRange, free_runs

DEFAULT_DB_PATH = "/var/lib/berth/ports.db"

# PRAGMA application_id: "bert" in ASCII. Tells a berth database from any
# other SQLite file without guessing from table names.
APPLICATION_ID = 0x62657274

DEFAULT_BUSY_TIMEOUT = 30.0

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Five decimal integers (at most 20 digits each) and their separators fit.
_STAMP_WIDTH = 112

# SQLite's locks are POSIX locks, which belong to the process: closing any
# descriptor of the file (a reader's one-shot descriptor, a store letting go
# of its file) drops the locks another thread's connection holds. One
# transaction at a time per process keeps threaded callers (the agent daemon)
# safe; separate processes still serialise through SQLite's own locking.
# Descriptors of ours are closed only by _DESCRIPTORS, never inside a
# transaction (docs/docsite/rst/lock_design.rst).
_IN_PROCESS = threading.RLock()

# A fork waits for the transaction in flight, so that no child ever inherits a
# connection in the middle of one (closing that copy would roll back, and
# delete the journal, under the parent's feet).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_IN_PROCESS.acquire, after_in_parent=_IN_PROCESS.release, after_in_child=_IN_PROCESS.release)

# Connections inherited in the middle of a transaction anyway (a fork from
# inside one, which the hook cannot wait for): kept referenced and never closed
# by us, so this process does not roll back what the parent is writing.
_INHERITED = []  # type: List[sqlite3.Connection]


class _DescriptorCloser:
    """Closes this process's own descriptors of database files, never under a transaction.

    SQLite defers closing its own descriptors while any connection of the
    process holds a lock on the file; ours must do the same. A store may be
    let go of at any moment on any thread (the garbage collector runs its
    finalizer wherever it likes), so a descriptor handed here is closed at
    once only when this thread can take ``_IN_PROCESS`` and no transaction of
    the process is open; otherwise it waits, and the last transaction to end
    closes it. Only transactions (``transaction_open``) change ``_open``, and
    they run under ``_IN_PROCESS``.
    """

    def __init__(self) -> None:
        self._open = 0
        self._waiting = collections.deque()  # type: Deque[int]

    @contextlib.contextmanager
    def transaction_open(self) -> Iterator[None]:
        """The span in which a connection of this process may hold locks (caller holds _IN_PROCESS)."""
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
            if self._open == 0:
                self._close_waiting()

    def close(self, fd: int) -> None:
        self._waiting.append(fd)
        # Non-blocking: a finalizer must never wait for (or deadlock with) a
        # transaction; the RLock lets a finalizer on a thread inside its own
        # transaction in, which is why _open is checked as well.
        if _IN_PROCESS.acquire(blocking=False):
            try:
                if self._open == 0:
                    self._close_waiting()
            finally:
                _IN_PROCESS.release()

    def _close_waiting(self) -> None:
        while self._waiting:
            try:
                os.close(self._waiting.popleft())
            except (IndexError, OSError):
                pass


_DESCRIPTORS = _DescriptorCloser()


# Linux' PATH_MAX; a longer path can only fail, and os.makedirs would recurse
# once per component getting there.
_PATH_MAX = 4096

# Step N takes a database from user_version N to N+1. All pending steps run in
# the transaction that first opens the file for writing, so a database at any
# older version comes forward in one step or not at all.
_MIGRATIONS = (
    (
        """CREATE TABLE allocations (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            proto TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),
            first_port INTEGER NOT NULL CHECK (first_port BETWEEN 1 AND 65535),
            last_port INTEGER NOT NULL CHECK (last_port BETWEEN first_port AND 65535),
            shared INTEGER NOT NULL CHECK (shared IN (0, 1)),
            kind TEXT NOT NULL CHECK (kind IN ('dynamic', 'static')),
            created TEXT NOT NULL
        )""",
    ),
    (
        # Lookups by owner (every module call) and by position (port_info,
        # collision checks) without scanning the table.
        "CREATE INDEX allocations_by_owner ON allocations (owner, proto)",
        "CREATE INDEX allocations_by_port ON allocations (proto, first_port)",
    ),
    (
        # The free list: per proto, the maximal runs of 1-65535 that no row
        # covers, kept in step with allocations by Transaction.apply, so
        # first-fit reads a few runs by index instead of every row. Built from
        # the rows on the first write that needs it (free_runs_state says which
        # protos are built; max_span bounds how far below a port a covering
        # row can start).
        """CREATE TABLE free_runs (
            proto TEXT NOT NULL,
            first_port INTEGER NOT NULL,
            last_port INTEGER NOT NULL,
            PRIMARY KEY (proto, first_port)
        ) WITHOUT ROWID""",
        "CREATE TABLE free_runs_state (proto TEXT PRIMARY KEY, max_span INTEGER NOT NULL) WITHOUT ROWID",
    ),
    (
        # Which call made each row (port_allocate, port_allocations, the
        # agent...), so that port_allocations' prune frees only its own.
        # Rows from before are 'unknown', which nothing prunes.
        "ALTER TABLE allocations ADD COLUMN origin TEXT NOT NULL DEFAULT 'unknown'",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = "id, owner, proto, first_port, last_port, shared, kind, created, origin"
# A file read at schema 3 or older (reads never migrate) has no origin column.
_COLUMNS_BEFORE_ORIGIN = "id, owner, proto, first_port, last_port, shared, kind, created, 'unknown'"

# What every call needs to know about the file, in one round trip.
_SCHEMA_FACTS = (
    "SELECT (SELECT application_id FROM pragma_application_id),"
    " (SELECT user_version FROM pragma_user_version),"
    " (SELECT count(*) FROM sqlite_master),"
    " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'allocations'),"
    " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'free_runs_state'),"
    " (SELECT count(*) FROM pragma_table_info('allocations') WHERE name = 'origin')"
)


class _Schema(NamedTuple):
    usable: bool  # holds the allocations table (False: a blank file, read as empty)
    free_list: bool  # holds the free_runs tables (schema 3 on)
    origin: bool = False  # rows record which call made them (schema 4 on)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Transaction:
    """Reads and writes inside one open transaction."""

    def __init__(self, conn: Optional[sqlite3.Connection], writable: bool = False, schema: Optional[_Schema] = None) -> None:
        self._conn = conn  # None: the database does not exist yet
        self._writable = writable and conn is not None
        self._free_list = bool(schema and schema.free_list) and conn is not None  # the free_runs tables exist
        self._columns = _COLUMNS if schema is None or schema.origin else _COLUMNS_BEFORE_ORIGIN
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
        if self._conn is None:
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
            if self._max_span(row.proto) is not None:
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


class _HeldFile:
    """The database file kept open between transactions: our descriptor (header
    checks, the writers' flock) and SQLite's connection to the same file.

    Opening a connection costs SQLite a parse of the whole schema, and a fresh
    connection prepares every statement again; keeping both open makes a call
    in a long-lived process (the agent, a script) about a third cheaper. They
    are opened and closed together, ours last, because closing any descriptor
    of a file drops the POSIX locks SQLite holds on it. Whoever holds one checks
    ``is_current`` before each transaction.
    """

    def __init__(self, fd: int, conn: sqlite3.Connection) -> None:
        self.fd = fd
        self.conn = conn  # type: Optional[sqlite3.Connection]
        self.used = False  # has read the file: its page cache may hold pages
        self.pid = os.getpid()
        st = os.fstat(fd)
        self.identity = (st.st_dev, st.st_ino)

    def is_current(self, path: str) -> bool:
        """Still this process's, and ``path`` still names the file we hold."""
        if self.pid != os.getpid():
            return False
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity

    def reconnect(self, conn: sqlite3.Connection) -> None:
        """Swap in a fresh connection (an empty page cache); our descriptor, and
        the flock on it, stay."""
        old, self.conn, self.used = self.conn, conn, False
        if old is not None:
            old.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.pid == os.getpid() or not conn.in_transaction:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        else:
            _INHERITED.append(conn)
        _DESCRIPTORS.close(self.fd)


def _let_go(box: List[Optional[_HeldFile]]) -> None:
    held, box[0] = box[0], None
    if held is not None:
        held.close()


class AllocationStore:
    """The allocation database at ``path``.

    A store keeps the file open between its transactions (see ``_HeldFile``);
    ``close()`` lets go of it, and so does dropping the store.
    """

    def __init__(self, path: str = DEFAULT_DB_PATH, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        if not isinstance(path, str) or not path or "\x00" in path:
            raise StoreError("db_path %r is not a usable file path" % (path,))
        if len(path) >= _PATH_MAX:
            raise StoreError("db_path %s... is longer than the system allows (%d bytes)" % (path[:40], _PATH_MAX))
        self.path = path
        self.busy_timeout = busy_timeout
        self._held = [None]  # type: List[Optional[_HeldFile]]
        weakref.finalize(self, _let_go, self._held)

    def close(self) -> None:
        """Close the file this store keeps open; the next call opens it again."""
        with self._serialised():
            _let_go(self._held)

    # -- public entry points -------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Transaction]:
        """An exclusive write transaction; creates the file (0600, dir 0700) if needed."""
        with self._serialised():
            held = self._kept()
            if held is None:  # (else the file is there, and so is its directory)
                self._prepare_parent()
                self._create_file()
                held = self._held_file()
            try:
                with self._writers_queue(held.fd):
                    verified = self._trust_cache(held)
                    with self._transaction(held.conn, "BEGIN IMMEDIATE") as conn:
                        schema = self._check_schema(conn, migrate=True, verified=verified)
                        yield Transaction(conn, writable=True, schema=schema)
                    # Committed: the file is now exactly what SQLite wrote, so the
                    # next call may skip the full check while the file stays so.
                    self._write_stamp()
            except BaseException:
                _let_go(self._held)  # after any failure, start afresh
                raise

    @contextlib.contextmanager
    def read(self, readonly: bool = False) -> Iterator[Transaction]:
        """A consistent read; a missing database reads as empty and is not created.

        ``readonly`` opens the file read-only (the lookup, on files it may not
        own); otherwise a hot journal left by a crashed writer can be rolled back.
        """
        parent = os.path.dirname(os.path.abspath(self.path))
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise StoreError("db_path %s: parent %s is not a directory" % (self.path, parent))
        if not os.path.lexists(self.path):
            yield Transaction(None)
            return
        with self._serialised():
            if readonly or os.path.islink(self.path):
                # The lookup, on the controller, once per call; or a symlink,
                # which only readers follow: a connection for this read only.
                fd = self._open_checked(follow=True)
                try:
                    once = self._connect(readonly)
                    try:
                        with self._transaction(once, "BEGIN") as conn:
                            schema = self._check_schema(conn, migrate=False)
                            yield Transaction(conn if schema.usable else None, schema=schema)
                    finally:
                        once.close()
                finally:
                    _DESCRIPTORS.close(fd)
                return
            held = self._held_file()
            try:
                self._check_header(held.fd)
                verified = self._trust_cache(held)
                with self._transaction(held.conn, "BEGIN") as conn:
                    schema = self._check_schema(conn, migrate=False, verified=verified)
                    yield Transaction(conn if schema.usable else None, schema=schema)
            except BaseException:
                _let_go(self._held)
                raise

    # -- internals --------------------------------------------------------------

    def _kept(self) -> Optional[_HeldFile]:
        """The file this store keeps open, if it is still the one at ``path``."""
        held = self._held[0]
        return held if held is not None and held.is_current(self.path) else None

    def _held_file(self) -> _HeldFile:
        """The file this store keeps open, (re)opened when it is not the one at ``path``."""
        held = self._kept()
        if held is not None:
            return held
        _let_go(self._held)
        fd = self._open_regular()
        try:
            conn = self._connect(readonly=False)
        except BaseException:
            _DESCRIPTORS.close(fd)
            raise
        self._held[0] = _HeldFile(fd, conn)
        return self._held[0]

    def _trust_cache(self, held: _HeldFile) -> bool:
        """Whether the file is as a berth writer left it (see _verify_pages); a
        connection that has read the file before keeps its page cache only then.

        SQLite notices other SQLite writers by the change counter in the
        header, not bytes written in place by anything else: the full check
        that follows must read such a file from disk, not from the cache.
        Writers ask once they hold the writers' lock, so no berth writer can
        change the file before their transaction starts.
        """
        verified = self._stamp_matches()
        if held.used and not verified:
            held.reconnect(self._connect(readonly=False))
        held.used = True
        return verified

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        # mode=rw: never let SQLite create the file behind our checks. Threads
        # may share the connection: _IN_PROCESS lets one use it at a time.
        uri = "file:%s?mode=%s" % (quote(os.path.abspath(self.path)), "ro" if readonly else "rw")
        try:
            return sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._translate(exc)

    @contextlib.contextmanager
    def _writers_queue(self, fd: int) -> Iterator[None]:
        """Wait for other berth writers in the kernel's lock queue.

        SQLite's busy handler sleeps and retries (1, 2, 5, 10... ms), so with
        many writers the lock sits idle between them; a blocking flock() on
        the database file wakes the next writer the moment the last one is
        done. BSD flock and SQLite's POSIX locks do not interact on Linux, and
        this descriptor lives as long as the connection does, so it cannot
        drop SQLite's locks. BEGIN IMMEDIATE still guards against writers
        that do not queue here. The header is checked on the same descriptor
        once the lock is ours, when no berth writer is half way through.
        """
        if not _flock(fd, self.busy_timeout):
            raise StoreError(
                "db_path %s: still locked by another writer after %.0fs; nothing changed" % (self.path, self.busy_timeout)
            )
        try:
            self._check_header(fd)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _serialised(self) -> Iterator[None]:
        if not _IN_PROCESS.acquire(timeout=self.busy_timeout):
            raise StoreError(
                "db_path %s: still locked by another thread after %.0fs; nothing changed" % (self.path, self.busy_timeout)
            )
        try:
            yield
        finally:
            _IN_PROCESS.release()

    def _prepare_parent(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(parent):
            return
        try:
            os.makedirs(parent, 0o700)
            os.chmod(parent, 0o700)  # makedirs' mode is filtered by the umask
        except FileExistsError:
            # A file is in the way, or a concurrent first writer just made the
            # directory: only the first is an error.
            if not os.path.isdir(parent):
                raise StoreError("db_path %s: parent %s is not a directory" % (self.path, parent))
        except OSError as exc:
            raise StoreError("db_path %s: cannot create %s: %s" % (self.path, parent, exc.strerror))
        except RecursionError:
            raise StoreError("db_path %s: too many missing directories to create" % self.path)

    def _create_file(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            return  # ours from an earlier run, or another writer just made it
        except OSError as exc:
            raise StoreError("db_path %s: cannot create it: %s" % (self.path, exc.strerror))
        try:
            os.fchmod(fd, 0o600)
        finally:
            _DESCRIPTORS.close(fd)

    def _open_regular(self, follow: bool = False) -> int:
        """A descriptor of the database file, refusing anything but a regular file.

        Checked before opening, so that a FIFO or a device is never opened.
        Writers never follow a symlink; readers do, as SQLite does.
        """
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise StoreError("db_path %s is not a regular file; refusing to use it" % self.path)
            return os.open(self.path, flags)
        except OSError as exc:
            raise StoreError("db_path %s: cannot open it: %s" % (self.path, exc.strerror))

    def _open_checked(self, follow: bool = False) -> int:
        fd = self._open_regular(follow)
        try:
            self._check_header(fd)
        except BaseException:
            _DESCRIPTORS.close(fd)
            raise
        return fd

    def _check_header(self, fd: int) -> None:
        try:
            header = os.pread(fd, len(_SQLITE_MAGIC), 0)
        except OSError as exc:
            raise StoreError("db_path %s: cannot read it: %s" % (self.path, exc.strerror))
        # An empty file holds nothing to lose (we or `touch` just made it);
        # anything else must be SQLite before SQLite is let near it.
        if header and header != _SQLITE_MAGIC:
            raise StoreError("db_path %s is not an SQLite database; refusing to touch it" % self.path)

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
        with _DESCRIPTORS.transaction_open():
            try:
                conn.execute(begin)
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._translate(exc)
            finally:
                # Whatever went wrong, the connection is left outside a transaction
                # (after a COMMIT this does nothing).
                self._rollback(conn)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # closing the connection rolls back as well

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(
                "db_path %s: still locked by another writer after %.0fs; nothing changed" % (self.path, self.busy_timeout)
            )
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
            return StoreError("db_path %s is corrupt (%s); refusing to touch it, nothing changed" % (self.path, text))
        return StoreError("db_path %s: %s; nothing changed" % (self.path, text))

    # -- integrity: a full check, skipped while the file is as the last writer left it

    @property
    def _stamp_path(self) -> str:
        # Beside the database, named like SQLite's own -journal file.
        return self.path + "-verified"

    def _file_stamp(self) -> str:
        # ctime changes on every write to the file and cannot be set back by
        # `touch`, so bytes written by anything but SQLite show up here.
        st = os.stat(self.path)
        # Fixed width, so each write overwrites the last one completely.
        return ("%d %d %d %d %d" % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)).ljust(_STAMP_WIDTH)

    def _stamp_matches(self) -> bool:
        # Bytes, not text: whatever is in the file must only ever fail to match.
        try:
            fd = os.open(self._stamp_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            try:
                return os.read(fd, _STAMP_WIDTH + 1) == self._file_stamp().encode("ascii")
            finally:
                os.close(fd)
        except OSError:
            return False

    def _write_stamp(self) -> None:
        # Only writers write it (check mode and reads never do). Best effort,
        # and overwritten in place: neither renamed nor truncated, because
        # ext4 flushes a file truncated to zero when it is closed (its
        # auto_da_alloc), which cost 0.2 ms, more than the rest of the call
        # but the commit. A torn or stale stamp cannot match the file, so the
        # worst outcome is one more full check.
        try:
            fd = os.open(
                self._stamp_path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o600
            )
            try:
                os.pwrite(fd, self._file_stamp().encode("ascii"), 0)
                if os.fstat(fd).st_size > _STAMP_WIDTH:  # longer than any stamp: not ours
                    os.ftruncate(fd, _STAMP_WIDTH)
            finally:
                os.close(fd)
        except OSError:
            pass

    def _verify_pages(self, conn: sqlite3.Connection, verified: Optional[bool]) -> None:
        """Refuse a file with damage in any page, unless it is as the last writer left it.

        SQLite only notices damage in the pages a query touches, so a full
        ``quick_check`` is what proves the file sound; it is linear in the
        file's size, so a call skips it when the file is byte for byte as a
        berth writer last committed it (the stamp beside it). Writers compare
        the stamp under the writers' lock, so no other berth writer can change
        the file between the stat and the reads that follow; a reader may see a
        berth writer commit in between, which is no damage.
        """
        if verified is None:
            verified = self._stamp_matches()
        if verified:
            return
        problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise StoreError("db_path %s is corrupt (%s); refusing to touch it, nothing changed" % (self.path, problem))

    def _check_schema(self, conn: sqlite3.Connection, migrate: bool, verified: Optional[bool] = None) -> _Schema:
        """Bring the schema to SCHEMA_VERSION (when writing) and say what the file holds.

        ``verified``: the stamp was found to match just before the transaction
        (None: compare it now).
        """
        app_id, version, objects, has_table, has_free_list, has_origin = conn.execute(_SCHEMA_FACTS).fetchone()
        blank = app_id == 0 and version == 0 and objects == 0
        if blank:
            if not migrate:
                return _Schema(False, False)
            conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
        elif app_id != APPLICATION_ID:
            raise StoreError(
                "db_path %s is an SQLite database of another application (application_id %d); refusing to touch it"
                % (self.path, app_id)
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                "db_path %s has schema version %d, newer than this berth.ports knows (%d); upgrade the collection"
                % (self.path, version, SCHEMA_VERSION)
            )
        if version < SCHEMA_VERSION and migrate:
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
            _app_id, version, _objects, has_table, has_free_list, has_origin = conn.execute(_SCHEMA_FACTS).fetchone()
        elif version < 1:
            return _Schema(False, False)
        if not has_table:
            raise StoreError("db_path %s is corrupt: schema version %d without an allocations table" % (self.path, version))
        self._verify_pages(conn, verified)
        return _Schema(True, bool(has_free_list), bool(has_origin))


class _LockTimeout(Exception):
    pass


def _raise_lock_timeout(signum: int, frame: object) -> None:
    raise _LockTimeout()


def _flock(fd: int, timeout: float) -> bool:
    """Take an exclusive flock on ``fd`` within ``timeout`` seconds; False if it could not."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout
    # A blocking flock, cut short by SIGALRM, when this thread may use signals
    # and nobody else has a timer running; otherwise poll.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    ):
        previous = signal.signal(signal.SIGALRM, _raise_lock_timeout)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return True
            except _LockTimeout:
                return False
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
    while time.monotonic() < deadline:
        time.sleep(0.002)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False


def load_rows(store: AllocationStore, proto: Optional[str] = None, readonly: bool = False) -> Sequence[Allocation]:
    with store.read(readonly=readonly) as tx:
        return tx.rows(proto=proto)
