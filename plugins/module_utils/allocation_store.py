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
* read-only calls never create anything;
* whatever goes wrong leaves as a StoreError naming the file, never a raw
  OSError or sqlite3 error.

This file is the front; the parts live by concern: store_files (the file on
disk and the ``-verified`` stamp), store_schema (schema, migrations, checks),
store_locks (the thread lock, the writers' flock queue, the descriptor rule
and the kept connection), store_transaction (reads and writes in one
transaction).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import weakref
from typing import Iterator, List, Optional, Sequence, Union
from urllib.parse import quote

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import Allocation
from ansible_collections.berth.ports.plugins.module_utils.errors import StoreError
from ansible_collections.berth.ports.plugins.module_utils.store_files import (
    check_header,
    check_parent,
    check_path,
    create_file,
    open_checked,
    open_regular,
    prepare_parent,
    stamp_matches,
    write_stamp,
)
from ansible_collections.berth.ports.plugins.module_utils.store_locks import (
    DESCRIPTORS,
    HeldFile,
    let_go,
    serialised,
    writers_queue,
)
from ansible_collections.berth.ports.plugins.module_utils.store_schema import (  # noqa: F401 (re-exported)
    APPLICATION_ID,
    SCHEMA_VERSION,
    check_schema,
)
from ansible_collections.berth.ports.plugins.module_utils.store_transaction import Transaction

DEFAULT_DB_PATH = "/var/lib/berth/ports.db"

DEFAULT_BUSY_TIMEOUT = 30.0

# Nothing but berth errors leave the store: write() and read() turn these,
# wherever they are met (SQLite, the file system, the caller's work inside a
# transaction), into a StoreError naming the file (_translate).
TRANSLATED = (OSError, sqlite3.Error)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class AllocationStore:
    """The allocation database at ``path``.

    A store keeps the file open between its transactions (see
    store_locks.HeldFile); ``close()`` lets go of it, and so does dropping the
    store.
    """

    def __init__(self, path: str = DEFAULT_DB_PATH, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = check_path(path)
        self.busy_timeout = busy_timeout
        self._held = [None]  # type: List[Optional[HeldFile]]
        weakref.finalize(self, let_go, self._held)

    def close(self) -> None:
        """Close the file this store keeps open; the next call opens it again."""
        with serialised(self.busy_timeout, self._locked_out):
            let_go(self._held)

    # -- public entry points -------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Transaction]:
        """An exclusive write transaction; creates the file (0600, dir 0700) if needed."""
        try:
            with serialised(self.busy_timeout, self._locked_out):
                held = self._kept()
                if held is None:  # (else the file is there, and so is its directory)
                    prepare_parent(self.path)
                    create_file(self.path)
                    held = self._held_file()
                try:
                    with writers_queue(held.fd, self.busy_timeout, self._locked_out):
                        # Checked once the lock is ours, when no berth writer is half way through.
                        check_header(self.path, held.fd)
                        verified = self._trust_cache(held)
                        with self._transaction(held.conn, "BEGIN IMMEDIATE") as conn:
                            schema = check_schema(conn, self.path, migrate=True, verified=verified, held=held)
                            yield Transaction(conn, writable=True, schema=schema)
                        # Committed: the file is now exactly what SQLite wrote, so the
                        # next call may skip the full check while the file stays so.
                        write_stamp(self.path)
                except BaseException:
                    let_go(self._held)  # after any failure, start afresh
                    raise
        except TRANSLATED as exc:
            raise self._translate(exc) from exc

    @contextlib.contextmanager
    def read(self, readonly: bool = False) -> Iterator[Transaction]:
        """A consistent read; a missing database reads as empty and is not created.

        ``readonly`` opens the file read-only (the lookup, on files it may not
        own); otherwise a hot journal left by a crashed writer can be rolled back.
        """
        try:
            check_parent(self.path)
            if not os.path.lexists(self.path):
                yield Transaction(None)
                return
            with serialised(self.busy_timeout, self._locked_out):
                if readonly or os.path.islink(self.path):
                    with self._read_once(readonly) as tx:
                        yield tx
                    return
                held = self._held_file()
                try:
                    check_header(self.path, held.fd)
                    verified = self._trust_cache(held)
                    with self._transaction(held.conn, "BEGIN") as conn:
                        schema = check_schema(conn, self.path, migrate=False, verified=verified)
                        yield Transaction(conn if schema.usable else None, schema=schema)
                except BaseException:
                    let_go(self._held)
                    raise
        except TRANSLATED as exc:
            raise self._translate(exc) from exc

    # -- internals --------------------------------------------------------------

    @contextlib.contextmanager
    def _read_once(self, readonly: bool) -> Iterator[Transaction]:
        """The lookup, on the controller, once per call; or a symlink, which
        only readers follow: a connection for this read only."""
        fd = open_checked(self.path, follow=True)
        try:
            once = self._connect(readonly)
            try:
                with self._transaction(once, "BEGIN") as conn:
                    schema = check_schema(conn, self.path, migrate=False)
                    yield Transaction(conn if schema.usable else None, schema=schema)
            finally:
                once.close()
        finally:
            DESCRIPTORS.close(fd)

    def _kept(self) -> Optional[HeldFile]:
        """The file this store keeps open, if it is still the one at ``path``."""
        held = self._held[0]
        return held if held is not None and held.is_current(self.path) else None

    def _held_file(self) -> HeldFile:
        """The file this store keeps open, (re)opened when it is not the one at ``path``."""
        held = self._kept()
        if held is not None:
            return held
        let_go(self._held)
        fd = open_regular(self.path)
        conn = None  # type: Optional[sqlite3.Connection]
        try:
            conn = self._connect(readonly=False)
            self._held[0] = HeldFile(fd, conn)
        except BaseException:
            if conn is not None:  # SQLite's first, ours last, as HeldFile.close does
                conn.close()
            DESCRIPTORS.close(fd)
            raise
        return self._held[0]

    def _trust_cache(self, held: HeldFile) -> bool:
        """Whether the file is as a berth writer left it (see store_schema.verify_pages);
        a connection that has read the file before keeps its page cache only then.

        SQLite notices other SQLite writers by the change counter in the
        header, not bytes written in place by anything else: the full check
        that follows must read such a file from disk, not from the cache.
        Writers ask once they hold the writers' lock, so no berth writer can
        change the file before their transaction starts.
        """
        verified = stamp_matches(self.path)
        if held.used and not verified:
            held.reconnect(self._connect(readonly=False))
        held.used = True
        return verified

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        # mode=rw: never let SQLite create the file behind our checks. Threads
        # may share the connection: IN_PROCESS lets one use it at a time.
        uri = "file:%s?mode=%s" % (quote(os.path.abspath(self.path)), "ro" if readonly else "rw")
        return sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
        with DESCRIPTORS.transaction_open():
            try:
                conn.execute(begin)
                yield conn
                conn.execute("COMMIT")
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

    def _locked_out(self, by: str) -> StoreError:
        return StoreError(
            "db_path %s: still locked by another %s after %.0fs; nothing changed" % (self.path, by, self.busy_timeout)
        )

    def _translate(self, exc: Union[OSError, sqlite3.Error]) -> StoreError:
        if isinstance(exc, OSError):
            text = exc.strerror or str(exc)
            return StoreError("db_path %s: %s; nothing changed" % (self.path, text))
        text = str(exc)
        if "locked" in text or "busy" in text:
            return self._locked_out("writer")
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
            return StoreError("db_path %s is corrupt (%s); refusing to touch it, nothing changed" % (self.path, text))
        return StoreError("db_path %s: %s; nothing changed" % (self.path, text))


def load_rows(store: AllocationStore, proto: Optional[str] = None, readonly: bool = False) -> Sequence[Allocation]:
    with store.read(readonly=readonly) as tx:
        return tx.rows(proto=proto)


__all__ = [
    "APPLICATION_ID",
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_DB_PATH",
    "SCHEMA_VERSION",
    "AllocationStore",
    "Transaction",
    "load_rows",
    "utc_now",
]
