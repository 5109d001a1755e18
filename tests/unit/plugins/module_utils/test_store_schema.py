"""The schema checks a write skips while nothing changed, and redoes as soon as anything did."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings
from ansible_collections.berth.ports.plugins.module_utils.store_files import write_stamp
from ansible_collections.berth.ports.plugins.module_utils.store_schema import SCHEMA_VERSION

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
