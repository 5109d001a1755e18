"""The schema checks a write skips while nothing changed, and redoes as soon as anything did."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings
from ansible_collections.berth.ports.plugins.module_utils.store_files import (
    check_header,
    open_checked,
    open_regular,
    write_stamp,
)
from ansible_collections.berth.ports.plugins.module_utils.store_locks import DESCRIPTORS, HeldFile
from ansible_collections.berth.ports.plugins.module_utils.store_schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    Schema,
    check_schema,
)

SETTINGS = build_settings("25000-25999", skip_listening=False)
FACTS = "pragma_application_id"


def _allocate(store, owner):
    return allocate(store, build_allocation_request(owner, "tcp", 1, settings=SETTINGS), SETTINGS).after.port


def _traced(store):
    seen = []
    store._held[0].conn.set_trace_callback(seen.append)  # pylint: disable=protected-access
    return seen


def _outside(path, *statements):
    """Another writer changes the file, then stamps it as a berth writer does."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()
    write_stamp(path)


@pytest.fixture
def store(tmp_path):
    store = AllocationStore(str(tmp_path / "ports.db"))
    _allocate(store, "first")  # creates the schema
    _allocate(store, "warm")  # finds it current, and remembers it
    yield store
    store.close()


def test_steady_writes_do_not_ask_for_the_schema_again(store):
    seen = _traced(store)
    assert _allocate(store, "second") is not None
    assert not [s for s in seen if FACTS in s]


def test_another_berth_writer_leaves_the_schema_known(store):
    other = AllocationStore(store.path)
    assert _allocate(other, "other") is not None
    other.close()
    seen = _traced(store)
    assert _allocate(store, "second") is not None
    assert not [s for s in seen if FACTS in s]


def test_a_schema_change_is_seen_even_under_a_matching_stamp(store):
    _outside(store.path, "CREATE TABLE extra (x)")
    seen = _traced(store)
    assert _allocate(store, "second") is not None
    assert [s for s in seen if FACTS in s]


def test_a_newer_schema_version_is_refused_even_under_a_matching_stamp(store):
    _outside(store.path, "PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    with pytest.raises(PortsError, match="newer than this berth.ports knows"):
        _allocate(store, "second")


def test_another_application_id_is_refused_even_under_a_matching_stamp(store):
    _outside(store.path, "PRAGMA application_id = 7")
    with pytest.raises(PortsError, match="another application"):
        _allocate(store, "second")


@pytest.mark.parametrize(
    "statement, refusal",
    [
        # The top byte of each header field is in the key too (_header_key_9, _16, _18).
        ("PRAGMA user_version = %d" % (SCHEMA_VERSION + 2**24), "newer than this berth.ports knows"),
        ("PRAGMA application_id = %d" % (APPLICATION_ID + 2**24), "another application"),
    ],
)
def test_a_change_in_the_top_byte_of_a_header_field_is_refused(store, statement, refusal):
    _outside(store.path, statement)
    with pytest.raises(PortsError, match=refusal):
        _allocate(store, "second")


def test_a_schema_change_is_seen_when_only_the_cookie_top_byte_tells(store):
    # The cookie's low bytes set back to what the store remembers (_header_key_9, _14).
    conn = sqlite3.connect(store.path, isolation_level=None)
    cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.close()
    _outside(store.path, "CREATE TABLE extra (x)", "PRAGMA schema_version = %d" % (cookie + 2**24))
    seen = _traced(store)
    assert _allocate(store, "second") is not None
    assert [s for s in seen if FACTS in s]


# -- the file itself: path, creation, opening (store_files) --------------------


def test_a_path_of_path_max_bytes_is_refused_naming_its_start():
    # check_path_11 (>= PATH_MAX), _16 (the first 40 characters).
    assert AllocationStore("/" + "a" * 4094).path == "/" + "a" * 4094
    path = "/" + "a" * 4095
    with pytest.raises(PortsError) as excinfo:
        AllocationStore(path)
    assert str(excinfo.value) == "db_path %s... is longer than the system allows (4096 bytes)" % path[:40]


def test_the_directory_and_file_are_never_wider_than_0700_and_0600(tmp_path, monkeypatch):
    """Born with those modes, not widened and narrowed afterwards: even with
    umask 0, the chmods that follow find nothing to take away.
    (prepare_parent_8, _9, create_file_7, _11)"""
    found = {}
    real_chmod, real_fchmod = os.chmod, os.fchmod

    def chmod(path, mode, **kwargs):
        found["dir"] = stat.S_IMODE(os.stat(path).st_mode)
        real_chmod(path, mode, **kwargs)

    def fchmod(fd, mode):
        found["file"] = stat.S_IMODE(os.fstat(fd).st_mode)
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fchmod", fchmod)
    path = tmp_path / "new" / "ports.db"
    old = os.umask(0)
    try:
        store = AllocationStore(str(path))
        _allocate(store, "web")
        store.close()
    finally:
        os.umask(old)
    assert found == {"dir": 0o700, "file": 0o600}
    assert stat.S_IMODE(os.stat(str(path.parent)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600


def test_a_directory_that_cannot_be_made_is_refused_naming_it(tmp_path):
    # prepare_parent_22, _24: a file where a directory must go.
    (tmp_path / "file").write_bytes(b"mine")
    path = str(tmp_path / "file" / "sub" / "ports.db")
    with pytest.raises(PortsError) as excinfo:
        with AllocationStore(path).write():
            pass
    assert str(excinfo.value) == "db_path %s: cannot create %s: Not a directory" % (path, os.path.dirname(path))
    assert (tmp_path / "file").read_bytes() == b"mine"


def test_too_many_missing_directories_are_refused_before_making_any(tmp_path):
    # prepare_parent_26, _28: deeper than Python's recursion limit, still under PATH_MAX.
    path = str(tmp_path) + "/d" * 1900 + "/ports.db"
    with pytest.raises(PortsError) as excinfo:
        with AllocationStore(path).write():
            pass
    assert str(excinfo.value) == "db_path %s: too many missing directories to create" % path
    assert not (tmp_path / "d").exists()


def test_open_checked_follows_a_symlink_only_when_asked(store, tmp_path):
    # open_checked_1: not following is the default.
    link = str(tmp_path / "link.db")
    os.symlink(store.path, link)
    with pytest.raises(PortsError, match="^db_path %s: cannot open it: " % link):
        open_checked(link)
    DESCRIPTORS.close(open_checked(link, follow=True))


def test_a_header_that_cannot_be_read_is_refused_naming_the_file(tmp_path):
    # check_header_10, _12.
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        with pytest.raises(PortsError) as excinfo:
            check_header("ports.db", fd)
    finally:
        os.close(fd)
    assert str(excinfo.value) == "db_path ports.db: cannot read it: Is a directory"


# -- the stamp and the full page check (store_files, verify_pages) --------------


def _corrupt(path):
    """Damage a page that reading the rows does not touch (the free list's),
    so that only the full check can find it."""
    conn = sqlite3.connect(path)
    (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'free_runs'").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size + 8)
        f.write(b"\xff" * 64)


@pytest.fixture
def damaged(tmp_path):
    """A database with a damaged page and no stamp."""
    path = str(tmp_path / "ports.db")
    store = AllocationStore(path)
    _allocate(store, "web")
    store.close()
    _corrupt(path)
    os.unlink(path + "-verified")
    return path


def test_a_damaged_file_is_refused_unless_its_stamp_matches(damaged):
    # stamp_matches_18: no stamp is no trust.
    with pytest.raises(PortsError, match="is corrupt"):
        load_rows(AllocationStore(damaged))
    write_stamp(damaged)  # as if a berth writer had left it so: trusted, not checked again
    assert [row.owner for row in load_rows(AllocationStore(damaged))] == ["web"]


def test_a_symlinked_stamp_is_not_trusted(damaged, tmp_path):
    # stamp_matches_8: the stamp is never read through a symlink.
    write_stamp(damaged)
    os.rename(damaged + "-verified", str(tmp_path / "elsewhere"))
    os.symlink(str(tmp_path / "elsewhere"), damaged + "-verified")
    with pytest.raises(PortsError, match="is corrupt"):
        load_rows(AllocationStore(damaged))


@pytest.mark.parametrize(
    "stamped, verified, refused",
    [
        (False, None, True),  # no stamp: checked (stamp_matches_18)
        (True, None, False),  # compared now, and matches (verify_pages_1, _2)
        (True, False, True),  # the caller found no match: checked all the same (check_schema_74, verify_pages_1)
        (False, True, False),  # the caller found a match: trusted (verify_pages_1)
    ],
)
def test_check_schema_checks_every_page_unless_the_stamp_was_found_to_match(damaged, stamped, verified, refused):
    if stamped:
        write_stamp(damaged)
    conn = sqlite3.connect(damaged, isolation_level=None)
    try:
        if refused:
            with pytest.raises(PortsError, match="^db_path %s is corrupt " % damaged):
                check_schema(conn, damaged, migrate=False, verified=verified)
        else:
            assert check_schema(conn, damaged, migrate=False, verified=verified) == Schema(True, True, True)
    finally:
        conn.close()


# -- what a file holds (check_schema) --------------------------------------------


def _sqlite_file(path, *statements):
    conn = sqlite3.connect(str(path), isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()
    return str(path)


@pytest.mark.parametrize(
    "statements",
    [
        (),  # blank (check_schema_25, _26, _30)
        ("PRAGMA application_id = %d" % APPLICATION_ID,),  # ours, before any step ran (check_schema_61 to _66)
    ],
)
def test_a_file_with_no_schema_yet_reads_as_empty(tmp_path, statements):
    path = _sqlite_file(tmp_path / "ports.db", *statements)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert check_schema(conn, path, migrate=False) == Schema(usable=False, free_list=False, origin=False)
    finally:
        conn.close()
    assert load_rows(AllocationStore(path)) == []


def test_a_schema_version_without_the_allocations_table_is_refused_as_corrupt(tmp_path):
    # check_schema_69, _71.
    path = _sqlite_file(tmp_path / "ports.db", "PRAGMA application_id = %d" % APPLICATION_ID, "PRAGMA user_version = 2")
    with pytest.raises(PortsError) as excinfo:
        load_rows(AllocationStore(path))
    assert str(excinfo.value) == "db_path %s is corrupt: schema version 2 without an allocations table" % path


def test_a_write_that_changes_nothing_leaves_a_current_file_byte_for_byte(store):
    # check_schema_50: nothing to migrate, nothing written.
    store.close()
    with open(store.path, "rb") as f:
        before = f.read()
    fresh = AllocationStore(store.path)
    with fresh.write():
        pass
    fresh.close()
    with open(store.path, "rb") as f:
        assert f.read() == before


def test_a_migration_rolled_back_is_not_remembered_as_done(tmp_path):
    """The facts found while migrating describe the migrated file; after a
    rollback the file is back at its old version, and the next write must
    migrate it again. (check_schema_89)"""
    statements = ["PRAGMA application_id = %d" % APPLICATION_ID]
    statements += [statement for step in MIGRATIONS[:3] for statement in step]
    path = _sqlite_file(tmp_path / "ports.db", *(statements + ["PRAGMA user_version = 3"]))
    write_stamp(path)  # left so by a berth writer of schema 3
    held = HeldFile(open_regular(path), sqlite3.connect(path, isolation_level=None))
    try:
        conn = held.conn
        conn.execute("BEGIN IMMEDIATE")
        assert check_schema(conn, path, migrate=True, verified=True, held=held).origin
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        assert check_schema(conn, path, migrate=True, verified=True, held=held).origin
        conn.execute("COMMIT")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM pragma_table_info('allocations') WHERE name = 'origin'").fetchone()[0]
    finally:
        held.close()


@pytest.mark.parametrize("follow", [False, True])
def test_the_database_descriptor_is_not_inherited_by_child_processes(tmp_path, follow):
    # A module's or the agent's children (a probe, a hook) must not keep the
    # file, or its POSIX locks' fate, after the store lets it go.
    path = str(tmp_path / "ports.db")
    with open(path, "wb"):
        pass
    fd = open_regular(path, follow=follow)
    try:
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)
