# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wire format between ``berth-ports`` clients and the ``berth-ports-agent`` daemon.

One connection carries one exchange: the client writes one JSON object on one
line (UTF-8, ending in ``\\n``, at most MAX_REQUEST_BYTES including the
newline), the daemon answers with one JSON object on one line and closes.

Requests::

    {"op": "allocate", "owner": "web" | null, "proto": "tcp", "count": 2,
     "keep_existing": false, "port": null, "shared": false}
    {"op": "deallocate", "owner": "web" | null, "proto": "tcp" | "udp" | "all"}
    {"op": "list", "owner": "web" | null, "proto": "tcp" | "udp" | "all"}
    {"op": "whoami"}

``owner`` null means "the owner id my grant names". Unknown keys are refused.

Answers::

    {"ok": true, "result": {...}}
    {"ok": false, "code": "forbidden", "error": "one line for people"}

Error codes: ``bad_request`` (not one JSON object, wrong types, unknown op or
key), ``too_large``, ``timeout`` (no complete line within the read timeout),
``busy`` (every worker slot taken, or the caller's uid has as many requests
in progress as one uid may; retry), ``forbidden`` (the caller's grant does
not allow it), ``max_ports_exceeded`` (the owner would hold more ports than
its grant's ``max_tcp_ports`` / ``max_udp_ports``; NethServer 8's name),
``failed`` (the allocator refused: exhaustion, conflict,
a bad database), ``internal`` (a bug; the daemon keeps serving).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

DEFAULT_SOCKET_PATH = "/run/berth-ports/agent.sock"
DEFAULT_GRANTS_PATH = "/etc/berth/grants.json"
DEFAULT_CONFIG_PATH = "/etc/berth/agent.json"

# A real request is under 200 bytes; 64 KiB leaves room and bounds memory.
MAX_REQUEST_BYTES = 65536
# Whole-request deadline, not per recv(): a client trickling one byte a
# second is cut off as surely as a silent one.
READ_TIMEOUT = 5.0
# Answers are small too; a client refuses anything bigger than this.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

OPS = ("allocate", "deallocate", "list", "whoami")

# The keys each op accepts (besides "op"), with the JSON types allowed.
_KEYS = {
    "allocate": {"owner": (str, type(None)), "proto": (str,), "count": (int,), "keep_existing": (bool,),
                 "port": (int, type(None)), "shared": (bool,)},
    "deallocate": {"owner": (str, type(None)), "proto": (str,)},
    "list": {"owner": (str, type(None)), "proto": (str,)},
    "whoami": {},
}

# What a request means by the keys it leaves out (the daemon, root's direct
# calls and the audit trail read requests through with_defaults).
_DEFAULTS = {
    "allocate": {"owner": None, "proto": "tcp", "count": 1, "keep_existing": False, "port": None, "shared": False},
    "deallocate": {"owner": None, "proto": "tcp"},
    "list": {"owner": None, "proto": "all"},
    "whoami": {},
}  # type: Dict[str, Dict[str, Any]]

CODE_BAD_REQUEST = "bad_request"
CODE_TOO_LARGE = "too_large"
CODE_TIMEOUT = "timeout"
CODE_BUSY = "busy"
CODE_FORBIDDEN = "forbidden"
CODE_MAX_PORTS_EXCEEDED = "max_ports_exceeded"
CODE_FAILED = "failed"
CODE_INTERNAL = "internal"


class AgentError(PortsError):
    """A refused or failed agent request; ``code`` is one of the CODE_* values."""

    def __init__(self, message: str, code: str = CODE_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _no_constants(name: str) -> Any:
    raise ValueError("%s is not allowed" % name)


def decode_request(line: bytes) -> Dict[str, Any]:
    """One request line -> a checked dict; AgentError(bad_request) on anything else."""
    try:
        text = line.decode("utf-8")
        data = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AgentError("request is not one JSON object on one line (%s)" % (str(exc)[:80],), CODE_BAD_REQUEST)
    if not isinstance(data, dict):
        raise AgentError("request is not a JSON object", CODE_BAD_REQUEST)
    op = data.get("op")
    if op not in OPS:
        raise AgentError("op %r is not one of %s" % (str(op)[:40], ", ".join(OPS)), CODE_BAD_REQUEST)
    allowed = _KEYS[op]
    for key, value in data.items():
        if key == "op":
            continue
        if key not in allowed:
            raise AgentError("op %s does not take %r" % (op, str(key)[:40]), CODE_BAD_REQUEST)
        types = allowed[key]
        # bool is an int in Python; JSON true is not a count.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise AgentError("op %s: %s has the wrong type" % (op, key), CODE_BAD_REQUEST)
    return data


def with_defaults(request: Dict[str, Any]) -> Dict[str, Any]:
    """A decoded request with every key its op takes, the left-out ones at their defaults."""
    full = dict(_DEFAULTS[request["op"]])
    full.update(request)
    return full


def encode_request(request: Dict[str, Any]) -> bytes:
    line = json.dumps(request, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"
    if len(line) > MAX_REQUEST_BYTES:
        raise AgentError("request larger than %d bytes" % MAX_REQUEST_BYTES, CODE_TOO_LARGE)
    return line


def ok_response(result: Dict[str, Any]) -> bytes:
    # Key order kept: env lists TCP_PORT, TCP_PORTS_RANGE, TCP_PORTS as port_allocate does.
    return json.dumps({"ok": True, "result": result}, separators=(",", ":")).encode("utf-8") + b"\n"


def error_response(code: str, message: str) -> bytes:
    body = {"ok": False, "code": code, "error": " ".join(str(message).split())}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


def decode_response(line: bytes) -> Dict[str, Any]:
    """An answer line -> its result; AgentError carrying the daemon's code when it refused."""
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AgentError("the agent answered something that is not JSON", CODE_INTERNAL)
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise AgentError("the agent answered an object without 'ok'", CODE_INTERNAL)
    if not data["ok"]:
        code = data.get("code") if isinstance(data.get("code"), str) else CODE_INTERNAL
        raise AgentError(str(data.get("error") or "the agent refused the request"), code)
    result = data.get("result")
    if not isinstance(result, dict):
        raise AgentError("the agent answered ok without a result", CODE_INTERNAL)
    return result


def request_owner(request: Dict[str, Any]) -> Optional[str]:
    owner = request.get("owner")
    return owner if isinstance(owner, str) and owner != "" else None
