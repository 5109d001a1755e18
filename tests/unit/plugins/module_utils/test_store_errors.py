"""No raw OSError or sqlite3 error leaves the store: each becomes one line naming the file
(a StoreError; the allocator adds whose request it was)."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from ansible_collections.berth.ports.plugins.module_utils import store_files, store_locks
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
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
