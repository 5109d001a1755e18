"""The agent daemon for real: a subprocess on a unix socket, callers forked under distinct uids.

Every caller here is a process whose uid the kernel reports through
SO_PEERCRED: the test forks, drops to an unprivileged uid with setresuid and
talks to the daemon from there. No user accounts are created: the grants
name numeric uids.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent import server
from ansible_collections.berth.ports.plugins.module_utils.agent.client import AgentClient
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import AgentError
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.port_environment import port_environment
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="forks callers under other uids: needs root")

SVC1, SVC2, ADMIN, NOBODY, CAPPED, CAPPED_ADMIN, TRUSTED = 4101, 4102, 4103, 4104, 4105, 4106, 4107
GRANTS = {
    "version": 1,
    "grants": [
        {"uid": SVC1, "label": "node:portsadm", "owner": "svc1"},
        {"uid": SVC2, "label": "node:tunadm,portsadm", "owner": "svc2"},
        {"uid": ADMIN, "role": "admin"},
        {"uid": CAPPED, "label": "node:portsadm", "owner": "capped", "max_tcp_ports": 4},
        {"uid": CAPPED_ADMIN, "role": "admin", "max_udp_ports": 2},
        {"uid": TRUSTED, "label": "node:portsadm", "owner": "trusted", "allow_reserved": True, "allow_shared_listeners": True},
    ],
}
READ_TIMEOUT = 1.0
MAX_CLIENTS = 8
# The daemon subprocess imports the collection the way this process did.
COLLECTIONS = os.pathsep.join(p for p in sys.path if p)
CLI = "import sys; from ansible_collections.berth.ports.plugins.module_utils.agent.cli import main; sys.exit(main(sys.argv[1:]))"


class Daemon:
    """A berth-ports agent subprocess with its own socket, grants and database."""

    def __init__(self, workdir, activated=False, read_timeout=READ_TIMEOUT, per_uid=None, host_settings=None):
        self.dir = workdir
        self.socket = os.path.join(workdir, "agent.sock")
        self.grants = os.path.join(workdir, "grants.json")
        self.db = os.path.join(workdir, "db", "ports.db")
        os.mkdir(os.path.dirname(self.db), 0o700)  # as /var/lib/berth is
        self.config = os.path.join(workdir, "agent.json")
        with open(self.grants, "w") as handle:
            json.dump(GRANTS, handle)
        os.chmod(self.grants, 0o600)
        with open(self.config, "w") as handle:
            json.dump(dict({"db_path": self.db, "skip_listening": False}, **(host_settings or {})), handle)
        self.log = open(os.path.join(workdir, "agent.log"), "w+")
        args = ["serve", "--grants", self.grants, "--config", self.config,
                "--max-clients", str(MAX_CLIENTS), "--read-timeout", str(read_timeout)]
        if per_uid is not None:  # else the daemon's default (4)
            args += ["--max-clients-per-uid", str(per_uid)]
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        env.pop("JOURNAL_STREAM", None)  # the audit trail goes to agent.log, where the tests read it
        if activated:
            # What systemd does for Accept=no: the listening socket as fd 3,
            # LISTEN_FDS=1 and LISTEN_PID naming the daemon's own pid.
            self.listener = server.bind_unix(self.socket)
            fd = self.listener.fileno()
            shim = ("import os, sys; os.dup2(%d, 3); os.close(%d); os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
                    "os.execv(sys.executable, [sys.executable] + sys.argv[1:])" % (fd, fd))
            cmd = [sys.executable, "-c", shim, "-c", CLI] + args
            self.proc = subprocess.Popen(cmd, env=env, stderr=self.log, pass_fds=(fd,))
            self.listener.close()
        else:
            cmd = [sys.executable, "-c", CLI] + args + ["--socket", self.socket]
            self.proc = subprocess.Popen(cmd, env=env, stderr=self.log)
            deadline = time.monotonic() + 20
            while not os.path.exists(self.socket):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the agent did not start: %s" % self.logs())
                time.sleep(0.05)

    def logs(self):
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def rows(self):
        return [(r.owner, r.proto, r.first, r.last) for r in load_rows(AllocationStore(self.db))]

    def integrity(self):
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()


@pytest.fixture
def workdir():
    # Not tmp_path: pytest's base is 0700 root, and the callers are other uids.
    path = tempfile.mkdtemp(prefix="berth-agent-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(workdir):
    running = Daemon(workdir)
    yield running
    running.stop()


def as_uid(uid, func):
    """Run ``func()`` in a child process whose real, effective and saved uid/gid are ``uid``.

    Returns ("ok", value) or ("error", code, message) from the child.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                outcome = ["ok", func()]
            except AgentError as exc:
                outcome = ["error", exc.code, str(exc)]
            payload = json.dumps(outcome).encode()
        except BaseException as exc:  # pylint: disable=broad-except
            payload = json.dumps(["crash", repr(exc)]).encode()
        os.write(write_end, payload)
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return tuple(json.loads(b"".join(chunks).decode()))


def client(daemon, **kwargs):
    return AgentClient(daemon.socket, **kwargs)


def raw_exchange(path, payload, read=True, timeout=10.0):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    try:
        if payload:
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (busy, too_large) and closed first: the answer is still queued
        if not read:
            return None
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data.decode()) if data else None
    finally:
        sock.close()


# -- the service's own calls -----------------------------------------------------


def test_service_allocates_lists_and_frees_its_own_ports(daemon):
    got = as_uid(SVC1, lambda: client(daemon).allocate(3, "tcp"))
    assert got[0] == "ok", got
    result = got[1]
    assert result["owner"] == "svc1" and result["ranges"] == ["25031-25033"]
    # The same variables port_allocate reports for the same holding.
    assert result["env"] == port_environment("tcp", [PortRange(25031, 25033)])
    assert result["env"] == {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25033", "TCP_PORTS": "25031,25032,25033"}

    again = as_uid(SVC1, lambda: client(daemon).allocate(3, "tcp"))
    assert again[1]["changed"] is False and again[1]["ranges"] == ["25031-25033"]

    more = as_uid(SVC1, lambda: client(daemon).allocate(1, "tcp", keep_existing=True))
    assert more[1]["ranges"] == ["25031-25033", "25034-25034"]

    listed = as_uid(SVC1, lambda: client(daemon).list())
    assert [(a["owner"], a["first"], a["last"]) for a in listed[1]["allocations"]] == [("svc1", 25031, 25033), ("svc1", 25034, 25034)]
    assert listed[1]["env"]["TCP_PORT"] == "25031"

    freed = as_uid(SVC1, lambda: client(daemon).deallocate("tcp"))
    assert freed[1]["deallocated"] == [{"proto": "tcp", "range": "25031-25033"}, {"proto": "tcp", "range": "25034-25034"}]
    assert daemon.rows() == []


def test_module_id_and_library_functions(daemon):
    from ansible_collections.berth.ports.plugins.module_utils.agent.client import allocate_ports, deallocate_ports

    def work():
        os.environ["MODULE_ID"] = "svc2"
        ports = allocate_ports(2, "udp", socket_path=daemon.socket)
        return [ports, deallocate_ports("udp", socket_path=daemon.socket)]

    got = as_uid(SVC2, work)
    assert got == ("ok", [[25031, 25032], [{"proto": "udp", "range": "25031-25032"}]])


def test_another_service_is_refused_on_the_first_ones_owner(daemon):
    assert as_uid(SVC1, lambda: client(daemon).allocate(2))[0] == "ok"
    before = daemon.rows()
    for call in (lambda: client(daemon).allocate(5, owner="svc1"),
                 lambda: client(daemon).deallocate("all", owner="svc1"),
                 lambda: client(daemon).list(owner="svc1")):
        got = as_uid(SVC2, call)
        assert got[0] == "error" and got[1] == "forbidden", got
        assert "uid %d" % SVC2 in got[2] and "svc2 only" in got[2] and "svc1" in got[2]
    assert daemon.rows() == before
    # Its own owner still works, and its list shows only its own rows.
    assert as_uid(SVC2, lambda: client(daemon).allocate(1))[1]["owner"] == "svc2"
    assert [a["owner"] for a in as_uid(SVC2, lambda: client(daemon).list())[1]["allocations"]] == ["svc2"]


def test_admin_manages_any_owner_and_must_name_one(daemon):
    assert as_uid(SVC1, lambda: client(daemon).allocate(2))[0] == "ok"
    got = as_uid(ADMIN, lambda: client(daemon).allocate(4, owner="svc1"))
    assert got[0] == "ok" and got[1]["ranges"] == ["25031-25034"]
    assert as_uid(ADMIN, lambda: client(daemon).allocate(1, owner="brand-new"))[0] == "ok"
    everyone = as_uid(ADMIN, lambda: client(daemon).list())[1]["allocations"]
    assert sorted(a["owner"] for a in everyone) == ["brand-new", "svc1"]
    nameless = as_uid(ADMIN, lambda: client(daemon).allocate(1))
    assert nameless[0] == "error" and "name the owner" in nameless[2]
    assert as_uid(ADMIN, lambda: client(daemon).deallocate("all", owner="svc1"))[1]["changed"] is True


def test_caller_without_grant_is_refused(daemon):
    for call in (lambda: client(daemon).allocate(1), lambda: client(daemon).allocate(1, owner="svc1"),
                 lambda: client(daemon).deallocate("tcp", owner="svc1"), lambda: client(daemon).list()):
        got = as_uid(NOBODY, call)
        assert got[:2] == ("error", "forbidden") and "has no berth.ports grant" in got[2], got
    assert as_uid(NOBODY, lambda: client(daemon).whoami())[1]["role"] is None
    assert daemon.rows() == []


def test_unsafe_grants_file_refuses_everyone_but_root(daemon):
    os.chmod(daemon.grants, 0o666)
    got = as_uid(SVC1, lambda: client(daemon).allocate(1))
    assert got[:2] == ("error", "forbidden") and "writable by group or others" in got[2]
    assert client(daemon).allocate(1, owner="rootjob")["owner"] == "rootjob"  # uid 0 is admin
    os.chmod(daemon.grants, 0o600)
    os.chown(daemon.grants, SVC1, SVC1)  # a service must not be able to rewrite its grants
    got = as_uid(SVC1, lambda: client(daemon).allocate(1))
    assert got[:2] == ("error", "forbidden") and "not root" in got[2]
    os.chown(daemon.grants, 0, 0)
    assert as_uid(SVC1, lambda: client(daemon).allocate(1))[0] == "ok"


def test_grants_changes_apply_without_restart(daemon):
    assert as_uid(NOBODY, lambda: client(daemon).allocate(1))[1] == "forbidden"
    grants = dict(GRANTS, grants=GRANTS["grants"] + [{"uid": NOBODY, "label": "node:fwadm,portsadm", "owner": "late"}])
    with open(daemon.grants, "w") as handle:
        json.dump(grants, handle)
    assert as_uid(NOBODY, lambda: client(daemon).allocate(1))[1]["owner"] == "late"


def test_allocator_errors_come_back_as_failed(daemon):
    got = as_uid(SVC1, lambda: client(daemon).allocate(5000))
    assert got[:2] == ("error", "failed") and "larger than the range" in got[2]
    got = as_uid(SVC1, lambda: client(daemon).allocate(1, proto="sctp"))
    assert got[:2] == ("error", "failed") and "proto" in got[2]
    assert daemon.rows() == []


# -- bad clients ---------------------------------------------------------------------


def assert_still_serving(daemon):
    assert daemon.alive(), daemon.logs()
    assert client(daemon).whoami()["uid"] == 0


@pytest.mark.parametrize("payload, code", [
    (b"\xff\xfe\x00garbage\n", "bad_request"),
    (b"not json at all\n", "bad_request"),
    (b"[1, 2, 3]\n", "bad_request"),
    (b'{"op": "format_disk"}\n', "bad_request"),
    (b'{"op": "allocate", "count": true}\n', "bad_request"),
    (b'{"op": "allocate", "count": NaN}\n', "bad_request"),
    (b'{"op": "allocate", "owner": "svc1", "db_path": "/etc/passwd"}\n', "bad_request"),
    (b"[" * 50000 + b"\n", "bad_request"),
    (b'{"op": "allocate", "count": ' + b"9" * 5000 + b"}\n", "bad_request"),
    (b'{"op": "allocate", "owner": "../../etc"}\n', "failed"),
])
def test_malformed_requests_get_an_error_and_the_daemon_goes_on(daemon, payload, code):
    answer = raw_exchange(daemon.socket, payload)
    assert answer["ok"] is False and answer["code"] == code, answer
    assert_still_serving(daemon)
    assert daemon.rows() == []


def test_oversized_request_is_cut_off(daemon):
    answer = raw_exchange(daemon.socket, b'{"op": "whoami", "x": "' + b"A" * 200000)
    assert answer == {"ok": False, "code": "too_large", "error": "request larger than 65536 bytes"}
    assert_still_serving(daemon)


def test_silent_client_times_out_while_others_are_served(daemon):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(daemon.socket)
    trickle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trickle.connect(daemon.socket)
    started = time.monotonic()
    # Served at once, while the silent one holds its worker.
    for _attempt in range(5):
        assert client(daemon).allocate(1, owner="busy-bee")["owner"] == "busy-bee"
        trickle.sendall(b" ")
    assert time.monotonic() - started < READ_TIMEOUT
    silent.settimeout(READ_TIMEOUT + 5)
    answer = json.loads(silent.recv(65536).decode())
    assert answer["code"] == "timeout"
    assert silent.recv(1) == b""  # and closed
    trickle.settimeout(READ_TIMEOUT + 5)
    assert json.loads(trickle.recv(65536).decode())["code"] == "timeout"  # a deadline, not an idle timer
    silent.close()
    trickle.close()
    assert_still_serving(daemon)


def test_client_disconnecting_mid_request(daemon):
    for payload in (b"", b'{"op": "allocate", "count"', b'{"op": "allocate", "count": 3, "owner": "gone"}'):
        raw_exchange(daemon.socket, payload, read=False)
    # A complete request whose answer nobody reads: done once, idempotent after.
    raw_exchange(daemon.socket, b'{"op": "allocate", "count": 2, "owner": "left"}\n', read=False)
    time.sleep(0.3)
    assert_still_serving(daemon)
    assert daemon.rows() in ([], [("left", "tcp", 25031, 25032)])
    assert client(daemon).allocate(2, owner="left")["ranges"] == ["25031-25032"]
    assert "client went away" in daemon.logs()


def test_many_clients_at_once_are_served_or_told_busy_never_lost(workdir):
    """50 callers at once against 8 workers: every one gets ports (retrying on busy), none twice."""
    # Every caller here is root: the per-uid share is the whole daemon.
    daemon = Daemon(workdir, per_uid=MAX_CLIENTS)
    results, errors = {}, []

    def call(i):
        try:
            results[i] = AgentClient(daemon.socket, busy_retry=30).allocate(2, owner="c%02d" % i)
        except AgentError as exc:
            errors.append((i, exc.code, str(exc)))

    # Four silent clients hold workers the whole time.
    hogs = []
    for _hog in range(4):
        hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hog.connect(daemon.socket)
        hogs.append(hog)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for hog in hogs:
        hog.close()
    assert errors == []
    ports = [p for result in results.values() for p in result["ports"]]
    assert len(ports) == 100 and len(set(ports)) == 100
    assert len(daemon.rows()) == 50 and daemon.integrity() == "ok"
    assert_still_serving(daemon)
    daemon.stop()


def test_busy_answer_when_every_worker_is_taken(workdir):
    # Hogs that outlast anything a loaded machine might make this test wait;
    # all of them root, so the per-uid share must not be what says busy.
    daemon = Daemon(workdir, read_timeout=30, per_uid=MAX_CLIENTS)
    hogs = []
    for _slot in range(MAX_CLIENTS):
        hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hog.connect(daemon.socket)
        hogs.append(hog)
    time.sleep(0.2)
    answer = raw_exchange(daemon.socket, b'{"op": "whoami"}\n')
    assert answer["code"] == "busy" and "too many clients" in answer["error"]
    with pytest.raises(AgentError) as caught:
        AgentClient(daemon.socket, busy_retry=0).whoami()
    assert caught.value.code == "busy"
    for hog in hogs:
        hog.close()
    # Waiting out the slots frees them; a retrying client gets through.
    assert AgentClient(daemon.socket, busy_retry=10).whoami()["uid"] == 0
    daemon.stop()


def _ansible_like(db, first, count):
    """What port_allocate does: one process, one core allocate() per owner."""
    settings = build_settings(skip_listening=False)
    store = AllocationStore(db)
    for i in range(first, first + count):
        allocate(store, build_allocation_request("ansible%02d" % i, "tcp", 3, settings=settings), settings)


def test_runs_beside_ansible_on_the_same_database(daemon):
    """Agent callers and separate core processes (what port_allocate runs) race on one file."""
    agent_results, errors = [], []

    def agent_like(i):
        try:
            agent_results.append(AgentClient(daemon.socket, busy_retry=30).allocate(3, owner="agent%02d" % i))
        except AgentError as exc:
            errors.append(str(exc))

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ansible_like, args=(daemon.db, 5 * n, 5)) for n in range(3)]
    threads = [threading.Thread(target=agent_like, args=(i,)) for i in range(15)]
    for proc in procs:
        proc.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for proc in procs:
        proc.join(60)
    assert errors == [] and [proc.exitcode for proc in procs] == [0, 0, 0]
    rows = daemon.rows()
    ports = [p for _owner, _proto, first, last in rows for p in range(first, last + 1)]
    assert len(rows) == 30 and len(ports) == 90 and len(set(ports)) == 90
    assert sorted(p for r in agent_results for p in r["ports"]) == sorted(
        p for owner, _proto, first, last in rows if owner.startswith("agent") for p in range(first, last + 1))
    assert daemon.integrity() == "ok"


# -- how the daemon starts -------------------------------------------------------------


def test_socket_activation_takes_fd_3(workdir):
    running = Daemon(workdir, activated=True)
    try:
        got = as_uid(SVC1, lambda: client(running).allocate(1))
        assert got[0] == "ok", (got, running.logs())
        assert "the socket from systemd" in running.logs()
    finally:
        running.stop()
    # systemd owns the socket file: the daemon leaves it in place.
    assert os.path.exists(running.socket)


def test_listen_pid_of_another_process_is_ignored():
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert server.systemd_listener(env) is None


def test_second_daemon_on_a_live_socket_is_refused(daemon):
    with pytest.raises(AgentError, match="another agent is serving"):
        server.bind_unix(daemon.socket)
    assert_still_serving(daemon)


def test_sigterm_stops_cleanly(workdir):
    running = Daemon(workdir)
    running.proc.terminate()
    assert running.proc.wait(10) == 0
    assert not os.path.exists(running.socket)
    running.log.close()


# -- NethServer 8's port demand: max_tcp_ports / max_udp_ports ---------------------------


def held_ports(daemon, owner, proto="tcp"):
    return sum(last - first + 1 for o, p, first, last in daemon.rows() if (o, p) == (owner, proto))


def db_digest(daemon):
    with open(daemon.db, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_demand_caps_what_the_owner_holds_kept_ranges_counted(daemon):
    assert as_uid(CAPPED, lambda: client(daemon).allocate(3))[0] == "ok"
    assert as_uid(CAPPED, lambda: client(daemon).allocate(1, keep_existing=True))[0] == "ok"
    assert held_ports(daemon, "capped") == 4
    before = db_digest(daemon)
    for call in (lambda: client(daemon).allocate(1, keep_existing=True),  # 4 kept + 1
                 lambda: client(daemon).allocate(5),  # in place of the 4: still past 4
                 lambda: client(daemon).allocate(1, port=25500, keep_existing=True)):  # a static port counts too
        got = as_uid(CAPPED, call)
        assert got[:2] == ("error", "max_ports_exceeded"), got
        assert "owner capped (tcp)" in got[2] and "more than the 4 allowed (max_tcp_ports)" in got[2] and "nothing changed" in got[2]
    assert db_digest(daemon) == before
    # Within the demand again: shrinking in place is allowed; UDP is held only to the default cap (16).
    assert as_uid(CAPPED, lambda: client(daemon).allocate(2))[1]["ports"] == [25031, 25032]
    assert len(as_uid(CAPPED, lambda: client(daemon).allocate(10, "udp"))[1]["ports"]) == 10


def test_demand_refusal_exits_3_from_the_command(daemon):
    from ansible_collections.berth.ports.plugins.module_utils.agent.cli import main

    def run():
        out, err = io.StringIO(), io.StringIO()
        return [main(["allocate", "5", "tcp", "--agent", "--socket", daemon.socket], out=out, err=err), err.getvalue()]

    code, err = as_uid(CAPPED, run)[1]
    assert code == 3 and "max_tcp_ports" in err
    assert daemon.rows() == []


def test_admin_grants_are_capped_only_when_they_say_so(daemon):
    assert as_uid(ADMIN, lambda: client(daemon).allocate(50, owner="capped"))[1]["owner"] == "capped"
    refused = as_uid(CAPPED_ADMIN, lambda: client(daemon).allocate(3, "udp", owner="anyone"))
    assert refused[:2] == ("error", "max_ports_exceeded") and "max_udp_ports" in refused[2]
    assert len(as_uid(CAPPED_ADMIN, lambda: client(daemon).allocate(2, "udp", owner="anyone"))[1]["ports"]) == 2
    assert len(as_uid(CAPPED_ADMIN, lambda: client(daemon).allocate(9, "tcp", owner="anyone"))[1]["ports"]) == 9
    # The demand belongs to the caller's grant, not the owner: the capped
    # owner's 50 ports stay, and root is never capped.
    assert held_ports(daemon, "capped") == 50
    assert len(client(daemon).allocate(20, "udp", owner="anyone")["ports"]) == 20


def test_racing_requests_of_one_owner_cannot_pass_the_demand_together(daemon):
    """Four keep_existing requests at once for an owner one port short of its demand: one wins."""
    assert as_uid(CAPPED, lambda: client(daemon).allocate(3))[0] == "ok"

    def race():
        outcomes = []

        def one():
            try:
                outcomes.append(client(daemon, busy_retry=10).allocate(1, keep_existing=True)["changed"])
            except AgentError as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=one) for _racer in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return sorted(str(outcome) for outcome in outcomes)

    assert as_uid(CAPPED, race)[1] == ["True", "max_ports_exceeded", "max_ports_exceeded", "max_ports_exceeded"]
    assert held_ports(daemon, "capped") == 4 and daemon.integrity() == "ok"


# -- fairness: one uid cannot take every worker --------------------------------------------


def start_as_uid(uid, func):
    """Fork a child that runs ``func()`` as ``uid`` and exits; its pid."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            func()
            code = 0
        finally:
            os._exit(code)
    return pid


def flood(path, seconds, width=40):
    """Keep ``width`` connections open to the agent without ever sending a request,
    opening a new one as soon as the agent answers or closes one."""
    open_socks = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while len(open_socks) < width:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                break
            open_socks.append(sock)
        ready, _w, _x = select.select(open_socks, [], [], 0.05)
        for sock in ready:
            try:
                sock.recv(65536)
            except OSError:
                pass
            sock.close()
            open_socks.remove(sock)


def wait_for_log(daemon, text, timeout=20.0):
    deadline = time.monotonic() + timeout
    while text not in daemon.logs():
        assert time.monotonic() < deadline, "no %r in the agent's log: %s" % (text, daemon.logs())
        time.sleep(0.05)


@pytest.mark.parametrize("per_uid, fair", [(None, True), (MAX_CLIENTS, False)], ids=["per-uid cap 4", "no per-uid cap"])
def test_a_flooding_uid_does_not_starve_another(workdir, per_uid, fair):
    """svc1 holds as many connections open as it can; svc2 still gets its port at once.

    With the per-uid share at the whole daemon (the control), the same flood
    leaves svc2 nothing but "busy": the test can tell the two apart.
    """
    # The production read timeout: each silent connection holds its worker 5 s.
    daemon = Daemon(workdir, read_timeout=5.0, per_uid=per_uid)
    flooder = start_as_uid(SVC1, lambda: flood(daemon.socket, seconds=12))
    try:
        wait_for_log(daemon, "refused reason=busy uid=%d" % SVC1)  # svc1 holds every worker it may
        started = time.monotonic()
        got = as_uid(SVC2, lambda: client(daemon, busy_retry=0).allocate(1))
        elapsed = time.monotonic() - started
        if fair:
            assert got[0] == "ok" and got[1]["owner"] == "svc2", got
            assert elapsed < 5.0, "svc2 waited %.1fs behind svc1's flood" % elapsed
            assert "uid %d already has 4 requests in progress" % SVC1 in daemon.logs()
        else:
            assert got[:2] == ("error", "busy") and "too many clients" in got[2], got
    finally:
        os.kill(flooder, signal.SIGKILL)
        os.waitpid(flooder, 0)
        daemon.stop()


# -- the audit trail -------------------------------------------------------------------------


def audit_lines(daemon):
    return [line for line in daemon.logs().splitlines() if line.startswith(("allowed ", "refused "))]


def test_each_decision_is_audited_once_with_who_and_what(daemon):
    assert as_uid(SVC1, lambda: client(daemon).allocate(2))[0] == "ok"
    assert as_uid(SVC2, lambda: client(daemon).allocate(4, owner="svc1"))[1] == "forbidden"
    assert as_uid(CAPPED, lambda: client(daemon).allocate(7))[1] == "max_ports_exceeded"
    lines = audit_lines(daemon)
    assert len(lines) == 3, lines
    allowed, forbidden, demand = lines
    assert allowed.startswith("allowed op=allocate uid=%d pid=" % SVC1)
    assert allowed.endswith(" owner=svc1 proto=tcp count=2 changed=1")
    svc1_pid = int(allowed.split(" pid=")[1].split()[0])
    assert svc1_pid > 1
    assert forbidden.startswith("refused reason=forbidden op=allocate uid=%d pid=" % SVC2)
    assert " owner=svc1 proto=tcp count=4: uid %d has node:tunadm,portsadm for owner svc2 only" % SVC2 in forbidden
    assert demand.startswith("refused reason=max_ports_exceeded op=allocate uid=%d" % CAPPED)
    assert " owner=capped proto=tcp count=7: " in demand


def test_the_request_itself_never_reaches_the_audit_trail(daemon):
    hostile = b'{"op": "allocate", "owner": "x\\nBERTH_DECISION=allowed SECRET", "count": 1}\n'
    assert raw_exchange(daemon.socket, hostile)["code"] == "failed"
    assert raw_exchange(daemon.socket, b'{"op": "allocate", "count": "SECRET"}\n')["code"] == "bad_request"
    assert raw_exchange(daemon.socket, b"SECRET not json\n")["code"] == "bad_request"
    assert raw_exchange(daemon.socket, b'{"op": "whoami", "x": "SECRET' + b"A" * 70000)["code"] == "too_large"
    lines = audit_lines(daemon)
    assert len(lines) == 4, lines
    assert all(line.startswith("refused reason=") for line in lines)
    assert " owner=(invalid) proto=tcp count=1:" in lines[0]
    assert "SECRET" not in daemon.logs() and "BERTH_DECISION" not in daemon.logs()


# -- the database under load: the agent's worker threads beside an outside reader --------------

# How long the load runs; the issue that found the corruption saw it within 20 s every time.
LOAD_SECONDS = float(os.environ.get("BERTH_LOAD_SECONDS", "20"))

# A plain sqlite3 reader in a process of its own, as port_info, check mode, `berth-ports
# list` or any script reads the file: it prints how many reads it made and every error.
OUTSIDE_READER = """
import json, sqlite3, sys, time
db, seconds = sys.argv[1], float(sys.argv[2])
reads, errors = 0, []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        conn = sqlite3.connect(db, timeout=30)
        try:
            conn.execute("SELECT owner, proto, first_port, last_port FROM allocations").fetchall()
            conn.execute("SELECT count(*) FROM allocations WHERE proto = 'tcp' AND first_port > 0").fetchone()
        finally:
            conn.close()
        reads += 1
    except sqlite3.Error as exc:
        errors.append(str(exc))
print(json.dumps({"reads": reads, "errors": errors[:20], "error_count": len(errors)}))
"""


def hammer(path, seconds):
    """Allocate, list and free as fast as the agent answers; every error answer, counted."""
    agent = AgentClient(path, busy_retry=30.0)
    calls, errors = 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for work in (lambda: agent.allocate(2, keep_existing=False), agent.list, agent.deallocate):
            try:
                work()
            except AgentError as exc:
                errors.append("%s: %s" % (exc.code, exc))
            calls += 1
    return {"calls": calls, "errors": errors[:20], "error_count": len(errors)}


def test_concurrent_requests_beside_an_outside_reader_leave_the_database_intact(daemon):
    """Two grantees with two connections each, and a plain sqlite3 reader in another process.

    A worker letting go of its descriptor of the database file while another
    worker was inside its write transaction dropped that transaction's POSIX
    locks; the reader then rolled the hot journal back under the writer, and the
    file was corrupt within seconds (docs/docsite/rst/lock_design.rst).
    """
    assert as_uid(SVC1, lambda: client(daemon).allocate(1))[0] == "ok"  # the file exists for the reader
    reader = subprocess.Popen([sys.executable, "-c", OUTSIDE_READER, daemon.db, str(LOAD_SECONDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcomes = []
    callers = [threading.Thread(target=lambda uid=uid: outcomes.append(as_uid(uid, lambda: hammer(daemon.socket, LOAD_SECONDS))))
               for uid in (SVC1, SVC1, SVC2, SVC2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    out, err = reader.communicate(timeout=LOAD_SECONDS + 60)
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert len(outcomes) == 4 and all(got[0] == "ok" for got in outcomes), outcomes
    assert all(got[1]["error_count"] == 0 for got in outcomes), [got[1]["errors"] for got in outcomes]
    assert sum(got[1]["calls"] for got in outcomes) > 100, outcomes  # the load was real
    assert seen["error_count"] == 0 and seen["reads"] > 100, seen
    assert daemon.integrity() == "ok"
    assert daemon.alive(), daemon.logs()


# -- what a caller without a grant, or with a narrow one, cannot do --------------------------

# uids nobody granted, as many as `unshare --user --map-auto` gives a user with a subuid range.
SUBUIDS = range(200000, 200040)


def test_callers_without_a_grant_cannot_take_the_workers_of_those_with_one(workdir):
    """40 ungranted uids each hold silent connections: they share a small pool, and a
    granted service and root are still served at once."""
    daemon = Daemon(workdir, read_timeout=5.0)
    flooders = [start_as_uid(uid, lambda: flood(daemon.socket, seconds=12, width=2)) for uid in SUBUIDS]
    try:
        wait_for_log(daemon, "refused reason=busy uid=2000")  # they hold every worker they may
        got = as_uid(SVC2, lambda: client(daemon, busy_retry=0).allocate(1))
        assert got[0] == "ok" and got[1]["owner"] == "svc2", got
        assert client(daemon, busy_retry=0).allocate(1, owner="rootjob")["owner"] == "rootjob"
        assert "callers without a grant already have 4 requests in progress" in daemon.logs()
    finally:
        for pid in flooders:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        daemon.stop()


def test_a_grant_without_caps_cannot_take_the_whole_block(daemon):
    """A label grant without max_tcp_ports may hold the default (16), however it asks."""
    assert len(as_uid(SVC1, lambda: client(daemon).allocate(10))[1]["ports"]) == 10
    assert len(as_uid(SVC1, lambda: client(daemon).allocate(6, keep_existing=True))[1]["ports"]) == 16
    before = db_digest(daemon)
    for call in (lambda: client(daemon).allocate(1, keep_existing=True), lambda: client(daemon).allocate(17),
                 lambda: client(daemon).allocate(17, "udp")):
        refused = as_uid(SVC1, call)
        assert refused[:2] == ("error", "max_ports_exceeded") and "more than the 16 allowed" in refused[2], refused
    assert db_digest(daemon) == before
    # an admin without caps, and root, are not held to it
    assert len(as_uid(ADMIN, lambda: client(daemon).allocate(100, owner="big"))[1]["ports"]) == 100
    assert len(client(daemon).allocate(100, owner="bigger")["ports"]) == 100


def test_refusals_of_one_uid_cannot_flood_the_audit_trail(daemon):
    def hammer_forbidden():
        for unused_attempt in range(150):
            try:
                client(daemon).allocate(1)
            except AgentError:
                pass

    assert as_uid(NOBODY, hammer_forbidden)[0] == "ok"
    assert as_uid(SVC1, lambda: client(daemon).allocate(1))[0] == "ok"
    lines = audit_lines(daemon)
    nobody = [line for line in lines if " uid=%d " % NOBODY in line]
    assert 1 <= len(nobody) <= 5, nobody  # REFUSALS_PER_WINDOW
    assert [line for line in lines if line.startswith("allowed op=allocate uid=%d " % SVC1)]


@pytest.fixture
def guarded_daemon(workdir):
    running = Daemon(workdir, host_settings={"reserved": [25500], "skip_listening": True})
    yield running
    running.stop()


def test_a_grantee_cannot_take_a_reserved_port_unless_its_grant_allows(guarded_daemon):
    daemon = guarded_daemon
    refused = as_uid(SVC1, lambda: client(daemon).allocate(1, port=25500))
    assert refused[:2] == ("error", "failed") and "reserved on this host" in refused[2], refused
    assert as_uid(TRUSTED, lambda: client(daemon).allocate(1, port=25500))[1]["ports"] == [25500]
    assert as_uid(ADMIN, lambda: client(daemon).allocate(1, port=25500, owner="ops"))[0] == "error"  # held by trusted now
    assert as_uid(ADMIN, lambda: client(daemon).deallocate(owner="trusted"))[0] == "ok"
    assert as_uid(ADMIN, lambda: client(daemon).allocate(1, port=25500, owner="ops"))[1]["ports"] == [25500]


def test_shared_does_not_get_a_grantee_past_another_users_listener(guarded_daemon):
    daemon = guarded_daemon
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 25600))
    listener.listen(1)
    try:
        refused = as_uid(SVC1, lambda: client(daemon).allocate(1, port=25600, shared=True))
        assert refused[:2] == ("error", "failed") and "holds no allocation" in refused[2], refused
        assert daemon.rows() == []
        # the grant that says so, an admin, and a port a shared holder holds: allowed
        assert as_uid(TRUSTED, lambda: client(daemon).allocate(1, port=25600, shared=True))[1]["ports"] == [25600]
        assert as_uid(SVC1, lambda: client(daemon).allocate(1, port=25600, shared=True))[1]["ports"] == [25600]
        assert as_uid(ADMIN, lambda: client(daemon).allocate(1, port=25600, shared=True, owner="ops"))[0] == "ok"
    finally:
        listener.close()
