# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``berth-ports``: take and give back ports at runtime, or run the agent daemon.

    berth-ports allocate 4 tcp                     # TCP_PORT=... lines, as port_allocate's env
    berth-ports allocate 4 udp --owner my_module --keep-existing --json
    berth-ports deallocate tcp                     # one LOW-HIGH/proto line per freed range
    berth-ports list [--owner X] [--proto tcp]
    berth-ports whoami
    berth-ports serve [--socket PATH]              # the daemon (systemd runs it)
    berth-ports check-grants FILE                  # validate a grants file (the role's validate step)

Transport: a caller that is not root always goes through the agent's socket
(the database is root's, 0600). Root uses the database directly by default,
through the same AgentService the daemon runs; ``--agent`` makes root use the
socket too (``--direct`` asks for the database from anyone).

Exit status: 0 done, 1 the allocator refused (exhaustion, conflict, bad
database), 2 bad usage or request, 3 refused by the grants (no grant, another
owner, or past the grant's max_tcp_ports / max_udp_ports), 4 the agent is
unreachable, busy, timed out or failed internally.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, TextIO

from ansible_collections.berth.ports.plugins.module_utils.agent.client import CODE_UNREACHABLE, AgentClient, DirectAgent, default_owner
from ansible_collections.berth.ports.plugins.module_utils.agent.config import load_config
from ansible_collections.berth.ports.plugins.module_utils.agent.grants import DEFAULT_MAX_PORTS, GrantsError, GrantsTable, read_grants_file
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import (
    CODE_BAD_REQUEST,
    CODE_FAILED,
    CODE_FORBIDDEN,
    CODE_MAX_PORTS_EXCEEDED,
    DEFAULT_CONFIG_PATH,
    DEFAULT_GRANTS_PATH,
    DEFAULT_SOCKET_PATH,
    READ_TIMEOUT,
    AgentError,
)
from ansible_collections.berth.ports.plugins.module_utils.agent.server import (
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_CLIENTS_PER_UID,
    DEFAULT_MAX_CLIENTS_UNGRANTED,
    run_daemon,
)
from ansible_collections.berth.ports.plugins.module_utils.agent.service import AgentService
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FORBIDDEN, EXIT_AGENT = 0, 1, 2, 3, 4
_EXIT_BY_CODE = {CODE_FAILED: EXIT_FAILED, CODE_BAD_REQUEST: EXIT_USAGE, CODE_FORBIDDEN: EXIT_FORBIDDEN,
                 CODE_MAX_PORTS_EXCEEDED: EXIT_FORBIDDEN, CODE_UNREACHABLE: EXIT_AGENT}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, "%s: error: %s\n" % (self.prog, message))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the agent's answer as JSON")
    common.add_argument("--socket", default=os.environ.get("BERTH_PORTS_SOCKET", DEFAULT_SOCKET_PATH),
                        help="the agent's socket (default %(default)s)")
    common.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="host settings for direct use (default %(default)s)")
    common.add_argument("--db-path", help="database for direct use (default: the config's)")
    way = common.add_mutually_exclusive_group()
    way.add_argument("--agent", dest="transport", action="store_const", const="agent", help="go through the agent's socket, even as root")
    way.add_argument("--direct", dest="transport", action="store_const", const="direct", help="use the database directly")

    parser = _Parser(prog="berth-ports", description="Take and give back host ports (berth.ports).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    alloc = sub.add_parser("allocate", parents=[common], help="allocate COUNT contiguous ports")
    alloc.add_argument("count", type=int)
    alloc.add_argument("proto", nargs="?", default="tcp", choices=["tcp", "udp"])
    alloc.add_argument("--owner", help="owner id (default: $MODULE_ID, else your grant's)")
    alloc.add_argument("--keep-existing", action="store_true", help="add a range instead of replacing the owner's")
    alloc.add_argument("--port", type=int, help="static request: the first port wanted")
    alloc.add_argument("--shared", action="store_true", help="with --port: share with holders that share too")

    dealloc = sub.add_parser("deallocate", parents=[common], help="free the owner's ports of PROTO")
    dealloc.add_argument("proto", nargs="?", default="tcp", choices=["tcp", "udp", "all"])
    dealloc.add_argument("--owner", help="owner id (default: $MODULE_ID, else your grant's)")

    lister = sub.add_parser("list", parents=[common], help="the allocations you may see")
    lister.add_argument("--owner", help="owner id (admin: default every owner)")
    lister.add_argument("--proto", default="all", choices=["tcp", "udp", "all"])

    sub.add_parser("whoami", parents=[common], help="your uid, role and owner as the agent sees them")

    serve = sub.add_parser("serve", help="run the agent daemon (root; systemd socket activation or --socket)")
    serve.add_argument("--socket", help="bind this path when not socket-activated")
    serve.add_argument("--grants", default=DEFAULT_GRANTS_PATH, help="grants file (default %(default)s)")
    serve.add_argument("--config", default=DEFAULT_CONFIG_PATH, help="host settings (default %(default)s)")
    serve.add_argument("--db-path", help="database (default: the config's)")
    serve.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, help="requests served at once (default %(default)s)")
    serve.add_argument("--max-clients-per-uid", type=int, default=DEFAULT_MAX_CLIENTS_PER_UID,
                       help="requests of one caller uid served at once (default %(default)s)")
    serve.add_argument("--max-clients-ungranted", type=int, default=DEFAULT_MAX_CLIENTS_UNGRANTED,
                       help="requests of callers with no grant served at once, all such uids together (default %(default)s)")
    serve.add_argument("--default-max-ports", type=int, default=DEFAULT_MAX_PORTS,
                       help="ports of each proto a label grant without max_tcp_ports/max_udp_ports may hold (default %(default)s)")
    serve.add_argument("--read-timeout", type=float, default=READ_TIMEOUT)
    serve.add_argument("--insecure-grants", action="store_true", help=argparse.SUPPRESS)

    check = sub.add_parser("check-grants", help="validate a grants file and print its grants")
    check.add_argument("file")
    return parser


def _agent(args: argparse.Namespace) -> Any:
    transport = args.transport or ("direct" if os.geteuid() == 0 else "agent")
    if transport == "direct":
        return DirectAgent(args.config, args.db_path)
    return AgentClient(args.socket)


def _print_env(result: Dict[str, Any], out: TextIO) -> None:
    for key, value in result.get("env", {}).items():
        out.write("%s=%s\n" % (key, value))


def _print_human(command: str, result: Dict[str, Any], out: TextIO) -> None:
    if command == "allocate":
        _print_env(result, out)
    elif command == "deallocate":
        for freed in result.get("deallocated", []):
            out.write("%s/%s\n" % (freed["range"], freed["proto"]))
    elif command == "list":
        for row in result.get("allocations", []):
            shared = " shared" if row["shared"] else ""
            out.write("%s %s %d-%d %s%s\n" % (row["owner"], row["proto"], row["first"], row["last"], row["kind"], shared))
        _print_env(result, out)
    else:
        fields = (result["uid"], result["user"] or "-", result["role"] or "none", result["owner"] or "-")
        out.write("uid %s (%s) role %s owner %s\n" % fields)


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.db_path:
        config = config._replace(db_path=args.db_path)
    if min(args.max_clients, args.max_clients_per_uid, args.max_clients_ungranted) < 1 or args.read_timeout <= 0:
        raise AgentError("--max-clients, --max-clients-per-uid and --max-clients-ungranted must be at least 1 "
                         "and --read-timeout positive", CODE_BAD_REQUEST)
    if not 0 <= args.default_max_ports <= MAX_PORT:
        raise AgentError("--default-max-ports must be a number of ports (0-%d)" % MAX_PORT, CODE_BAD_REQUEST)
    grants = GrantsTable(args.grants, require_root_owned=not args.insecure_grants)
    return run_daemon(AgentService(config, default_max_ports=args.default_max_ports), grants, args.socket, args.max_clients,
                      args.read_timeout, max_clients_per_uid=args.max_clients_per_uid,
                      max_clients_ungranted=args.max_clients_ungranted)


def _check_grants(args: argparse.Namespace, out: TextIO) -> int:
    # The role validates a temporary file it owns; ownership is checked at run time.
    grants = read_grants_file(args.file, require_root_owned=False)
    for grant in grants:
        out.write("%s\n" % grant.describe())
    return EXIT_OK


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check-grants":
            return _check_grants(args, out)
        agent = _agent(args)
        if args.command == "allocate":
            result = agent.allocate(args.count, args.proto, default_owner(args.owner), args.keep_existing, args.port, args.shared)
        elif args.command == "deallocate":
            result = agent.deallocate(args.proto, default_owner(args.owner))
        elif args.command == "list":
            result = agent.list(default_owner(args.owner), args.proto)
        else:
            result = agent.whoami()
    except AgentError as exc:
        err.write("berth-ports: %s\n" % exc)
        if getattr(args, "json", False):
            out.write(json.dumps({"ok": False, "code": exc.code, "error": str(exc)}) + "\n")
        return _EXIT_BY_CODE.get(exc.code, EXIT_AGENT)
    except GrantsError as exc:
        err.write("berth-ports: %s\n" % exc)
        return EXIT_USAGE
    except PortsError as exc:
        err.write("berth-ports: %s\n" % exc)
        if getattr(args, "json", False):
            out.write(json.dumps({"ok": False, "code": CODE_FAILED, "error": str(exc)}) + "\n")
        return EXIT_FAILED
    if args.json:
        out.write(json.dumps(result) + "\n")
    else:
        _print_human(args.command, result, out)
    return EXIT_OK
