# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the agent does with one checked request from one identified caller.

The daemon calls this for every socket request; root's CLI calls it directly
with the root identity. Either way the work is the core's ``allocate`` /
``deallocate`` on the host's database (one ``BEGIN IMMEDIATE`` transaction
each), so Ansible runs, the daemon and root scripts serialise on one file.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible_collections.berth.ports.plugins.module_utils.agent.config import AgentConfig
from ansible_collections.berth.ports.plugins.module_utils.agent.grants import DEFAULT_MAX_PORTS, ROLE_ADMIN, Identity, authorize
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import (
    CODE_FAILED,
    CODE_MAX_PORTS_EXCEEDED,
    AgentError,
    request_owner,
    with_defaults,
)
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import ORIGIN_AGENT, owner_ranges
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate, deallocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortLimitExceeded
from ansible_collections.berth.ports.plugins.module_utils.port_environment import port_environment
from ansible_collections.berth.ports.plugins.module_utils.reporting import allocation_records, freed_records, selected_protos
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, build_allocation_request, validate_proto
from ansible_collections.berth.ports.plugins.module_utils.task_failure import TASK_ERRORS, failure_message


class AgentService:
    """Authorize, then run one request against the configured database."""

    def __init__(self, config: AgentConfig, default_max_ports: Optional[int] = DEFAULT_MAX_PORTS) -> None:
        self.config = config
        # The cap on a label grant that names none for the proto (None: uncapped).
        self.default_max_ports = default_max_ports
        # One store for the daemon's lifetime: its connection and descriptor
        # stay open between requests, and none is let go of per request.
        self.store = AllocationStore(config.db_path)

    def handle(self, request: Dict[str, Any], identity: Identity) -> Dict[str, Any]:
        # Worker threads may call this at once: the store itself makes the
        # threads of one process take turns (SQLite's locks are per process).
        request = with_defaults(request)
        op = request["op"]
        try:
            if op == "whoami":
                return self._whoami(identity)
            if op == "allocate":
                return self._allocate(request, identity)
            if op == "deallocate":
                return self._deallocate(request, identity)
            return self._list(request, identity)
        except AgentError:
            raise
        except PortLimitExceeded as exc:
            raise AgentError(str(exc), CODE_MAX_PORTS_EXCEEDED)
        except TASK_ERRORS as exc:
            raise AgentError(failure_message(exc, self.config.db_path), CODE_FAILED)

    @staticmethod
    def _whoami(identity: Identity) -> Dict[str, Any]:
        grant = identity.grant
        return {
            "uid": identity.uid,
            "gid": identity.gid,
            "pid": identity.pid,
            "user": identity.user,
            "role": grant.role if grant else None,
            "owner": grant.owner if grant else None,
            "label": grant.label if grant else None,
        }

    def _allocate(self, request: Dict[str, Any], identity: Identity) -> Dict[str, Any]:
        owner = authorize(identity, request_owner(request), "allocate")
        settings = self._settings_for(identity)
        wanted = build_allocation_request(
            owner,
            request["proto"],
            request["count"],
            request["port"],
            request["shared"],
            request["keep_existing"],
            settings,
        )
        # The grant's demand caps what its owner may hold (root's grant sets none).
        cap = identity.grant.max_ports(wanted.proto, self.default_max_ports) if identity.grant is not None else None
        outcome = allocate(self.store, wanted, settings, origin=ORIGIN_AGENT, max_ports=cap)
        result = {"changed": outcome.changed}  # type: Dict[str, Any]
        result.update(outcome.after.as_dict())
        return result

    def _settings_for(self, identity: Identity) -> Settings:
        """The host's policy, narrowed for a label grantee: reserved ports are not its to
        take, and shared does not get it past another user's listener, unless its grant
        says so. Admins and root get the host's policy as a playbook does."""
        grant = identity.grant
        if grant is None or grant.role == ROLE_ADMIN:
            return self.config.settings
        return self.config.settings._replace(
            static_reserved=grant.allow_reserved, shared_skips_listening=grant.allow_shared_listeners
        )

    def _deallocate(self, request: Dict[str, Any], identity: Identity) -> Dict[str, Any]:
        owner = authorize(identity, request_owner(request), "deallocate")
        outcome = deallocate(self.store, owner, proto=request["proto"])
        return {"changed": outcome.changed, "owner": owner, "deallocated": freed_records(outcome.freed)}

    def _list(self, request: Dict[str, Any], identity: Identity) -> Dict[str, Any]:
        proto = validate_proto(request["proto"], allow_all=True)
        asked = request_owner(request)
        owner = None  # type: Optional[str]
        if not (identity.grant is not None and identity.grant.role == ROLE_ADMIN and asked is None):
            owner = authorize(identity, asked, "list")
        rows = load_rows(self.store)
        result = {"allocations": allocation_records(rows, [owner] if owner else None, proto)}  # type: Dict[str, Any]
        if owner is not None:
            env = {}  # type: Dict[str, str]
            for name in selected_protos(proto):
                env.update(port_environment(name, [row.range for row in owner_ranges(rows, owner, name)]))
            result.update(owner=owner, env=env)
        return result
