# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module's work ends: its result, or one line saying why it failed.

Every module runs its work through ``run_module`` and the lookup builds its
``AnsibleLookupError`` from ``failure_message``, so the one-line rule of
errors.py is applied in one place. The module object is duck-typed: anything
with ``exit_json(**result)`` and ``fail_json(msg=...)`` (AnsibleModule).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Dict

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

# What a task may fail with: berth's own errors, which are already one line
# naming the file, and whatever the store did not translate (it should
# translate everything; this is the net under it, never a traceback).
TASK_ERRORS = (PortsError, OSError, sqlite3.Error)


def failure_message(exc: BaseException, db_path: str, writes: bool = True) -> str:
    """The one line a failed task shows for ``exc``, one of TASK_ERRORS.

    ``writes``: the task may write the database, so the line says nothing was
    written (a berth error says so itself where it applies).
    """
    if isinstance(exc, PortsError):
        return str(exc)
    return "db_path %s: %s%s" % (db_path, " ".join(str(exc).split()), "; nothing changed" if writes else "")


def run_module(module: Any, work: Callable[[], Dict[str, Any]], db_path: str, writes: bool = True) -> None:
    """``module.exit_json`` with what ``work`` returns, or ``module.fail_json``
    with the one line for the error it raised."""
    try:
        result = work()
    except TASK_ERRORS as exc:
        module.fail_json(msg=failure_message(exc, db_path, writes))
        return  # fail_json exits; a stand-in in a test may not
    module.exit_json(**result)
