# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A file that is not a healthy berth database is refused, named, and left byte for byte alone."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3

import pytest

from ansible_collections.berth.ports.plugins.module_utils import allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    AllocationStore,
    load_rows,
)
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

from reliability_support import dir_snapshot

RANGE = "20000-29999"
PAGE = 4096


def _good_db(path, owners=300):
    """A berth database big enough to span several pages (table and index b-trees)."""
    store = AllocationStore(path)
    settings = request.build_settings(RANGE, None, False)
    for i in range(owners):
        req = request.build_allocation_request("own%d" % i, "tcp" if i % 2 else "udp", 1 + i % 3, None, False, False, settings)
        allocator.allocate(store, req, settings)
    return path


@pytest.fixture(scope="module")
def good_db(tmp_path_factory):
    return _good_db(str(tmp_path_factory.mktemp("good") / "ports.db"))


def _sqlite(path, *statements):
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _random_bytes(d, good):
    path = os.path.join(d, "ports.db")
    with open(path, "wb") as handle:
        handle.write(random.Random(1).randbytes(3 * PAGE))
    return path


def _short_text(d, good):
    path = os.path.join(d, "ports.db")
    with open(path, "wb") as handle:
        handle.write(b"not a db\n")
    return path


def _truncated(fraction):
    def build(d, good):
        path = os.path.join(d, "ports.db")
        shutil.copyfile(good, path)
        os.truncate(path, int(os.path.getsize(path) * fraction))
        return path
    return build


def _truncated_in_header(d, good):
    path = os.path.join(d, "ports.db")
    shutil.copyfile(good, path)
    os.truncate(path, 60)
    return path


def _root_page(good, name):
    conn = sqlite3.connect("file:%s?mode=ro" % good, uri=True)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


def _garbage_page(good, path, page, seed=0):
    shutil.copyfile(good, path)
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(random.Random(seed * 100000 + page).randbytes(PAGE))
    return path


def _garbage_table_root(d, good):
    return _garbage_page(good, os.path.join(d, "ports.db"), _root_page(good, "allocations"))


def _foreign_tables(d, good):
    path = os.path.join(d, "ports.db")
    _sqlite(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO users (name) VALUES ('alice')")
    return path


def _foreign_app_id_empty(d, good):
    path = os.path.join(d, "ports.db")
    _sqlite(path, "PRAGMA application_id = %d" % 0x12345678)
    return path


def _foreign_app_id_tables(d, good):
    path = os.path.join(d, "ports.db")
    _sqlite(path, "PRAGMA application_id = %d" % 0x12345678, "PRAGMA user_version = 1",
            "CREATE TABLE allocations (x)", "INSERT INTO allocations VALUES (1)")
    return path


def _newer_schema(d, good):
    path = os.path.join(d, "ports.db")
    shutil.copyfile(good, path)
    _sqlite(path, "PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    return path


def _ours_without_table(d, good):
    path = os.path.join(d, "ports.db")
    _sqlite(path, "PRAGMA application_id = %d" % APPLICATION_ID, "PRAGMA user_version = %d" % SCHEMA_VERSION,
            "CREATE TABLE something_else (x)")
    return path


def _directory(d, good):
    path = os.path.join(d, "ports.db")
    os.mkdir(path)
    with open(os.path.join(path, "keep"), "w") as handle:
        handle.write("x")
    return path


def _parent_is_file(d, good):
    parent = os.path.join(d, "state")
    with open(parent, "w") as handle:
        handle.write("a regular file where the directory should be\n")
    return os.path.join(parent, "ports.db")


def _fifo(d, good):
    path = os.path.join(d, "ports.db")
    os.mkfifo(path)
    return path


CASES = {
    "random-bytes": _random_bytes,
    "short-text-file": _short_text,
    "truncated-60pct": _truncated(0.6),
    "truncated-2-pages": lambda d, good: _truncated(2 * PAGE / os.path.getsize(good))(d, good),
    "truncated-inside-header": _truncated_in_header,
    "garbage-table-root-page": _garbage_table_root,
    "other-app-tables": _foreign_tables,
    "other-app-id-empty-schema": _foreign_app_id_empty,
    "other-app-id-with-tables": _foreign_app_id_tables,
    "newer-schema-version": _newer_schema,
    "our-id-without-allocations-table": _ours_without_table,
    "directory-at-db-path": _directory,
    "parent-is-regular-file": _parent_is_file,
    "fifo-at-db-path": _fifo,
}


def _settings():
    return request.build_settings(RANGE, None, False)


CALLS = {
    "allocate": lambda store: allocator.allocate(
        store, request.build_allocation_request("newcomer", "tcp", 2, None, False, False, _settings()), _settings()),
    "allocate-static": lambda store: allocator.allocate(
        store, request.build_allocation_request("newcomer", "udp", 1, 20001, False, False, _settings()), _settings()),
    "allocate-check-mode": lambda store: allocator.allocate(
        store, request.build_allocation_request("newcomer", "tcp", 2, None, False, False, _settings()), _settings(),
        check_mode=True),
    "deallocate": lambda store: allocator.deallocate(store, "own5", "all", None, False),
    "read": load_rows,
    "read-only": lambda store: load_rows(store, readonly=True),
}


@contextlib.contextmanager
def _alarm(seconds):
    """Fail instead of hanging (a FIFO opened for reading blocks for ever)."""
    def timeout(signum, frame):
        raise AssertionError("call hung for %ds" % seconds)
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _refused(tmp_path, good, build, call):
    """Run ``call`` on the file ``build`` makes; return the PortsError message."""
    workdir = tmp_path / "case"
    workdir.mkdir()
    path = build(str(workdir), good)
    watched = [str(workdir)] + ([path] if os.path.isdir(path) else [])
    before = [dir_snapshot(d) for d in watched]
    with _alarm(20):
        with pytest.raises(PortsError) as info:
            CALLS[call](AllocationStore(path))
    assert [dir_snapshot(d) for d in watched] == before, "the call changed files next to or at %s" % path
    assert not os.path.exists(path + "-journal")
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert path in msg, "message does not name the path: %s" % msg
    return msg


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_file_is_refused_and_untouched(tmp_path, good_db, case, call):
    msg = _refused(tmp_path, good_db, CASES[case], call)
    if case == "newer-schema-version":
        assert "schema version %d" % (SCHEMA_VERSION + 1) in msg


def test_good_database_is_accepted(tmp_path, good_db):
    """The control: the same calls on the intact file succeed (so the refusals above mean something)."""
    for call in sorted(CALLS):
        path = str(tmp_path / ("%s.db" % call))
        shutil.copyfile(good_db, path)
        CALLS[call](AllocationStore(path))


def _page_count(path):
    return os.path.getsize(path) // PAGE


@pytest.mark.parametrize("call", ["allocate", "allocate-check-mode", "deallocate", "read"])
def test_garbage_in_any_page_is_refused(tmp_path, good_db, call):
    accepted = []
    for page in range(2, _page_count(good_db) + 1):
        path = str(tmp_path / ("page%d.db" % page))
        _garbage_page(good_db, path, page)
        before = dir_snapshot(str(tmp_path))
        try:
            CALLS[call](AllocationStore(path))
        except PortsError as exc:
            assert path in str(exc)
        else:
            accepted.append(page)
            continue
        assert dir_snapshot(str(tmp_path)) == before
    assert accepted == [], "%s accepted a database with garbage in page(s) %s" % (call, accepted)
