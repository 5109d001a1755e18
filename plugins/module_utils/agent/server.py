# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The root daemon behind ``/run/berth-ports/agent.sock``.

It takes its listening socket from systemd (socket activation, Accept=no:
LISTEN_PID/LISTEN_FDS, fd 3) or binds one itself (``--socket PATH``),
identifies every caller with SO_PEERCRED, and serves each connection in a
worker thread, at most ``max_clients`` at once and ``max_clients_per_uid`` for
one caller uid, so that one local user cannot take every worker; callers that
hold no grant (any number of uids: a user with a subuid range has thousands)
share ``max_clients_ungranted`` of them, so the rest stay for granted callers
and root. A connection beyond any of these is answered ``busy`` at once. A worker reads one request line within
``read_timeout`` seconds (a deadline for the whole line, so trickling does not
help) and at most ``max_request`` bytes, answers, and closes. Whatever a
client sends or fails to send, it gets an error answer or is cut off; the
daemon goes on serving. Every decision goes to the audit trail once
(agent.audit).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional, Tuple

from ansible_collections.berth.ports.plugins.module_utils.agent.audit import ALLOWED, REFUSED, AuditLog, Decision
from ansible_collections.berth.ports.plugins.module_utils.agent.grants import GrantsError, GrantsTable, Identity
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import (
    CODE_BAD_REQUEST,
    CODE_BUSY,
    CODE_FORBIDDEN,
    CODE_INTERNAL,
    CODE_TIMEOUT,
    CODE_TOO_LARGE,
    MAX_REQUEST_BYTES,
    READ_TIMEOUT,
    AgentError,
    decode_request,
    error_response,
    ok_response,
    with_defaults,
)
from ansible_collections.berth.ports.plugins.module_utils.agent.service import AgentService

SD_LISTEN_FDS_START = 3
DEFAULT_MAX_CLIENTS = 32
DEFAULT_MAX_CLIENTS_PER_UID = 4
DEFAULT_MAX_CLIENTS_UNGRANTED = 4
_SEND_TIMEOUT = 5.0

Logger = Callable[[str], None]


def _stderr_log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def peer_credentials(conn: socket.socket) -> Tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected, as the kernel recorded it at connect()."""
    raw = conn.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def systemd_listener(environ: Optional[dict] = None) -> Optional[socket.socket]:
    """The socket systemd passed (LISTEN_FDS for this pid), or None when not socket-activated."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        count = 0
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)  # not for children
    if count < 1:
        return None
    if count > 1:
        raise AgentError("systemd passed %d sockets; berth-ports-agent.socket must have exactly one ListenStream" % count)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise AgentError("systemd passed fd 3 that is not a unix stream socket")
    os.set_inheritable(sock.fileno(), False)
    return sock


def bind_unix(path: str, mode: int = 0o666, backlog: int = 128) -> socket.socket:
    """A listening unix socket at ``path`` (standalone runs and tests).

    A stale socket file from a dead daemon is replaced; a live one, or a path
    that is not a socket, is an error.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, 0o755, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise AgentError("socket path %s exists and is not a socket; refusing to replace it" % path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise AgentError("another agent is serving %s" % path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class AgentServer:
    """Serve ``service`` on ``listener`` until stop()."""

    def __init__(
        self,
        listener: socket.socket,
        service: AgentService,
        grants: GrantsTable,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        read_timeout: float = READ_TIMEOUT,
        max_request: int = MAX_REQUEST_BYTES,
        log: Logger = _stderr_log,
        max_clients_per_uid: int = DEFAULT_MAX_CLIENTS_PER_UID,
        audit: Optional[AuditLog] = None,
        max_clients_ungranted: int = DEFAULT_MAX_CLIENTS_UNGRANTED,
    ) -> None:
        self.listener = listener
        self.service = service
        self.grants = grants
        self.read_timeout = read_timeout
        self.max_request = max_request
        self.log = log
        self.audit = audit if audit is not None else AuditLog()
        self.max_clients_per_uid = max_clients_per_uid
        self._slots = threading.BoundedSemaphore(max_clients)
        # Connections in progress per caller uid: one local user flooding the
        # socket gets max_clients_per_uid workers, never all of them.
        self._per_uid = {}  # type: Dict[int, int]
        self._per_uid_lock = threading.Lock()
        # Callers without a grant, whatever their uid, share one small pool: only
        # an error answer awaits them, and uids are cheap to come by.
        self.max_clients_ungranted = max_clients_ungranted
        self._ungranted = 0
        self._stop = threading.Event()
        self.served = 0

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self, poll: float = 0.2) -> None:
        self.listener.settimeout(poll)
        while not self._stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                # EMFILE/ENFILE/ENOBUFS: back off instead of spinning or dying.
                self.log("accept failed: %s; retrying" % exc)
                time.sleep(0.1)
                continue
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        try:
            pid, uid, _gid = caller = peer_credentials(conn)
        except OSError:
            self._close(conn)  # gone before we could ask who it was
            return
        granted = self._holds_grant(uid)
        refusal = self._take_slot(uid, granted)
        if refusal is None:
            try:
                threading.Thread(target=self._serve_client, args=(conn, caller, granted), name="berth-agent-client",
                                 daemon=True).start()
                return
            except RuntimeError:
                self._give_back_slot(uid, granted)
                refusal = "the agent cannot start a worker; retry"
        self.audit.record(Decision(REFUSED, CODE_BUSY, None, uid, pid, detail=refusal))
        self._reply(conn, error_response(CODE_BUSY, refusal))
        self._close(conn)

    def _holds_grant(self, uid: int) -> bool:
        """Root, or a uid the grants name (an unusable grants file names nobody)."""
        if uid == 0:
            return True
        try:
            return self.grants.identify(uid, -1, -1).grant is not None
        except GrantsError:
            return False

    def _take_slot(self, uid: int, granted: bool) -> Optional[str]:
        """A worker slot for ``uid``, or why not: every slot is taken, this uid holds its
        share, or (without a grant) the callers without one hold theirs."""
        with self._per_uid_lock:
            if not granted and self._ungranted >= self.max_clients_ungranted:
                return "callers without a grant already have %d requests in progress; retry" % self._ungranted
            if not self._slots.acquire(blocking=False):
                return "the agent is serving too many clients; retry"
            held = self._per_uid.get(uid, 0)
            if held >= self.max_clients_per_uid:
                self._slots.release()
                return "uid %d already has %d requests in progress (the most one uid may have); retry" % (uid, held)
            self._per_uid[uid] = held + 1
            self._ungranted += 0 if granted else 1
        return None

    def _give_back_slot(self, uid: int, granted: bool) -> None:
        with self._per_uid_lock:
            held = self._per_uid.pop(uid, 1) - 1
            if held > 0:
                self._per_uid[uid] = held
            self._ungranted -= 0 if granted else 1
            self._slots.release()

    def _serve_client(self, conn: socket.socket, caller: Tuple[int, int, int], granted: bool) -> None:
        pid, uid, gid = caller
        request = None  # type: Optional[Dict[str, Any]]
        identity = None  # type: Optional[Identity]
        try:
            try:
                request = decode_request(self._read_request(conn))
                try:
                    identity = self.grants.identify(uid, gid, pid)
                except GrantsError as exc:
                    raise AgentError("%s; every caller but root is refused until it is fixed" % exc, CODE_FORBIDDEN)
                result = self.service.handle(request, identity)
            except AgentError as exc:
                self.audit.record(_decision(REFUSED, exc.code, request, caller, identity, detail=str(exc)))
                self._reply(conn, error_response(exc.code, str(exc)))
                return
            self.audit.record(_decision(ALLOWED, None, request, caller, identity, result))
            self._reply(conn, ok_response(result))
        except _ClientGone:
            self.log("pid %d uid %d: client went away before sending a request" % (pid, uid))
        except Exception as exc:  # pylint: disable=broad-except
            # A bug must cost one connection, never the daemon.
            self.log("pid %d uid %d: internal error: %s\n%s" % (pid, uid, exc, traceback.format_exc()))
            self.audit.record(_decision(REFUSED, CODE_INTERNAL, request, caller, identity))
            self._reply(conn, error_response(CODE_INTERNAL, "internal error in the agent: %s" % exc))
        finally:
            self.served += 1
            self._close(conn)
            self._give_back_slot(uid, granted)

    def _read_request(self, conn: socket.socket) -> bytes:
        deadline = time.monotonic() + self.read_timeout
        buf = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentError("no complete request within %.1fs" % self.read_timeout, CODE_TIMEOUT)
            conn.settimeout(remaining)
            try:
                chunk = conn.recv(4096)
            except socket.timeout:
                raise AgentError("no complete request within %.1fs" % self.read_timeout, CODE_TIMEOUT)
            except OSError:
                raise _ClientGone()
            if not chunk:
                if not buf:
                    raise _ClientGone()
                raise AgentError("connection closed before the end of the request (no newline)", CODE_BAD_REQUEST)
            end = chunk.find(b"\n")
            if end >= 0:
                buf += chunk[:end]
                if len(buf) + 1 > self.max_request:
                    break
                return bytes(buf)
            buf += chunk
            if len(buf) >= self.max_request:
                break
        raise AgentError("request larger than %d bytes" % self.max_request, CODE_TOO_LARGE)

    @staticmethod
    def _reply(conn: socket.socket, line: bytes) -> None:
        try:
            conn.settimeout(_SEND_TIMEOUT)
            conn.sendall(line)
        except OSError:
            pass  # the client left; nothing to tell it

    @staticmethod
    def _close(conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def _decision(decision: str, reason: Optional[str], request: Optional[Dict[str, Any]], caller: Tuple[int, int, int],
              identity: Optional[Identity], result: Optional[Dict[str, Any]] = None, detail: str = "") -> Decision:
    """The audit entry for one request: the caller, and what it asked as far as it was well formed."""
    pid, uid, _gid = caller
    asked = with_defaults(request) if request is not None else {}
    result = result if result is not None else {}
    # The owner asked for; a portsadm caller that names none acts on its grant's.
    owner = result.get("owner") or asked.get("owner")
    if owner is None and request is not None and identity is not None and identity.grant is not None:
        owner = identity.grant.owner
    return Decision(
        decision,
        reason,
        asked.get("op"),
        uid,
        pid,
        owner=owner,
        proto=asked.get("proto"),
        count=asked.get("count"),
        changed=result.get("changed"),
        detail=detail,
    )


class _ClientGone(Exception):
    """The client closed or reset the connection before sending anything useful."""


def run_daemon(
    service: AgentService,
    grants: GrantsTable,
    socket_path: Optional[str] = None,
    max_clients: int = DEFAULT_MAX_CLIENTS,
    read_timeout: float = READ_TIMEOUT,
    log: Logger = _stderr_log,
    max_clients_per_uid: int = DEFAULT_MAX_CLIENTS_PER_UID,
    max_clients_ungranted: int = DEFAULT_MAX_CLIENTS_UNGRANTED,
) -> int:
    """The daemon's main: systemd's socket when activated, else bind ``socket_path``."""
    listener = systemd_listener()
    bound = None
    if listener is None:
        if socket_path is None:
            raise AgentError("not socket-activated (no LISTEN_FDS for this pid) and no --socket given")
        listener = bind_unix(socket_path)
        bound = socket_path
    server = AgentServer(listener, service, grants, max_clients=max_clients, read_timeout=read_timeout, log=log,
                         max_clients_per_uid=max_clients_per_uid, audit=AuditLog.for_environment(),
                         max_clients_ungranted=max_clients_ungranted)

    def _stop(_signum: int, _frame: object) -> None:
        server.stop()

    def _reload(_signum: int, _frame: object) -> None:
        grants.reload()
        log("SIGHUP: grants will be re-read from %s" % grants.path)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    audit_to = "the journal" if server.audit.journal_socket else "stderr"
    log("berth-ports agent serving %s (db %s, grants %s, max %d clients, %d per uid, %d without a grant, read timeout %.1fs, "
        "audit to %s)" % (bound or "the socket from systemd", service.config.db_path, grants.path, max_clients,
                          max_clients_per_uid, max_clients_ungranted, read_timeout, audit_to))
    try:
        server.serve_forever()
    finally:
        listener.close()
        if bound is not None:
            try:
                os.unlink(bound)
            except OSError:
                pass
    log("berth-ports agent stopped after %d connections" % server.served)
    return 0
