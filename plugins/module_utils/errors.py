# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exception types the core raises: PortsError, and StoreError for the database.

Modules end through task_failure.run_module, which turns it into
``fail_json(msg=...)``, and the lookup into ``AnsibleLookupError`` with
task_failure.failure_message; anything else escaping the core is a bug.
"""

from __future__ import annotations


class PortsError(Exception):
    """A request that cannot be served; the message is one line for operators."""

    def __init__(self, message: str) -> None:
        # Messages end up in the `msg` of a failed task: keep them to one line
        # even when they quote user input that contains newlines.
        super().__init__(" ".join(str(message).split()))


class StoreError(PortsError):
    """The database cannot be used (locked, corrupt, not ours, unreadable).

    The message names the file; the allocator adds whose request it was.
    """


class PortLimitExceeded(PortsError):
    """The request would leave its owner holding more ports of a proto than it may.

    Raised before anything is written; the agent answers it as NethServer 8's
    ``max_ports_exceeded``.
    """
