"""A store keeps its database file open between transactions (a connection
and a descriptor): it must never trust what it holds more than the file that
is at the path now."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import Allocation, Plan
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
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
