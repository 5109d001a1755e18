# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side client: NethServer 8's ``allocate_ports`` / ``deallocate_ports`` for berth.ports.

Services on the host call these (or ``berth-ports``, the CLI on top of
them); the agent daemon decides, from the caller's uid, whether to serve.
Callers import it through its public path, ``module_utils/agent_client.py``
(a re-export of this file's ``__all__`` that stays put when the agent's
files move)::

    from ansible_collections.berth.ports.plugins.module_utils.agent_client import allocate_ports
    ports = allocate_ports(4, "tcp")                 # owner: $MODULE_ID, else the caller's grant
    freed = deallocate_ports("tcp", module_id="web")  # [{"proto": "tcp", "range": "25031-25034"}]

``DirectAgent`` serves the same calls in-process with the root identity (the
CLI uses it when run as root), through the same AgentService the daemon runs.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.berth.ports.plugins.module_utils.agent.config import load_config
from ansible_collections.berth.ports.plugins.module_utils.agent.grants import ROOT_GRANT, Identity
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import (
    CODE_BUSY,
    CODE_INTERNAL,
    CODE_TIMEOUT,
    DEFAULT_CONFIG_PATH,
    DEFAULT_SOCKET_PATH,
    MAX_RESPONSE_BYTES,
    AgentError,
    decode_request,
    decode_response,
    encode_request,
)
from ansible_collections.berth.ports.plugins.module_utils.agent.service import AgentService
from ansible_collections.berth.ports.plugins.module_utils.request import OWNER_ENV_VAR, validate_owner

CODE_UNREACHABLE = "unreachable"

# The daemon may wait up to the core's busy timeout (30 s) for the database
# lock; wait a little longer than that for its answer.
DEFAULT_TIMEOUT = 45.0
# How long to keep retrying while the daemon answers "busy".
DEFAULT_BUSY_RETRY = 10.0

__all__ = ["AgentClient", "DirectAgent", "allocate_ports", "deallocate_ports", "list_ports"]


def default_owner(module_id: Optional[str], environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``module_id``, else $MODULE_ID, else None (the agent then uses the caller's grant)."""
    env = os.environ if environ is None else environ
    owner = module_id if module_id else env.get(OWNER_ENV_VAR) or None
    return None if owner is None else validate_owner(owner)


class _Agent:
    def call(self, request: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def allocate(
        self,
        count: int,
        proto: str = "tcp",
        owner: Optional[str] = None,
        keep_existing: bool = False,
        port: Optional[int] = None,
        shared: bool = False,
    ) -> Dict[str, Any]:
        request = {"op": "allocate", "owner": owner, "proto": proto, "count": count, "keep_existing": keep_existing,
                   "shared": shared}  # type: Dict[str, Any]
        if port is not None:
            request["port"] = port
        return self.call(request)

    def deallocate(self, proto: str = "tcp", owner: Optional[str] = None) -> Dict[str, Any]:
        return self.call({"op": "deallocate", "owner": owner, "proto": proto})

    def list(self, owner: Optional[str] = None, proto: str = "all") -> Dict[str, Any]:
        return self.call({"op": "list", "owner": owner, "proto": proto})

    def whoami(self) -> Dict[str, Any]:
        return self.call({"op": "whoami"})


class AgentClient(_Agent):
    """Requests to the daemon over its unix socket."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET_PATH, timeout: float = DEFAULT_TIMEOUT,
                 busy_retry: float = DEFAULT_BUSY_RETRY) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.busy_retry = busy_retry

    def call(self, request: Dict[str, Any]) -> Dict[str, Any]:
        line = encode_request(request)
        deadline = time.monotonic() + self.busy_retry
        pause = 0.02
        while True:
            try:
                return decode_response(self._exchange(line))
            except AgentError as exc:
                if exc.code != CODE_BUSY or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _exchange(self, line: bytes) -> bytes:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise AgentError(
                    "cannot reach the berth-ports agent at %s: %s (is berth-ports-agent.socket active?)"
                    % (self.socket_path, exc.strerror),
                    CODE_UNREACHABLE,
                )
            except PermissionError as exc:
                raise AgentError("cannot reach the berth-ports agent at %s: %s" % (self.socket_path, exc.strerror), CODE_UNREACHABLE)
            buf = bytearray()
            try:
                try:
                    sock.sendall(line)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # answered (busy, too_large) and closed before reading: the answer is queued
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > MAX_RESPONSE_BYTES:
                        raise AgentError("the agent's answer is larger than %d bytes" % MAX_RESPONSE_BYTES, CODE_INTERNAL)
            except socket.timeout:
                raise AgentError("no answer from the agent at %s within %.0fs" % (self.socket_path, self.timeout), CODE_TIMEOUT)
            except OSError as exc:
                if b"\n" not in buf:
                    raise AgentError("the agent at %s closed the connection: %s" % (self.socket_path, exc), CODE_UNREACHABLE)
            if not buf:
                raise AgentError("the agent at %s closed the connection without answering" % self.socket_path, CODE_UNREACHABLE)
            return bytes(buf.split(b"\n", 1)[0])
        finally:
            sock.close()


class DirectAgent(_Agent):
    """The same requests served in-process, as root, on the configured database."""

    def __init__(self, config_path: Optional[str] = DEFAULT_CONFIG_PATH, db_path: Optional[str] = None) -> None:
        config = load_config(config_path)
        if db_path is not None:
            config = config._replace(db_path=db_path)
        self.service = AgentService(config)
        self.identity = Identity(os.getuid(), os.getgid(), os.getpid(), "root", ROOT_GRANT)

    def call(self, request: Dict[str, Any]) -> Dict[str, Any]:
        # Round-trip through the wire format so both paths accept the same requests.
        return self.service.handle(decode_request(encode_request(request)), self.identity)


def allocate_ports(
    count: int,
    proto: str,
    module_id: Optional[str] = None,
    keep_existing: bool = False,
    socket_path: str = DEFAULT_SOCKET_PATH,
) -> List[int]:
    """Allocate ``count`` contiguous ``proto`` ports for ``module_id`` (default $MODULE_ID); every port held."""
    result = AgentClient(socket_path).allocate(count, proto, default_owner(module_id), keep_existing)
    return [int(p) for p in result.get("ports", [])]


def deallocate_ports(proto: str, module_id: Optional[str] = None, socket_path: str = DEFAULT_SOCKET_PATH) -> List[Dict[str, str]]:
    """Free every ``proto`` (tcp, udp or all) port of ``module_id``; the freed ranges."""
    result = AgentClient(socket_path).deallocate(proto, default_owner(module_id))
    return list(result.get("deallocated", []))


def list_ports(module_id: Optional[str] = None, proto: str = "all", socket_path: str = DEFAULT_SOCKET_PATH) -> Dict[str, Any]:
    """The caller's allocations (an admin's: everyone's unless ``module_id``) and, for one owner, its env."""
    return AgentClient(socket_path).list(default_owner(module_id), proto)
