# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may touch the database file when: the locks of allocation_store.

* ``IN_PROCESS``: one transaction at a time per process (threads, forks);
* ``DESCRIPTORS``: the one place our descriptors of the file are closed,
  never while a transaction of the process is open;
* ``HeldFile``: the descriptor and connection a store keeps between calls;
* ``writers_queue``: berth writers wait for each other on a blocking flock.

docs/docsite/rst/lock_design.rst says why each exists; the rule that no
descriptor is closed under a transaction lives in DescriptorCloser alone.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import signal
import sqlite3
import threading
import time
from typing import Callable, Deque, Iterator, List, Optional

# SQLite's locks are POSIX locks, which belong to the process: closing any
# descriptor of the file (a reader's one-shot descriptor, a store letting go
# of its file) drops the locks another thread's connection holds. One
# transaction at a time per process keeps threaded callers (the agent daemon)
# safe; separate processes still serialise through SQLite's own locking.
# Descriptors of ours are closed only by DESCRIPTORS, never inside a
# transaction (docs/docsite/rst/lock_design.rst).
IN_PROCESS = threading.RLock()

# A fork waits for the transaction in flight, so that no child ever inherits a
# connection in the middle of one (closing that copy would roll back, and
# delete the journal, under the parent's feet).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=IN_PROCESS.acquire, after_in_parent=IN_PROCESS.release, after_in_child=IN_PROCESS.release)

# Connections inherited in the middle of a transaction anyway (a fork from
# inside one, which the hook cannot wait for): kept referenced and never closed
# by us, so this process does not roll back what the parent is writing.
_INHERITED = []  # type: List[sqlite3.Connection]


class DescriptorCloser:
    """Closes this process's own descriptors of database files, never under a transaction.

    SQLite defers closing its own descriptors while any connection of the
    process holds a lock on the file; ours must do the same. A store may be
    let go of at any moment on any thread (the garbage collector runs its
    finalizer wherever it likes), so a descriptor handed here is closed at
    once only when this thread can take ``IN_PROCESS`` and no transaction of
    the process is open; otherwise it waits, and the last transaction to end
    closes it. Only transactions (``transaction_open``) change ``_open``, and
    they run under ``IN_PROCESS``.
    """

    def __init__(self) -> None:
        self._open = 0
        self._waiting = collections.deque()  # type: Deque[int]

    @contextlib.contextmanager
    def transaction_open(self) -> Iterator[None]:
        """The span in which a connection of this process may hold locks (caller holds IN_PROCESS)."""
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
        if IN_PROCESS.acquire(blocking=False):
            try:
                if self._open == 0:
                    self._close_waiting()
            finally:
                IN_PROCESS.release()

    def _close_waiting(self) -> None:
        while self._waiting:
            try:
                os.close(self._waiting.popleft())
            except (IndexError, OSError):
                pass


DESCRIPTORS = DescriptorCloser()


class HeldFile:
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
        self.schema_key = None  # type: Optional[bytes]  # see store_schema.check_schema
        self.schema = None  # type: Optional[object]
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
        self.schema_key = self.schema = None
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
        DESCRIPTORS.close(self.fd)


def let_go(box: List[Optional[HeldFile]]) -> None:
    """Close the file held in ``box`` (a store's one-element list), if any."""
    held, box[0] = box[0], None
    if held is not None:
        held.close()


@contextlib.contextmanager
def serialised(timeout: float, on_timeout: Callable[[str], Exception]) -> Iterator[None]:
    """Hold IN_PROCESS; ``on_timeout("thread")`` is raised when it cannot be had in time."""
    if not IN_PROCESS.acquire(timeout=timeout):
        raise on_timeout("thread")
    try:
        yield
    finally:
        IN_PROCESS.release()


@contextlib.contextmanager
def writers_queue(fd: int, timeout: float, on_timeout: Callable[[str], Exception]) -> Iterator[None]:
    """Wait for other berth writers in the kernel's lock queue.

    SQLite's busy handler sleeps and retries (1, 2, 5, 10... ms), so with
    many writers the lock sits idle between them; a blocking flock() on
    the database file wakes the next writer the moment the last one is
    done. BSD flock and SQLite's POSIX locks do not interact on Linux, and
    this descriptor lives as long as the connection does, so it cannot
    drop SQLite's locks. BEGIN IMMEDIATE still guards against writers
    that do not queue here.
    """
    if not _flock(fd, timeout):
        raise on_timeout("writer")
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


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
