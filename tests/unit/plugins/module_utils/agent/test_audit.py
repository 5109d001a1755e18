"""The audit trail's entries: their fields, the journal's native framing, the busy rate limit."""

from __future__ import annotations

import io
import os
import socket
import struct
import tempfile

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent.audit import (
    REFUSAL_LOG_WINDOW,
    REFUSALS_PER_WINDOW,
    INVALID,
    MESSAGE_ID,
    ALLOWED,
    REFUSED,
    AuditLog,
    Decision,
    decision_fields,
    encode_journal_entry,
)


def parse_journal_entry(data):
    """The journal's native protocol read back, the way journald reads it."""
    fields, pos = {}, 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            pos = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + size]
            assert data[end + 9 + size:end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields[name.decode()] = value.decode()
    return fields


ALLOCATED = Decision(ALLOWED, None, "allocate", 4101, 777, owner="svc1", proto="tcp", count=2, changed=True)


def test_an_allowed_allocation_has_every_fact_in_its_own_field():
    assert decision_fields(ALLOCATED) == {
        "BERTH_DECISION": "allowed",
        "BERTH_OP": "allocate",
        "BERTH_UID": "4101",
        "BERTH_PID": "777",
        "BERTH_OWNER": "svc1",
        "BERTH_PROTO": "tcp",
        "BERTH_COUNT": "2",
        "BERTH_CHANGED": "1",
        "MESSAGE": "allowed op=allocate uid=4101 pid=777 owner=svc1 proto=tcp count=2 changed=1",
        "MESSAGE_ID": MESSAGE_ID,
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "berth-ports-agent",
    }


def test_a_refusal_carries_its_reason_and_why():
    refused = Decision(REFUSED, "forbidden", "deallocate", 4102, 9, owner="svc1", proto="all", detail="uid 4102 has  a\nlabel")
    fields = decision_fields(refused)
    assert fields["BERTH_REASON"] == "forbidden" and fields["PRIORITY"] == "5" and "BERTH_COUNT" not in fields
    assert fields["MESSAGE"] == "refused reason=forbidden op=deallocate uid=4102 pid=9 owner=svc1 proto=all: uid 4102 has a label"


@pytest.mark.parametrize("facts", [
    {"owner": "x\nBERTH_DECISION=allowed"}, {"owner": "-lead"}, {"owner": 7}, {"proto": "sctp SECRET"},
    {"count": True}, {"count": -1}, {"count": 10 ** 9}, {"count": "2"},
])
def test_malformed_values_from_the_caller_are_not_written(facts):
    decision = ALLOCATED._replace(decision=REFUSED, reason="failed", detail="owner %r is bad SECRET" % (facts,), **facts)
    fields = decision_fields(decision)
    assert INVALID in fields.values()
    assert "SECRET" not in str(fields) and "BERTH_DECISION=allowed" not in str(fields)
    assert fields["MESSAGE"].endswith(": the request is not well formed (its values are not logged)")


def test_bad_requests_and_bugs_are_told_in_the_agents_own_words():
    bad = decision_fields(Decision(REFUSED, "bad_request", None, 0, 1, detail="op 'SECRET' is not one of ..."))
    assert "SECRET" not in bad["MESSAGE"] and "BERTH_OP" not in bad
    bug = decision_fields(Decision(REFUSED, "internal", "list", 0, 1, detail="KeyError: 'SECRET'"))
    assert "SECRET" not in bug["MESSAGE"] and bug["MESSAGE"].endswith("the daemon's log has the traceback)")


def test_long_details_are_cut():
    fields = decision_fields(ALLOCATED._replace(decision=REFUSED, reason="failed", detail="x" * 5000))
    assert len(fields["MESSAGE"]) < 500 and fields["MESSAGE"].endswith("x...")


def test_native_framing_round_trips_values_with_newlines():
    fields = {"MESSAGE": "one line", "NOTE": "two\nlines", "EMPTY": "", "UNICODE": "pörts"}
    assert parse_journal_entry(encode_journal_entry(fields)) == fields
    assert encode_journal_entry({"A": "b\nc"}) == b"A\n" + struct.pack("<Q", 3) + b"b\nc\n"


@pytest.fixture
def journal():
    """A datagram socket standing in for journald's /run/systemd/journal/socket."""
    workdir = tempfile.mkdtemp(prefix="berth-journal-")
    path = os.path.join(workdir, "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(workdir)


def test_entries_go_to_the_journal_socket_one_datagram_each(journal):
    path, sock = journal
    stream = io.StringIO()
    audit = AuditLog(path, stream)
    audit.record(ALLOCATED)
    audit.record(ALLOCATED._replace(owner="web"))
    assert parse_journal_entry(sock.recv(65536)) == decision_fields(ALLOCATED)
    assert parse_journal_entry(sock.recv(65536))["BERTH_OWNER"] == "web"
    assert stream.getvalue() == ""


def test_without_a_journal_the_entry_is_one_line_on_the_stream(journal):
    path, sock = journal
    sock.close()
    os.unlink(path)  # journald gone (restarting): nothing is lost, it goes to stderr
    stream = io.StringIO()
    AuditLog(path, stream).record(ALLOCATED)
    assert stream.getvalue() == decision_fields(ALLOCATED)["MESSAGE"] + "\n"
    open(path, "w").close()  # the fixture removes it


def test_the_journal_is_used_only_when_systemd_put_our_output_there():
    assert AuditLog.for_environment({}).journal_socket is None


def test_busy_refusals_are_logged_once_per_uid_per_window():
    now = [100.0]
    stream = io.StringIO()
    audit = AuditLog(stream=stream, clock=lambda: now[0])
    busy = Decision(REFUSED, "busy", None, 4101, 5, detail="uid 4101 already has 4 requests in progress")
    for step in range(5):
        now[0] = 100.0 + step
        audit.record(busy)
    audit.record(busy._replace(uid=4102))  # another uid has its own window
    now[0] = 100.0 + REFUSAL_LOG_WINDOW + 0.5
    audit.record(busy)
    lines = stream.getvalue().splitlines()
    logged = [line.split(" pid=")[0] for line in lines]
    assert logged == ["refused reason=busy uid=4101", "refused reason=busy uid=4102", "refused reason=busy uid=4101"]
    assert lines[0].endswith("in progress") and lines[2].endswith("in progress (and 4 more from this uid not logged)")


def test_every_kind_of_refusal_is_limited_per_uid_and_what_was_left_out_is_counted():
    now = [100.0]
    stream = io.StringIO()
    audit = AuditLog(stream=stream, clock=lambda: now[0])
    forbidden = Decision(REFUSED, "forbidden", "allocate", 4104, 5, owner="x", proto="tcp", count=1, detail="no grant")
    for unused_round in range(200):
        audit.record(forbidden)
        audit.record(ALLOCATED)  # what was allowed is never held back
        audit.record(forbidden._replace(uid=4105))  # another uid has its own share
    now[0] = 100.0 + REFUSAL_LOG_WINDOW
    audit.record(forbidden)
    lines = stream.getvalue().splitlines()
    mine = [line for line in lines if line.startswith("refused reason=forbidden op=allocate uid=4104 ")]
    assert len(mine) == REFUSALS_PER_WINDOW + 1
    assert mine[-1].endswith("no grant (and %d more from this uid not logged)" % (200 - REFUSALS_PER_WINDOW))
    assert not any("more from this uid" in line for line in mine[:-1])
    assert len([line for line in lines if " uid=4105 " in line]) == REFUSALS_PER_WINDOW
    assert len([line for line in lines if line.startswith("allowed ")]) == 200
