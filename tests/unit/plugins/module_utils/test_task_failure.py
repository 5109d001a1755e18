"""How a module's work ends: its result, or one line."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError, StoreError
from ansible_collections.berth.ports.plugins.module_utils.task_failure import failure_message, run_module


class FakeModule:
    """What run_module needs of AnsibleModule, recording how the task ended."""

    def __init__(self):
        self.ended = None

    def exit_json(self, **result):
        self.ended = ("exit", result)

    def fail_json(self, msg):
        self.ended = ("fail", msg)


def _raise(exc):
    def work():
        raise exc

    return work


def test_the_result_is_what_the_work_returns():
    module = FakeModule()
    run_module(module, lambda: {"changed": True, "port": 25000}, "/db")
    assert module.ended == ("exit", {"changed": True, "port": 25000})


@pytest.mark.parametrize(
    "exc, writes, msg",
    [
        (PortsError("owner web (tcp): no free range\nof 3 ports"), True, "owner web (tcp): no free range of 3 ports"),
        (StoreError("db_path /db is corrupt"), False, "db_path /db is corrupt"),
        (sqlite3.OperationalError("disk I/O\n  error"), True, "db_path /db: disk I/O error; nothing changed"),
        (sqlite3.OperationalError("disk I/O error"), False, "db_path /db: disk I/O error"),
        (OSError(errno.EIO, "Input/output error"), True, "db_path /db: [Errno 5] Input/output error; nothing changed"),
    ],
    ids=["ports-error", "store-error", "sqlite-writing", "sqlite-reading", "os-error"],
)
def test_every_task_error_fails_with_one_line(exc, writes, msg):
    module = FakeModule()
    run_module(module, _raise(exc), "/db", writes=writes)
    assert module.ended == ("fail", msg)
    assert failure_message(exc, "/db", writes) == msg


def test_anything_else_is_a_bug_and_not_hidden():
    with pytest.raises(KeyError):
        run_module(FakeModule(), _raise(KeyError("x")), "/db")


def test_a_task_that_does_not_say_is_taken_to_write():
    # The safe default: a caller that forgets `writes` still tells the
    # operator that nothing was written, never less.
    exc = sqlite3.OperationalError("disk I/O error")
    module = FakeModule()
    run_module(module, _raise(exc), "/db")
    assert module.ended == ("fail", "db_path /db: disk I/O error; nothing changed")
    assert failure_message(exc, "/db") == "db_path /db: disk I/O error; nothing changed"
