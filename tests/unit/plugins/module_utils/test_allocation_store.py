"""The SQLite state: permissions, versioning, locking, and refusing files that are not ours."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import stat
import threading

import pytest

from ansible_collections.berth.ports.plugins.module_utils import allocation_store, store_files, store_schema
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    AllocationStore,
    load_rows,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import Allocation, Plan
from ansible_collections.berth.ports.plugins.module_utils.allocator import deallocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import Host, digest


def test_first_write_creates_dir_0700_and_file_0600(make_host, tmp_path):
    path = tmp_path / "var" / "lib" / "berth" / "ports.db"
    host = make_host()
    host.store = AllocationStore(str(path))
    old = os.umask(0o022)
    try:
        host.allocate("web", 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(path.parent)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600


def test_reads_never_create_the_database(tmp_path):
    path = tmp_path / "missing" / "ports.db"
    store = AllocationStore(str(path))
    assert load_rows(store) == []
    assert deallocate(store, "web", "all").changed is False
    assert not path.parent.exists()


def test_schema_is_stamped_with_our_application_id_and_version(host, tmp_path):
    host.allocate("web", 1)
    conn = sqlite3.connect(str(tmp_path / "ports.db"))
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def _make_version_1(path):
    """A database as it was after the first migration step only."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
    for statement in store_schema.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO allocations (owner, proto, first_port, last_port, shared, kind, created)"
        " VALUES ('rgw', 'tcp', 25080, 25080, 0, 'static', '2026-01-01T00:00:00Z')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_older_schema_is_migrated_keeping_its_rows(host, tmp_path):
    path = tmp_path / "ports.db"
    _make_version_1(path)
    # Reading an old schema does not migrate it (reads never write) ...
    assert [r.owner for r in host.rows()] == ["rgw"]
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    # ... the first write does, in its own transaction, and keeps every row.
    host.allocate("web", 1)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = set(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'"))
    conn.close()
    assert {"allocations_by_owner", "allocations_by_port"} <= indexes
    assert host.ranges("rgw") == ["25080-25080"]


def test_failed_migration_leaves_old_schema(host, tmp_path, monkeypatch):
    path = tmp_path / "ports.db"
    _make_version_1(path)
    before = digest(path)
    broken = store_schema.MIGRATIONS[:1] + (("CREATE INDEX x ON nowhere (y)",),)
    monkeypatch.setattr(store_schema, "MIGRATIONS", broken)
    with pytest.raises(PortsError, match="nothing changed"):
        host.allocate("web", 1)
    assert digest(path) == before


def test_newer_schema_is_refused_untouched(host, tmp_path):
    path = tmp_path / "ports.db"
    host.allocate("web", 1)
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    conn.commit()
    conn.close()
    before = digest(path)
    for call in (lambda: host.allocate("x", 1), host.rows, lambda: deallocate(host.store, "web")):
        with pytest.raises(PortsError, match="newer than this berth.ports knows"):
            call()
    assert digest(path) == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a database at all\n" * 10, "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "corrupt"),
    ],
)
def test_garbage_files_are_refused_untouched(host, tmp_path, content, message):
    path = tmp_path / "ports.db"
    path.write_bytes(content)
    for call in (lambda: host.allocate("x", 1), lambda: host.allocate("x", 1, check_mode=True), host.rows):
        with pytest.raises(PortsError, match=message):
            call()
    assert path.read_bytes() == content
    assert sorted(os.listdir(str(tmp_path))) == ["ports.db"]


def test_a_database_failure_says_whose_request_met_it(host, tmp_path):
    path = tmp_path / "ports.db"
    path.write_bytes(b"this is not a database at all\n" * 10)
    with pytest.raises(PortsError, match=r"^owner web \(udp\): db_path .*ports\.db is not an SQLite database"):
        host.allocate("web", 1, proto="udp")
    with pytest.raises(PortsError, match=r"^owner web \(tcp, udp\): db_path .*ports\.db is not an SQLite database"):
        deallocate(host.store, "web", "all")


def test_foreign_sqlite_database_is_refused_untouched(host, tmp_path):
    path = tmp_path / "ports.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE allocations (anything)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(PortsError, match="another application"):
        host.allocate("x", 1)
    assert digest(path) == before


def test_empty_file_is_adopted(host, tmp_path):
    (tmp_path / "ports.db").write_bytes(b"")
    assert host.rows() == []
    assert host.allocate("x", 1).changed


def test_directory_and_file_parent_are_refused(tmp_path, make_host):
    (tmp_path / "adir").mkdir()
    host = make_host()
    host.store = AllocationStore(str(tmp_path / "adir"))
    with pytest.raises(PortsError, match="not a regular file"):
        host.allocate("x", 1)
    (tmp_path / "afile").write_text("keep me")
    host.store = AllocationStore(str(tmp_path / "afile" / "ports.db"))
    with pytest.raises(PortsError, match="not a directory"):
        host.allocate("x", 1)
    with pytest.raises(PortsError, match="not a directory"):
        host.rows()
    assert (tmp_path / "afile").read_text() == "keep me"


@contextlib.contextmanager
def writer_elsewhere(path):
    """Another process (a second playbook run) holding the write lock until the block ends."""
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            with AllocationStore(path).write():
                os.write(ready_w, b"x")
                os.read(release_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        yield
    finally:
        os.write(release_w, b"x")
        os.waitpid(child, 0)


def test_writers_serialise_and_time_out_cleanly(make_host):
    host = make_host()
    host.allocate("a", 1)
    host.store.busy_timeout = 0.2
    with writer_elsewhere(host.store.path):
        before = host.rows()  # readers are not blocked by a RESERVED lock
        with pytest.raises(PortsError, match="locked by another writer"):
            host.allocate("b", 1)
    assert host.rows() == before
    assert host.allocate("b", 1).changed


def test_queueing_leaves_a_callers_alarm_alone(make_host):
    host = make_host()
    host.allocate("a", 1)
    host.store.busy_timeout = 0.2
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        with writer_elsewhere(host.store.path):
            with pytest.raises(PortsError, match="locked by another writer"):
                host.allocate("b", 1)  # polls: the caller owns SIGALRM
            assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert fired == []
    assert host.allocate("b", 1).changed


def test_threads_of_one_process_take_turns(make_host):
    host = make_host()
    host.allocate("a", 1)
    host.store.busy_timeout = 0.2
    held = threading.Event()
    release = threading.Event()

    def hold_lock():
        with AllocationStore(host.store.path).write():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert held.wait(5)
        with pytest.raises(PortsError, match="locked by another thread"):
            host.allocate("b", 1)
    finally:
        release.set()
        thread.join()
    results = []
    workers = [threading.Thread(target=lambda n=n: results.append(host.allocate("t%d" % n, 2))) for n in range(8)]
    host.store.busy_timeout = 30
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ports = [p for r in results for p in r.after.ports]
    assert len(ports) == 16 and len(set(ports)) == 16


def test_failure_inside_transaction_rolls_back(host, monkeypatch):
    host.allocate("a", 2)
    before = host.rows()
    from ansible_collections.berth.ports.plugins.module_utils import allocation_store as mod

    original = mod.Transaction.apply

    def apply_then_fail(self, plan):
        original(self, plan)
        raise RuntimeError("simulated crash after writing")

    monkeypatch.setattr(mod.Transaction, "apply", apply_then_fail)
    with pytest.raises(RuntimeError):
        host.allocate("a", 5)
    monkeypatch.setattr(mod.Transaction, "apply", original)
    assert host.rows() == before


def test_bad_paths_are_refused(tmp_path):
    for bad in ("", None, "a\x00b", 5):
        with pytest.raises(PortsError, match="db_path"):
            AllocationStore(bad)


def _statements(monkeypatch, *stores):
    """Record every SQL statement the store runs from now on, on new connections
    and on the one each of ``stores`` keeps open."""
    seen = []
    real_connect = sqlite3.connect
    for store in stores:
        held = store._held[0]  # pylint: disable=protected-access
        if held is not None:
            held.conn.set_trace_callback(seen.append)

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(allocation_store.sqlite3, "connect", connect)
    return seen


def test_full_check_is_skipped_while_the_file_is_as_the_last_writer_left_it(host, tmp_path, monkeypatch):
    host.allocate("web", 2)
    stamp = tmp_path / "ports.db-verified"
    assert stamp.exists() and stat.S_IMODE(os.stat(str(stamp)).st_mode) == 0o600
    seen = _statements(monkeypatch, host.store)
    host.rows()
    host.allocate("web", 2)
    assert not [s for s in seen if "quick_check" in s]


def test_any_outside_write_brings_the_full_check_back(host, tmp_path, monkeypatch):
    host.allocate("web", 2)
    path = tmp_path / "ports.db"
    os.utime(str(path))  # same bytes, but the file was touched by someone else
    seen = _statements(monkeypatch, host.store)
    host.rows()
    assert [s for s in seen if "quick_check" in s]


def test_garbage_written_in_place_after_a_commit_is_caught(make_host, tmp_path):
    host = make_host(port_range="1-65535")
    for i in range(300):
        host.allocate("own%d" % i, 3)
    path = host.store.path
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:  # a page in the middle, header untouched
        handle.seek((size // 4096 // 2) * 4096)
        handle.write(os.urandom(4096))
    damaged = digest(path)
    with pytest.raises(PortsError, match="corrupt"):
        host.allocate("late", 1)
    with pytest.raises(PortsError, match="corrupt"):
        host.rows()
    assert digest(path) == damaged


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe not text", b"", b"x" * 4096],
    ids=["undecodable", "empty", "longer-than-any-stamp"],
)
def test_a_stamp_file_that_is_not_ours_only_brings_the_full_check_back(host, tmp_path, monkeypatch, content):
    host.allocate("web", 2)
    stamp = tmp_path / "ports.db-verified"
    stamp.write_bytes(content)
    seen = _statements(monkeypatch, host.store)
    host.allocate("db", 1)
    assert [s for s in seen if "quick_check" in s]
    # The write left a stamp that matches again, whatever was there before.
    seen.clear()
    host.allocate("cache", 1)
    assert not [s for s in seen if "quick_check" in s]
    assert len(stamp.read_bytes()) == store_files.STAMP_WIDTH


def test_a_fifo_in_place_of_the_stamp_neither_hangs_nor_fails(host, tmp_path, monkeypatch):
    host.allocate("web", 1)
    stamp = tmp_path / "ports.db-verified"
    stamp.unlink()
    os.mkfifo(str(stamp))
    seen = _statements(monkeypatch, host.store)
    host.allocate("db", 1)
    assert [s for s in seen if "quick_check" in s]
    assert stat.S_ISFIFO(os.stat(str(stamp)).st_mode)
    assert [r.owner for r in host.rows()] == ["web", "db"]


def test_reads_and_check_mode_write_no_stamp(host, tmp_path):
    host.allocate("web", 1)
    (tmp_path / "ports.db-verified").unlink()
    host.rows()
    host.allocate("web", 3, check_mode=True)
    assert sorted(os.listdir(str(tmp_path))) == ["ports.db"]


def test_a_symlinked_database_is_read_but_never_written_through(host, tmp_path):
    host.allocate("web", 2)
    link = tmp_path / "link.db"
    link.symlink_to(tmp_path / "ports.db")
    before = digest(tmp_path / "ports.db")
    through = Host(link)
    assert [r.owner for r in through.rows()] == ["web"]
    with pytest.raises(PortsError, match="cannot open it"):
        through.allocate("db", 1)
    assert digest(tmp_path / "ports.db") == before


def _make_version(path, version):
    """A database as the first ``version`` migration steps left it, holding one row."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
    for step in store_schema.MIGRATIONS[:version]:
        for statement in step:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO allocations (owner, proto, first_port, last_port, shared, kind, created)"
        " VALUES ('rgw', 'tcp', 25080, 25080, 0, 'static', '2026-01-01T00:00:00Z')"
    )
    if version >= 3:  # and its tcp free list, as a schema 3 writer built it
        conn.executemany(
            "INSERT INTO free_runs (proto, first_port, last_port) VALUES ('tcp', ?, ?)", [(1, 25079), (25081, 65535)]
        )
        conn.execute("INSERT INTO free_runs_state (proto, max_span) VALUES ('tcp', 1)")
    conn.execute("PRAGMA user_version = %d" % version)
    conn.commit()
    conn.close()


def test_a_schema_3_file_reads_with_unknown_origin_and_is_upgraded_in_place(host, tmp_path):
    path = tmp_path / "ports.db"
    _make_version(path, 3)
    before = digest(path)
    # Reads (check mode included, which plans through the free list) never migrate.
    assert [(r.owner, r.origin) for r in host.rows()] == [("rgw", "unknown")]
    assert host.allocate("web", 2, check_mode=True).after.ranges[0].first == 25031
    assert digest(path) == before
    host.allocate("web", 2)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert sorted((r.owner, r.origin) for r in host.rows()) == [("rgw", "unknown"), ("web", "library")]


# -- mutation gaps of store_transaction ------------------------------------------

def test_rows_read_back_with_every_field_as_written(make_host):
    # Transaction.rows: rows__mutmut_31/32/33/45 (shared, kind, created).
    host = make_host(port_range="25000-25015")
    host.allocate("web", 2)
    host.allocate("db", 1, port=25010, shared=True)
    web, db = host.rows()
    assert (web.owner, web.first, web.last, web.shared, web.kind) == ("web", 25000, 25001, False, "dynamic")
    assert (db.owner, db.first, db.last, db.shared, db.kind) == ("db", 25010, 25010, True, "static")
    assert web.shared is False and db.shared is True
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", web.created)


def test_check_mode_on_a_protocol_without_a_free_list_writes_nothing(host, tmp_path):
    # Reads never write, not even the free list a write would build first:
    # __init____mutmut_1/4 (a read made writable), prepare_free_list__mutmut_4.
    host.allocate("web", 1)  # builds the tcp free list only
    before = digest(tmp_path / "ports.db")
    assert host.allocate("dns", 1, proto="udp", check_mode=True).after.ranges[0].first == 25031
    assert digest(tmp_path / "ports.db") == before
    with host.store.read() as tx:
        assert not tx.prepare_free_list("udp")


@pytest.mark.parametrize("version", [1, 2])
def test_check_mode_plans_on_a_file_from_before_the_free_list(host, tmp_path, version):
    # A read of a schema 1 or 2 file plans from the rows: __init____mutmut_7,
    # prepare_free_list__mutmut_7.
    path = tmp_path / "ports.db"
    _make_version(path, version)
    before = digest(path)
    assert [str(r) for r in host.allocate("web", 2, check_mode=True).after.ranges] == ["25031-25032"]
    assert digest(path) == before


@pytest.mark.parametrize("readonly", [False, True], ids=["read", "readonly-read"])
def test_a_read_transaction_refuses_to_write(make_host, readonly):
    """Only write() holds the writers' lock: a plan applied inside read() would
    race another writer for the same ports, so it is refused and nothing changes."""
    host = make_host()
    host.allocate("web", 2)
    before = digest(host.store.path)
    row = Allocation("intruder", "tcp", 25500, 25500, False, "static", "2026-01-01T00:00:00Z")
    with pytest.raises(PortsError, match=r"^internal error: cannot write through a read-only transaction$"):
        with host.store.read(readonly=readonly) as tx:
            tx.apply(Plan(add=(row,)))
    assert digest(host.store.path) == before
    assert [r.owner for r in load_rows(host.store)] == ["web"]
