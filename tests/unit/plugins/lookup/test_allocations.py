# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import sys

import pytest
import yaml

from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_collections.berth.ports.plugins.lookup import allocations as lookup_source
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings

SETTINGS = build_settings("25000-25999", skip_listening=False)


@pytest.fixture(scope="module")
def lookup():
    """The plugin as Ansible loads it; under plain pytest, without ansible-test's
    collection finder, the same plugin with its option definitions registered."""
    plugin = None
    if AnsibleCollectionConfig.collection_finder is not None:
        plugin = lookup_loader.get("berth.ports.allocations")
    if plugin is None:
        name = "berth.ports.allocations"
        options = yaml.safe_load(lookup_source.DOCUMENTATION)["options"]
        C.config.initialize_plugin_configuration_definitions("lookup", name, options)
        plugin = lookup_source.LookupModule()
        plugin._load_name = name
    return plugin


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "ports.db")
    store = AllocationStore(path)
    for owner, proto, count, port in (
        ("web", "tcp", 4, None),
        ("web", "udp", 1, None),
        ("dns", "udp", 1, 25005),
        ("api", "tcp", 2, None),
    ):
        allocate(store, build_allocation_request(owner, proto, count, port, settings=SETTINGS), SETTINGS)
    return path


def ranges(records):
    return [(r["owner"], r["proto"], r["first"], r["last"]) for r in records]


def test_all_records_by_proto_then_port(lookup, db):
    records = lookup.run([], variables={}, db_path=db)
    assert ranges(records) == [
        ("web", "tcp", 25031, 25034),
        ("api", "tcp", 25035, 25036),
        ("dns", "udp", 25005, 25005),
        ("web", "udp", 25031, 25031),
    ]
    assert set(records[0]) == {"owner", "proto", "first", "last", "shared", "kind", "created", "origin"}
    assert records[2]["kind"] == "static"
    assert records[2]["origin"] == "library"  # allocate() called directly, as a script would


def test_owner_filter(lookup, db):
    assert ranges(lookup.run(["web"], variables={}, db_path=db)) == [
        ("web", "tcp", 25031, 25034),
        ("web", "udp", 25031, 25031),
    ]
    assert len(lookup.run(["web", "dns"], variables={}, db_path=db)) == 3
    assert lookup.run(["nobody"], variables={}, db_path=db) == []


def test_proto_filter(lookup, db):
    assert [r["owner"] for r in lookup.run([], variables={}, db_path=db, proto="udp")] == ["dns", "web"]


def test_db_path_from_variables(lookup, db):
    assert len(lookup.run([], variables={"berth_ports_db_path": db})) == 4


def test_db_path_from_environment(lookup, db, monkeypatch):
    monkeypatch.setenv("BERTH_PORTS_DB_PATH", db)
    assert len(lookup.run([], variables={})) == 4


def test_query(lookup, db):
    pytest.importorskip("jmespath")
    assert lookup.run([], variables={}, db_path=db, query="[?proto=='tcp'].first") == [25031, 25035]
    # Scalars come back as a one-element list, no match as an empty one.
    assert lookup.run([], variables={}, db_path=db, query="length(@)") == [4]
    assert lookup.run(["nobody"], variables={}, db_path=db, query="[0]") == []


def test_bad_query_is_a_lookup_error(lookup, db):
    pytest.importorskip("jmespath")
    with pytest.raises(AnsibleLookupError, match="query"):
        lookup.run([], variables={}, db_path=db, query="[")


def test_jmespath_missing(lookup, db, monkeypatch):
    monkeypatch.setitem(sys.modules, "jmespath", None)  # makes `import jmespath` raise ImportError
    with pytest.raises(AnsibleLookupError, match="jmespath"):
        lookup.run([], variables={}, db_path=db, query="[].owner")
    # Without a query jmespath is never needed.
    assert len(lookup.run([], variables={}, db_path=db)) == 4


def test_missing_database_is_empty_and_not_created(lookup, tmp_path):
    path = str(tmp_path / "nope" / "ports.db")
    assert lookup.run([], variables={}, db_path=path) == []
    assert not os.path.exists(os.path.dirname(path))


def test_missing_database_can_be_an_error(lookup, tmp_path):
    path = str(tmp_path / "ports.db")
    with pytest.raises(AnsibleLookupError, match="does not exist"):
        lookup.run([], variables={}, db_path=path, missing="error")
    assert not os.path.exists(path)


def test_never_writes(lookup, db):
    before = open(db, "rb").read()
    mtime = os.stat(db).st_mtime_ns
    listing = sorted(os.listdir(os.path.dirname(db)))  # the writers' -verified stamp included
    lookup.run([], variables={}, db_path=db)
    assert open(db, "rb").read() == before
    assert os.stat(db).st_mtime_ns == mtime
    assert sorted(os.listdir(os.path.dirname(db))) == listing
    os.unlink(db + "-verified")
    lookup.run([], variables={}, db_path=db)
    assert sorted(os.listdir(os.path.dirname(db))) == ["ports.db"]


def test_read_only_file_is_readable(lookup, db):
    os.chmod(db, 0o400)
    try:
        assert len(lookup.run([], variables={}, db_path=db)) == 4
    finally:
        os.chmod(db, 0o600)


def test_bad_owner_is_a_lookup_error(lookup, db):
    with pytest.raises(AnsibleLookupError, match="owner"):
        lookup.run(["bad owner"], variables={}, db_path=db)


def test_corrupt_file_is_a_lookup_error(lookup, tmp_path):
    path = tmp_path / "ports.db"
    path.write_bytes(b"not sqlite at all")
    with pytest.raises(AnsibleLookupError, match="not an SQLite database"):
        lookup.run([], variables={}, db_path=str(path))
    assert path.read_bytes() == b"not sqlite at all"
