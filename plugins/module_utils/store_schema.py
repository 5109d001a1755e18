# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a berth database holds: the schema, its migrations, and the checks
that run at the start of every transaction (ours? which version? sound?)."""

from __future__ import annotations

import os
import sqlite3
from typing import NamedTuple, Optional

from ansible_collections.berth.ports.plugins.module_utils.errors import StoreError
from ansible_collections.berth.ports.plugins.module_utils.store_files import stamp_matches
from ansible_collections.berth.ports.plugins.module_utils.store_locks import HeldFile

# PRAGMA application_id: "bert" in ASCII. Tells a berth database from any
# other SQLite file without guessing from table names.
APPLICATION_ID = 0x62657274

# Step N takes a database from user_version N to N+1. All pending steps run in
# the transaction that first opens the file for writing, so a database at any
# older version comes forward in one step or not at all.
MIGRATIONS = (
    (
        """CREATE TABLE allocations (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            proto TEXT NOT NULL CHECK (proto IN ('tcp', 'udp')),
            first_port INTEGER NOT NULL CHECK (first_port BETWEEN 1 AND 65535),
            last_port INTEGER NOT NULL CHECK (last_port BETWEEN first_port AND 65535),
            shared INTEGER NOT NULL CHECK (shared IN (0, 1)),
            kind TEXT NOT NULL CHECK (kind IN ('dynamic', 'static')),
            created TEXT NOT NULL
        )""",
    ),
    (
        # Lookups by owner (every module call) and by position (port_info,
        # collision checks) without scanning the table.
        "CREATE INDEX allocations_by_owner ON allocations (owner, proto)",
        "CREATE INDEX allocations_by_port ON allocations (proto, first_port)",
    ),
    (
        # The free list: per proto, the maximal runs of 1-65535 that no row
        # covers, kept in step with allocations by Transaction.apply, so
        # first-fit reads a few runs by index instead of every row. Built from
        # the rows on the first write that needs it (free_runs_state says which
        # protos are built; max_span bounds how far below a port a covering
        # row can start).
        """CREATE TABLE free_runs (
            proto TEXT NOT NULL,
            first_port INTEGER NOT NULL,
            last_port INTEGER NOT NULL,
            PRIMARY KEY (proto, first_port)
        ) WITHOUT ROWID""",
        "CREATE TABLE free_runs_state (proto TEXT PRIMARY KEY, max_span INTEGER NOT NULL) WITHOUT ROWID",
    ),
    (
        # Which call made each row (port_allocate, port_allocations, the
        # agent...), so that port_allocations' prune frees only its own.
        # Rows from before are 'unknown', which nothing prunes.
        "ALTER TABLE allocations ADD COLUMN origin TEXT NOT NULL DEFAULT 'unknown'",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = "id, owner, proto, first_port, last_port, shared, kind, created, origin"
# A file read at schema 3 or older (reads never migrate) has no origin column.
COLUMNS_BEFORE_ORIGIN = "id, owner, proto, first_port, last_port, shared, kind, created, 'unknown'"

# What every call needs to know about the file, in one round trip.
_SCHEMA_FACTS = (
    "SELECT (SELECT application_id FROM pragma_application_id),"
    " (SELECT user_version FROM pragma_user_version),"
    " (SELECT count(*) FROM sqlite_master),"
    " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'allocations'),"
    " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'free_runs_state'),"
    " (SELECT count(*) FROM pragma_table_info('allocations') WHERE name = 'origin')"
)


class Schema(NamedTuple):
    usable: bool  # holds the allocations table (False: a blank file, read as empty)
    free_list: bool  # holds the free_runs tables (schema 3 on)
    origin: bool = False  # rows record which call made them (schema 4 on)


def _header_key(fd: int) -> Optional[bytes]:
    """The header fields every schema fact depends on: the schema cookie (which
    SQLite bumps on any change to sqlite_master), user_version, application_id."""
    try:
        header = os.pread(fd, 72, 0)
    except OSError:
        return None
    return header[40:44] + header[60:64] + header[68:72] if len(header) == 72 else None


def check_schema(
    conn: sqlite3.Connection, path: str, migrate: bool, verified: Optional[bool] = None, held: Optional[HeldFile] = None
) -> Schema:
    """Bring the schema to SCHEMA_VERSION (when writing) and say what the file holds.

    ``verified``: the stamp was found to match just before the transaction
    (None: compare it now). ``held``: the kept file of a write transaction
    (BEGIN IMMEDIATE taken, so no other writer can change the file under us):
    while the file is as the last berth writer left it and its header says the
    schema has not changed since this connection last looked, the facts are
    the ones found then, and the query is not run again.
    """
    key = _header_key(held.fd) if held is not None and verified else None
    if key is not None and held is not None and key == held.schema_key and isinstance(held.schema, Schema):
        return held.schema
    app_id, version, objects, has_table, has_free_list, has_origin = conn.execute(_SCHEMA_FACTS).fetchone()
    blank = app_id == 0 and version == 0 and objects == 0
    if blank:
        if not migrate:
            return Schema(False, False)
        conn.execute("PRAGMA application_id = %d" % APPLICATION_ID)
    elif app_id != APPLICATION_ID:
        raise StoreError(
            "db_path %s is an SQLite database of another application (application_id %d); refusing to touch it"
            % (path, app_id)
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            "db_path %s has schema version %d, newer than this berth.ports knows (%d); upgrade the collection"
            % (path, version, SCHEMA_VERSION)
        )
    current = version == SCHEMA_VERSION
    if version < SCHEMA_VERSION and migrate:
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
        _app_id, version, _objects, has_table, has_free_list, has_origin = conn.execute(_SCHEMA_FACTS).fetchone()
    elif version < 1:
        return Schema(False, False)
    if not has_table:
        raise StoreError("db_path %s is corrupt: schema version %d without an allocations table" % (path, version))
    verify_pages(conn, path, verified)
    schema = Schema(True, bool(has_free_list), bool(has_origin))
    if key is not None and held is not None and current:
        # Found on the committed file, untouched by this transaction: still
        # true if it rolls back.
        held.schema_key, held.schema = key, schema
    return schema


def verify_pages(conn: sqlite3.Connection, path: str, verified: Optional[bool]) -> None:
    """Refuse a file with damage in any page, unless it is as the last writer left it.

    SQLite only notices damage in the pages a query touches, so a full
    ``quick_check`` is what proves the file sound; it is linear in the
    file's size, so a call skips it when the file is byte for byte as a
    berth writer last committed it (the stamp beside it). Writers compare
    the stamp under the writers' lock, so no other berth writer can change
    the file between the stat and the reads that follow; a reader may see a
    berth writer commit in between, which is no damage.
    """
    if verified is None:
        verified = stamp_matches(path)
    if verified:
        return
    problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        raise StoreError("db_path %s is corrupt (%s); refusing to touch it, nothing changed" % (path, problem))
