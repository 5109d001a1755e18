# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's audit trail: one journal entry per request it allows or refuses.

Each fact is its own journal field, so an operator asks the journal, not a
regular expression::

    journalctl -u berth-ports-agent.service BERTH_DECISION=refused -o json

Fields: ``BERTH_DECISION`` (allowed, refused), ``BERTH_REASON`` (the error
code of a refusal: forbidden, max_ports_exceeded, failed, bad_request, busy,
timeout, too_large, internal), ``BERTH_OP``, ``BERTH_UID`` and ``BERTH_PID``
(the caller, from SO_PEERCRED), ``BERTH_OWNER``, ``BERTH_PROTO``,
``BERTH_COUNT``, ``BERTH_CHANGED`` (allowed allocations and frees), and a
fixed ``MESSAGE_ID``. The request itself is never written: values taken from
it are logged only once they are known to be well formed, so a caller cannot
put text of its choosing into the audit trail.

Entries go to the journal's native socket when the daemon runs under systemd
with its output in the journal (``JOURNAL_STREAM`` set), else as one
``key=value`` line on stderr.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, TextIO, Tuple

from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import CODE_BAD_REQUEST, CODE_BUSY, CODE_INTERNAL
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT
from ansible_collections.berth.ports.plugins.module_utils.request import validate_owner, validate_proto

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "berth-ports-agent"
# Fixed, so that `journalctl MESSAGE_ID=...` finds every decision whatever the
# unit is called.
MESSAGE_ID = "5b3f0c1e7d8a4c7e9a51b2e0f4c6d8a1"
ALLOWED, REFUSED = "allowed", "refused"
INVALID = "(invalid)"

# Refusals whose error text may quote the request itself.
_OWN_WORDS = {
    CODE_BAD_REQUEST: "the request is not one well-formed JSON object (its text is not logged)",
    CODE_INTERNAL: "internal error in the agent (the daemon's log has the traceback)",
}
# syslog priorities: informational for what was allowed, notice for refusals.
_PRIORITY = {ALLOWED: "6", REFUSED: "5"}
_MAX_DETAIL = 300
_SEND_TIMEOUT = 0.5
# A flood of refused requests must not drown the trail (journald drops a
# unit's messages past its rate limit, other callers' entries among them): per
# uid and window, one "busy" entry and a few of the other refusals; the next
# entry logged counts the ones left out. What was allowed is always logged.
REFUSAL_LOG_WINDOW = 10.0
BUSY_PER_WINDOW = 1
REFUSALS_PER_WINDOW = 5


class Decision(NamedTuple):
    """What the agent decided about one request, as the audit trail records it."""

    decision: str  # ALLOWED or REFUSED
    reason: Optional[str]  # the error code of a refusal
    op: Optional[str]
    uid: Optional[int]
    pid: Optional[int]
    owner: Optional[str] = None
    proto: Optional[str] = None
    count: Optional[int] = None
    changed: Optional[bool] = None
    detail: str = ""  # the answer's error text, or a note


def clean_owner(value: Any) -> Optional[str]:
    """``value`` when it is a valid owner id, INVALID when it is something else, None when absent."""
    if value is None or value == "":
        return None
    try:
        return validate_owner(value)
    except PortsError:
        return INVALID


def clean_proto(value: Any) -> Optional[str]:
    if value is None:
        return None
    try:
        return validate_proto(value, allow_all=True)
    except PortsError:
        return INVALID


def clean_count(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PORT:
        return INVALID
    return str(value)


def decision_fields(decision: Decision) -> Dict[str, str]:
    """The journal fields of ``decision`` (absent facts are left out)."""
    facts = (
        ("BERTH_DECISION", decision.decision),
        ("BERTH_REASON", decision.reason),
        ("BERTH_OP", decision.op),
        ("BERTH_UID", None if decision.uid is None else str(decision.uid)),
        ("BERTH_PID", None if decision.pid is None else str(decision.pid)),
        ("BERTH_OWNER", clean_owner(decision.owner)),
        ("BERTH_PROTO", clean_proto(decision.proto)),
        ("BERTH_COUNT", clean_count(decision.count)),
        ("BERTH_CHANGED", None if decision.changed is None else ("1" if decision.changed else "0")),
    )
    fields = {key: value for key, value in facts if value is not None}
    detail = decision.detail
    # Error texts quote the values they refuse; when a value came malformed
    # from the caller, say so in words of our own instead.
    if decision.reason in _OWN_WORDS:
        detail = _OWN_WORDS[str(decision.reason)]
    elif INVALID in fields.values():
        detail = "the request is not well formed (its values are not logged)"
    fields.update(
        MESSAGE=decision_message(fields, detail),
        MESSAGE_ID=MESSAGE_ID,
        PRIORITY=_PRIORITY[decision.decision],
        SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER,
    )
    return fields


def decision_message(fields: Mapping[str, str], detail: str) -> str:
    """One line for people: the decision, then its facts, then why."""
    facts = " ".join(
        "%s=%s" % (key[len("BERTH_"):].lower(), value)
        for key, value in fields.items()
        if key.startswith("BERTH_") and key != "BERTH_DECISION"
    )
    line = "%s %s" % (fields["BERTH_DECISION"], facts)
    detail = " ".join(detail.split())
    if detail:
        line += ": " + (detail if len(detail) <= _MAX_DETAIL else detail[:_MAX_DETAIL] + "...")
    return line


def encode_journal_entry(fields: Mapping[str, str]) -> bytes:
    """``fields`` in the journal's native protocol (systemd.journal-fields).

    A value with a newline goes as name, newline, little-endian 64-bit length,
    the bytes; any other as ``NAME=value``.
    """
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        name = key.encode("ascii")
        if b"\n" in data:
            out += name + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name + b"=" + data + b"\n"
    return bytes(out)


class AuditLog:
    """Writes decisions to the journal (``journal_socket``) or, without one, to ``stream``."""

    def __init__(self, journal_socket: Optional[str] = None, stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.journal_socket = journal_socket
        self.stream = stream
        self.clock = clock
        self._lock = threading.Lock()
        self._sock = None  # type: Optional[socket.socket]
        # (uid, busy or not) -> (window start, entries logged in it, entries left out since the last one)
        self._refusals = {}  # type: Dict[Tuple[Optional[int], bool], Tuple[float, int, int]]

    @classmethod
    def for_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "AuditLog":
        """The journal when systemd put this process's output there, else stderr."""
        env = os.environ if environ is None else environ
        if env.get("JOURNAL_STREAM") and os.path.exists(JOURNAL_SOCKET):
            return cls(JOURNAL_SOCKET)
        return cls()

    def record(self, decision: Decision) -> None:
        """Write ``decision``, unless it is a refusal past its uid's share of the window."""
        if decision.decision == REFUSED:
            kept = self._within_share(decision)
            if kept is None:
                return
            decision = kept
        fields = decision_fields(decision)
        with self._lock:
            if self.journal_socket is not None and self._send(fields):
                return
            stream = self.stream if self.stream is not None else sys.stderr
            try:
                stream.write(fields["MESSAGE"] + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # nowhere left to write; serving matters more than this line

    def _within_share(self, decision: Decision) -> Optional[Decision]:
        """The refusal to write, noting how many of its kind this uid had left out; None past the share."""
        busy = decision.reason == CODE_BUSY
        key = (decision.uid, busy)
        share = BUSY_PER_WINDOW if busy else REFUSALS_PER_WINDOW
        now = self.clock()
        with self._lock:
            start, logged, skipped = self._refusals.get(key, (now, 0, 0))
            if now - start >= REFUSAL_LOG_WINDOW:
                start, logged = now, 0
            if logged >= share:
                self._refusals[key] = (start, logged, skipped + 1)
                return None
            self._refusals[key] = (start, logged + 1, 0)
            if len(self._refusals) > 1024:  # uids come and go; keep only recent ones
                self._refusals = {k: seen for k, seen in self._refusals.items() if now - seen[0] < REFUSAL_LOG_WINDOW}
        if skipped:
            decision = decision._replace(detail="%s (and %d more from this uid not logged)" % (decision.detail, skipped))
        return decision

    def _send(self, fields: Mapping[str, str]) -> bool:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # A stalled journald must not stall the workers waiting on this lock.
                self._sock.settimeout(_SEND_TIMEOUT)
            self._sock.sendto(encode_journal_entry(fields), self.journal_socket)
            return True
        except OSError:
            # journald restarting or stalled, or an entry too big for one datagram: say it on stderr instead.
            return False
