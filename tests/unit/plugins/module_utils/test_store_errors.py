"""No raw OSError or sqlite3 error leaves the store: each becomes one line naming the file
(a StoreError; the allocator adds whose request it was)."""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import re
import sqlite3
import threading
import time
from urllib.parse import quote

import pytest

from ansible_collections.berth.ports.plugins.module_utils import store_files, store_locks
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows, utc_now
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate, deallocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings

SETTINGS = build_settings("25000-25999")


def _write(store):
    allocate(store, build_allocation_request("web", "tcp", 1, settings=SETTINGS), SETTINGS)


def _read(store):
    load_rows(store)


def _read_only(store):
    load_rows(store, readonly=True)


def _free(store):
    deallocate(store, "web")


CALLS = [_write, _read, _read_only, _free]
IDS = ["write", "read", "readonly-read", "deallocate"]


def _assert_one_line_naming(exc_info, path):
    text = str(exc_info.value)
    assert path in text and "\n" not in text
    assert not isinstance(exc_info.value, (OSError, sqlite3.Error))


def _existing_database(tmp_path):
    path = str(tmp_path / "ports.db")
    store = AllocationStore(path)
    _write(store)
    store.close()
    return path


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_directory_where_the_file_should_be(tmp_path, call):
    path = tmp_path / "ports.db"
    path.mkdir()
    with pytest.raises(PortsError) as exc_info:
        call(AllocationStore(str(path)))
    _assert_one_line_naming(exc_info, str(path))


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_foreign_file(tmp_path, call):
    path = tmp_path / "ports.db"
    path.write_bytes(b"not a database\n" * 300)
    with pytest.raises(PortsError, match="not an SQLite database") as exc_info:
        call(AllocationStore(str(path)))
    _assert_one_line_naming(exc_info, str(path))


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_file_sqlite_cannot_open(tmp_path, monkeypatch, call):
    # What a file without permission looks like to SQLite (the tests may run as root).
    path = _existing_database(tmp_path)

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refuse)
    with pytest.raises(PortsError, match="unable to open database file") as exc_info:
        call(AllocationStore(path))
    _assert_one_line_naming(exc_info, path)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_file_the_kernel_will_not_open(tmp_path, monkeypatch, call):
    path = _existing_database(tmp_path)
    real_open = os.open

    def refuse(name, *args, **kwargs):
        if os.fspath(name) == path:
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PortsError, match="Permission denied") as exc_info:
        call(AllocationStore(path))
    _assert_one_line_naming(exc_info, path)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_disk_error_inside_the_transaction(tmp_path, monkeypatch, call):
    path = _existing_database(tmp_path)
    real_connect = sqlite3.connect

    class Failing(sqlite3.Connection):
        def execute(self, sql, *args):  # pylint: disable=arguments-differ
            if sql.startswith("SELECT"):
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=Failing, **k))
    with pytest.raises(PortsError, match="disk I/O error; nothing changed") as exc_info:
        call(AllocationStore(path))
    _assert_one_line_naming(exc_info, path)


def test_a_lock_the_kernel_refuses(tmp_path, monkeypatch):
    path = _existing_database(tmp_path)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(store_locks.fcntl, "flock", no_locks)
    with pytest.raises(PortsError, match="No locks available; nothing changed") as exc_info:
        _write(AllocationStore(path))
    _assert_one_line_naming(exc_info, path)


def test_a_new_file_that_cannot_be_made_private(tmp_path, monkeypatch):
    path = str(tmp_path / "ports.db")

    def refuse(fd, mode):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(store_files.os, "fchmod", refuse)
    with pytest.raises(PortsError, match="cannot make it 0600") as exc_info:
        _write(AllocationStore(path))
    _assert_one_line_naming(exc_info, path)


def test_the_store_works_again_once_the_fault_is_gone(tmp_path, monkeypatch):
    path = _existing_database(tmp_path)
    store = AllocationStore(path)

    def io_error(fd, operation):
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(store_locks.fcntl, "flock", io_error)
        with pytest.raises(PortsError, match="Input/output error"):
            allocate(store, build_allocation_request("db", "tcp", 1, settings=SETTINGS), SETTINGS)
    allocate(store, build_allocation_request("db", "tcp", 1, settings=SETTINGS), SETTINGS)
    assert sorted(row.owner for row in load_rows(store)) == ["db", "web"]


# -- the store's front: its connections, its clock and the words of its errors ---------------------

def _digest(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def local_time_not_utc():
    """The host's local time five hours behind UTC (a POSIX TZ string needs no zoneinfo)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_created_is_utc_in_the_spec_format_whatever_the_local_time(local_time_not_utc):
    # utc_now mutants 4-7: local time, or any other format.
    stamp = utc_now()
    assert re.match(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z", stamp), stamp
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) < 5


def test_the_database_is_the_file_at_the_path_and_nothing_else_is_created(tmp_path, monkeypatch):
    # _connect mutants 14, 18, 22: without uri=True SQLite takes "file:...?mode=rw" for a
    # relative file name and keeps the allocations there, in the working directory.
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    data.mkdir()
    monkeypatch.chdir(str(cwd))
    path = str(data / "ports.db")
    _write(AllocationStore(path))
    with contextlib.closing(sqlite3.connect(path)) as plain:
        assert plain.execute("SELECT owner FROM allocations").fetchall() == [("web",)]
    assert [row.owner for row in load_rows(AllocationStore(path), readonly=True)] == ["web"]
    assert os.listdir(str(cwd)) == []
    assert sorted(os.listdir(str(data))) == ["ports.db", "ports.db-verified"]


def test_every_connection_names_the_file_by_uri_with_its_mode(tmp_path, monkeypatch):
    # _connect mutants 14, 18, 22. This host's SQLite reads "file:" names as URIs whatever
    # it is asked (built with SQLITE_USE_URI); one built without it, as hosts' may be, takes
    # uri=False for a plain file name: "file:...?mode=rw" in the working directory, created,
    # with no mode at all. So the call itself is checked.
    path = str(tmp_path / "ports.db")
    real_connect, calls = sqlite3.connect, []

    def recording(database, **kwargs):
        calls.append((database, kwargs.get("uri")))
        return real_connect(database, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording)
    store = AllocationStore(path)
    _write(store)
    load_rows(store, readonly=True)
    prefix = "file:" + quote(path)
    assert calls == [(prefix + "?mode=rw", True), (prefix + "?mode=ro", True)]


def test_a_write_through_a_read_only_read_fails_and_changes_nothing(tmp_path):
    # _connect mutant 7: the read-only read must open the file with mode=ro.
    # (Transaction.apply refuses any read() transaction before SQLite is asked,
    # so the connection itself is what shows the mode.)
    path = _existing_database(tmp_path)
    before = _digest(path)
    with pytest.raises(PortsError) as exc_info:
        with AllocationStore(path).read(readonly=True) as tx:
            tx._conn.execute("DELETE FROM allocations")  # pylint: disable=protected-access
    assert str(exc_info.value) == "db_path %s: attempt to write a readonly database; nothing changed" % path
    assert _digest(path) == before


def test_a_read_only_read_keeps_no_file_open(tmp_path):
    # load_rows mutant 2: readonly must reach the store (the lookup opens the file once per call).
    path = _existing_database(tmp_path)
    store = AllocationStore(path)
    fds = len(os.listdir("/proc/self/fd"))
    assert [row.owner for row in load_rows(store, readonly=True)] == ["web"]
    assert len(os.listdir("/proc/self/fd")) == fds
    load_rows(store)  # an ordinary read keeps the file (a descriptor and a connection)
    assert len(os.listdir("/proc/self/fd")) == fds + 2


def test_load_rows_of_one_proto(tmp_path):
    # load_rows mutant 3.
    path = _existing_database(tmp_path)
    store = AllocationStore(path)
    allocate(store, build_allocation_request("dns", "udp", 1, settings=SETTINGS), SETTINGS)
    assert [row.owner for row in load_rows(store, "udp")] == ["dns"]
    assert [row.owner for row in load_rows(store, "tcp")] == ["web"]


@contextlib.contextmanager
def _locked_by_another_writer(path, seconds=None):
    """Another connection holds an exclusive lock on ``path``; given ``seconds``, it lets go then."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(seconds, other.rollback) if seconds is not None else None
    try:
        if timer is not None:
            timer.start()
        yield
    finally:
        if timer is not None:
            timer.join()
        other.close()


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_a_locked_database_waits_the_busy_timeout_then_says_so(tmp_path, call):
    # _connect mutant 19 (SQLite's default 5s instead of busy_timeout); _translate mutants
    # 10-12 and 17-19 (the one-line "still locked" message).
    path = _existing_database(tmp_path)
    with _locked_by_another_writer(path):
        started = time.monotonic()
        with pytest.raises(PortsError) as exc_info:
            call(AllocationStore(path, busy_timeout=0.2))
        waited = time.monotonic() - started
    # (the allocator puts whose request it was in front)
    assert str(exc_info.value).endswith("db_path %s: still locked by another writer after 0s; nothing changed" % path)
    assert 0.15 <= waited < 2.5


def test_a_lock_let_go_within_the_busy_timeout_is_waited_for(tmp_path):
    path = _existing_database(tmp_path)
    store = AllocationStore(path, busy_timeout=10)
    with _locked_by_another_writer(path, seconds=0.2):
        started = time.monotonic()
        allocate(store, build_allocation_request("db", "tcp", 1, settings=SETTINGS), SETTINGS)
        assert time.monotonic() - started >= 0.15
    assert [row.owner for row in load_rows(store)] == ["web", "db"]


def test_close_while_another_thread_writes_longer_than_the_busy_timeout(tmp_path):
    # close mutant 2: the wait for the thread lock ends in the store's message, not a TypeError.
    path = _existing_database(tmp_path)
    store, writer = AllocationStore(path, busy_timeout=0.05), AllocationStore(path)
    inside, done = threading.Event(), threading.Event()

    def write_slowly():
        with writer.write():
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=write_slowly)
    thread.start()
    try:
        assert inside.wait(5)
        with pytest.raises(PortsError) as exc_info:
            store.close()
    finally:
        done.set()
        thread.join(5)
    assert str(exc_info.value) == "db_path %s: still locked by another thread after 0s; nothing changed" % path
    store.close()  # once the writer is done


def test_an_os_error_inside_a_transaction_says_what_the_kernel_said(tmp_path):
    # _translate mutant 2: the strerror alone, not "[Errno 13] ...: 'path'".
    path = _existing_database(tmp_path)
    with pytest.raises(PortsError) as exc_info:
        with AllocationStore(path).write():
            raise PermissionError(errno.EACCES, "Permission denied", path)
    assert str(exc_info.value) == "db_path %s: Permission denied; nothing changed" % path


def test_an_os_error_without_errno_inside_a_transaction_keeps_its_text(tmp_path):
    # _translate mutant 3: an OSError made of a message alone (listening_ports raises such).
    path = _existing_database(tmp_path)
    with pytest.raises(PortsError) as exc_info:
        with AllocationStore(path).write():
            raise OSError("sock_diag: empty answer")
    assert str(exc_info.value) == "db_path %s: sock_diag: empty answer; nothing changed" % path


@pytest.mark.parametrize("call", CALLS[:3], ids=IDS[:3])
def test_a_malformed_schema_page_is_called_corrupt_and_left_alone(tmp_path, call):
    # _translate mutants 22, 23: SQLite's "database disk image is malformed".
    path = _existing_database(tmp_path)
    with open(path, "r+b") as handle:  # the header stays; the schema's b-tree is garbage
        handle.seek(100)
        handle.write(b"\xa5" * 100)
    before = _digest(path)
    with pytest.raises(PortsError) as exc_info:
        call(AllocationStore(path))
    assert str(exc_info.value).endswith(
        "db_path %s is corrupt (database disk image is malformed); refusing to touch it, nothing changed" % path
    )
    assert _digest(path) == before


def test_rollback_leaves_the_connection_outside_its_transaction(tmp_path):
    # _rollback mutant 2 (a failed ROLLBACK is swallowed: the transaction would stay open).
    path = _existing_database(tmp_path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM allocations")
        AllocationStore._rollback(conn)  # pylint: disable=protected-access
        assert not conn.in_transaction
        assert conn.execute("SELECT owner FROM allocations").fetchall() == [("web",)]
        AllocationStore._rollback(conn)  # pylint: disable=protected-access  # outside one: nothing to do
        assert not conn.in_transaction


def test_a_store_reuses_its_connection_while_the_file_is_as_it_left_it(tmp_path, monkeypatch):
    # _held_file mutant 1 (a new file and connection on every read) and HeldFile.__init__
    # mutant 4 (a fresh connection replaced at once): SQLite parses the whole schema per connection.
    path = str(tmp_path / "ports.db")
    real_connect, connects = sqlite3.connect, []

    def counting(*args, **kwargs):
        connects.append(args[0])
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    store = AllocationStore(path)
    _write(store)
    load_rows(store)
    load_rows(store)
    allocate(store, build_allocation_request("db", "tcp", 1, settings=SETTINGS), SETTINGS)
    assert [row.owner for row in load_rows(store)] == ["web", "db"]
    assert len(connects) == 1
    with contextlib.closing(real_connect(path, isolation_level=None)) as plain:  # a writer that is not berth
        plain.execute("DELETE FROM allocations")
    assert load_rows(store) == []  # read afresh, on a new connection (an empty page cache)
    assert len(connects) == 2
