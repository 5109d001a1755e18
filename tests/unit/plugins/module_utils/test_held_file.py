"""A store keeps its database file open between transactions (a connection
and a descriptor): it must never trust what it holds more than the file that
is at the path now."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.berth.ports.plugins.module_utils import store_locks
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation, Plan
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.store_locks import DescriptorCloser, HeldFile, _flock
from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import Host, digest


def owners(store):
    return [row.owner for row in load_rows(store)]


def test_writes_of_another_store_are_seen_by_one_that_kept_the_file_open(tmp_path):
    one, other = Host(tmp_path / "ports.db"), Host(tmp_path / "ports.db")
    ports = []
    for n in range(6):
        ports.extend((one if n % 2 else other).allocate("svc%d" % n, 2).after.ports)
    assert len(ports) == len(set(ports)) == 12
    assert owners(one.store) == owners(other.store) == ["svc%d" % n for n in range(6)]


def test_a_file_replaced_at_the_path_is_the_one_used_next(tmp_path):
    path = tmp_path / "ports.db"
    host = Host(path)
    host.allocate("web", 2)
    os.rename(str(path), str(tmp_path / "moved.db"))
    moved = digest(tmp_path / "moved.db")
    assert owners(host.store) == []  # nothing at the path: reads as empty
    Host(path).allocate("db", 1)
    assert owners(host.store) == ["db"]
    host.allocate("cache", 1)
    assert owners(AllocationStore(str(path))) == ["db", "cache"]
    assert digest(tmp_path / "moved.db") == moved


def test_a_file_deleted_under_the_store_is_created_again(tmp_path):
    path = tmp_path / "ports.db"
    host = Host(path)
    host.allocate("web", 2)
    os.unlink(str(path))
    host.allocate("db", 1)
    assert owners(AllocationStore(str(path))) == ["db"]


def test_garbage_over_the_whole_held_file_is_refused_untouched(host, tmp_path):
    host.allocate("web", 2)
    path = tmp_path / "ports.db"
    size = os.path.getsize(str(path))
    with open(str(path), "r+b") as handle:  # same inode, every byte replaced
        handle.write(b"\xa5" * size)
    damaged = digest(path)
    with pytest.raises(PortsError, match="not an SQLite database"):
        host.allocate("db", 1)
    with pytest.raises(PortsError, match="not an SQLite database"):
        host.rows()
    assert digest(path) == damaged


def test_close_lets_go_and_the_next_call_opens_again(host, tmp_path):
    host.allocate("web", 1)
    fds = len(os.listdir("/proc/self/fd"))
    host.store.close()
    assert len(os.listdir("/proc/self/fd")) == fds - 2  # our descriptor and SQLite's
    host.store.close()  # twice is harmless
    host.allocate("db", 1)
    assert [r.owner for r in host.rows()] == ["web", "db"]


def test_a_dropped_store_closes_its_file(tmp_path):
    fds = len(os.listdir("/proc/self/fd"))
    store = AllocationStore(str(tmp_path / "ports.db"))
    Host(tmp_path / "ports.db").allocate("web", 1)
    assert owners(store) == ["web"]
    del store
    assert len(os.listdir("/proc/self/fd")) == fds


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_file_and_the_parent_keeps_working(host, tmp_path):
    host.allocate("parent-before", 2)
    pid = os.fork()
    if pid == 0:  # the child: same store object, inherited descriptor and connection
        code = 1
        try:
            host.allocate("child", 2)
            code = 0
        finally:
            os._exit(code)  # pylint: disable=protected-access
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    host.allocate("parent-after", 2)
    rows = host.rows()
    assert [r.owner for r in rows] == ["parent-before", "child", "parent-after"]
    ports = [p for r in rows for p in r.range.ports()]
    assert len(ports) == len(set(ports)) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_waits_for_the_transaction_in_flight(host):
    host.allocate("web", 1)
    inside, forked = threading.Event(), []

    def fork_while_writing():
        assert inside.wait(5)
        pid = os.fork()
        if pid == 0:
            os._exit(0)  # pylint: disable=protected-access
        forked.append(host.store.path)
        os.waitpid(pid, 0)

    thread = threading.Thread(target=fork_while_writing)
    thread.start()
    with host.store.write():
        inside.set()
        thread.join(0.5)
        assert forked == []  # the fork is still waiting for this transaction
    thread.join(5)
    assert forked == [host.store.path]


# -- a descriptor of the database file is never closed under a transaction --------------------

# Another process asking for the write lock at once: exit 0 if it got it.
_OTHER_WRITER = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
    "try:\n"
    "    conn.execute('BEGIN IMMEDIATE')\n"
    "except sqlite3.OperationalError as exc:\n"
    "    sys.exit(str(exc))\n"
    "conn.execute('ROLLBACK')\n"
)


def another_process_can_write(path):
    done = subprocess.run([sys.executable, "-c", _OTHER_WRITER, str(path)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0 or "locked" in done.stderr, done.stderr
    return done.returncode == 0


def still_open(fd, path):
    """Whether descriptor ``fd`` of this process is still open on ``path``."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd) == str(path)
    except OSError:
        return False


@pytest.mark.parametrize("let_go", ["close", "drop"])
def test_a_store_let_go_of_on_another_thread_keeps_the_writers_locks(tmp_path, let_go):
    """POSIX locks belong to the process: had the other store closed its descriptor of
    the file while this transaction was open, another process could write beside it
    (and a reader could roll its journal back under it)."""
    path = tmp_path / "ports.db"
    writer = Host(path)
    writer.allocate("web", 1)
    others = [AllocationStore(str(path))]
    assert owners(others[0]) == ["web"]  # it holds the file open now
    fd = others[0]._held[0].fd  # pylint: disable=protected-access
    inside, finished = threading.Event(), threading.Event()

    def let_go_meanwhile():
        assert inside.wait(5)
        if let_go == "close":
            others[0].close()  # waits for the transaction
        else:
            others.pop()  # the last reference: the store's finalizer runs on this thread
            gc.collect()
        finished.set()

    thread = threading.Thread(target=let_go_meanwhile)
    thread.start()
    with writer.store.write() as tx:
        tx.apply(Plan(add=(Allocation("db", "tcp", 25100, 25100, False, "static", "now"),)))
        inside.set()
        # A close waits for the transaction; a dropped store's finalizer must not.
        assert finished.wait(0.5) is (let_go == "drop")
        assert not another_process_can_write(path)
        assert still_open(fd, path)
    thread.join(5)
    assert finished.is_set()
    assert not still_open(fd, path)  # closed once the transaction ended
    assert another_process_can_write(path)
    assert owners(writer.store) == ["web", "db"]


# -- the parts of store_locks on their own ------------------------------------------------------

def test_a_descriptor_is_closed_at_once_outside_a_transaction_and_after_one_inside(tmp_path):
    # DescriptorCloser.__init__ mutants 1-3 (the module's DESCRIPTORS is made at import only).
    closer = DescriptorCloser()
    path = tmp_path / "ports.db"
    path.write_bytes(b"")
    fd = os.open(str(path), os.O_RDONLY)
    closer.close(fd)
    assert not still_open(fd, path)
    with closer.transaction_open():
        fd = os.open(str(path), os.O_RDONLY)
        closer.close(fd)
        assert still_open(fd, path)
    assert not still_open(fd, path)


def _held(path):
    fd = os.open(str(path), os.O_RDWR)
    return HeldFile(fd, sqlite3.connect(str(path), isolation_level=None))


def test_reconnect_closes_the_old_connection_and_keeps_the_descriptor(host, tmp_path):
    # HeldFile.reconnect mutant 4: the old connection (and its descriptor) left open.
    host.allocate("web", 1)
    held = _held(tmp_path / "ports.db")
    old, fd = held.conn, held.fd
    held.reconnect(sqlite3.connect(str(tmp_path / "ports.db"), isolation_level=None))
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        old.execute("SELECT 1")
    assert held.fd == fd and still_open(fd, tmp_path / "ports.db")
    assert held.conn.execute("SELECT owner FROM allocations").fetchall() == [("web",)]
    held.close()
    assert not still_open(fd, tmp_path / "ports.db")


def test_a_held_file_closed_by_its_own_process_mid_transaction_closes_its_connection(host, tmp_path):
    # HeldFile.close mutants 3, 4: only a forked child's copy is kept unclosed.
    host.allocate("web", 1)
    held = _held(tmp_path / "ports.db")
    conn = held.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM allocations")
    held.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")
    assert conn not in store_locks._INHERITED  # pylint: disable=protected-access
    assert owners(host.store) == ["web"]  # closing rolled the transaction back


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_inside_a_transaction_leaves_the_parents_journal_alone(host, tmp_path):
    # HeldFile.close mutants 5, 6: closing the inherited connection in the child rolls
    # the parent's transaction back there, and deletes the journal under its feet.
    host.allocate("web", 1)
    journal = str(tmp_path / "ports.db-journal")
    with host.store.write() as tx:
        tx.apply(Plan(add=(Allocation("db", "tcp", 25100, 25100, False, "static", "now"),)))
        assert os.path.exists(journal)
        pid = os.fork()  # from the thread inside the transaction: the fork hook lets it through
        if pid == 0:
            code = 1
            try:
                host.store.close()
                code = 0
            finally:
                os._exit(code)  # pylint: disable=protected-access
        status = os.waitpid(pid, 0)[1]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert os.path.exists(journal)
    assert owners(host.store) == ["web", "db"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_keeps_the_inherited_connection_of_a_transaction_unclosed(host, tmp_path):
    # HeldFile.close mutant 6: a connection dropped in the child is closed there all the
    # same, by the garbage collector (sqlite3 connections sit in a reference cycle).
    host.allocate("web", 1)
    journal = str(tmp_path / "ports.db-journal")
    held = _held(tmp_path / "ports.db")
    held.conn.execute("BEGIN IMMEDIATE")
    held.conn.execute("DELETE FROM allocations")
    assert os.path.exists(journal)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            held.close()
            gc.collect()  # the child lives on: a connection nobody references is closed now
            code = 0
        finally:
            os._exit(code)  # pylint: disable=protected-access
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert os.path.exists(journal)
    held.conn.execute("COMMIT")
    held.close()
    assert owners(host.store) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_file_held_by_the_parent_is_not_current_in_a_forked_child(host, tmp_path):
    # HeldFile.is_current mutant 2: the child would go on with the parent's descriptor
    # (whose flock it shares) and connection.
    host.allocate("web", 1)
    held = host.store._held[0]  # pylint: disable=protected-access
    assert held.is_current(str(tmp_path / "ports.db"))
    pid = os.fork()
    if pid == 0:
        os._exit(1 if held.is_current(str(tmp_path / "ports.db")) else 0)  # pylint: disable=protected-access
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# -- the writers' queue: _flock --------------------------------------------------------------------

@contextlib.contextmanager
def _flocked_elsewhere(path, seconds=None):
    """Another open file description holds the flock on ``path``; given ``seconds``, it lets go then."""
    other = os.open(str(path), os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX)
    timer = threading.Timer(seconds, fcntl.flock, (other, fcntl.LOCK_UN)) if seconds is not None else None
    try:
        if timer is not None:
            timer.start()
        yield
    finally:
        if timer is not None:
            timer.join()
        os.close(other)


@pytest.fixture
def lock_file(tmp_path):
    path = tmp_path / "ports.db"
    path.write_bytes(b"")
    fd = os.open(str(path), os.O_RDONLY)
    yield path, fd
    os.close(fd)


def _timed_flock(fd, timeout):
    started = time.monotonic()
    got = _flock(fd, timeout)
    return got, time.monotonic() - started


def test_a_thread_polls_for_the_flock_until_it_is_free_or_the_timeout_ends(lock_file):
    # _flock mutants 8-11 (a thread must not touch signals), 49, 55-57 (the polling loop).
    path, fd = lock_file
    results = []

    def wait_in_a_thread():
        with _flocked_elsewhere(path, seconds=0.1):
            results.append(_timed_flock(fd, 5))
        fcntl.flock(fd, fcntl.LOCK_UN)
        with _flocked_elsewhere(path):
            results.append(_timed_flock(fd, 0.1))

    thread = threading.Thread(target=wait_in_a_thread)
    thread.start()
    thread.join(10)
    assert len(results) == 2
    (got, waited), (got_late, waited_late) = results
    assert got and 0.05 <= waited < 0.6
    assert not got_late and 0.1 <= waited_late < 0.6


@pytest.fixture
def no_alarm_in_use():
    """SIGALRM as a process starts (default action, no timer): _flock may use it."""
    if signal.getitimer(signal.ITIMER_REAL)[0] != 0:
        pytest.skip("a timer of the test runner is running")
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_the_main_thread_waits_in_the_kernel_and_an_alarm_cuts_the_wait_short(lock_file, no_alarm_in_use):
    # _flock mutants 11, 14, 15, 17 (the main thread polls instead), 18 (no handler),
    # 31 (a 1s alarm), 36, 37 (the answers), 42 (an alarm left running).
    path, fd = lock_file
    seen = []

    def look_then_release():
        time.sleep(0.1)
        seen.append((signal.getitimer(signal.ITIMER_REAL)[0], signal.getsignal(signal.SIGALRM)))

    with _flocked_elsewhere(path, seconds=0.2):
        looker = threading.Thread(target=look_then_release)
        looker.start()
        got, waited = _timed_flock(fd, 5)
        looker.join(5)
    assert got and 0.15 <= waited < 1
    (alarm, handler), = seen
    assert 4 < alarm <= 5 and handler is not signal.SIG_DFL  # blocked in flock(), an alarm set
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 and signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    fcntl.flock(fd, fcntl.LOCK_UN)
    with _flocked_elsewhere(path):
        got, waited = _timed_flock(fd, 0.05)
    assert not got and 0.04 <= waited < 0.5
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 and signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


def test_the_main_thread_leaves_a_timer_of_someone_else_alone(lock_file, no_alarm_in_use):
    # _flock mutants 9, 13, 14: a running one-shot timer (its interval 0) is not ours to reset.
    path, fd = lock_file
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 30)
    with _flocked_elsewhere(path, seconds=0.1):
        got, waited = _timed_flock(fd, 5)
    assert got and waited < 1
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 25 and signal.getsignal(signal.SIGALRM) is signal.SIG_IGN
