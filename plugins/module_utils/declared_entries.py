# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entries of a declaration (port_allocations' ``allocations``), parsed and checked.

Pure: no database, no socket, no clock. The port_allocations module parses
its ``allocations`` option here on the host before applying it
(``declared_allocations``); the fleet_ports filter and the fleet registry
parse every host's demand here on the controller, by the same rules, without
pulling in the host's I/O.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import (
    AllocationRequest,
    Settings,
    build_allocation_request,
    validate_owner,
    validate_proto,
)

ENTRY_KEYS = ("owner", "proto", "count", "port", "shared")


class DeclaredEntry(NamedTuple):
    """One owner and proto of a declaration; ``count`` 0 frees what it holds."""

    owner: str
    proto: str
    count: int
    port: Optional[int] = None
    shared: bool = False

    @property
    def key(self) -> Tuple[str, str]:
        return (self.owner, self.proto)

    @property
    def dynamic(self) -> bool:
        return self.count > 0 and self.port is None

    @property
    def static_range(self) -> Optional[PortRange]:
        return self.request().static_range if self.count > 0 else None

    def request(self) -> AllocationRequest:
        return AllocationRequest(self.owner, self.proto, self.count, self.port, self.shared)

    def as_dict(self) -> Dict[str, object]:
        """As port_allocations takes it, every key present."""
        return {"owner": self.owner, "proto": self.proto, "count": self.count, "port": self.port, "shared": self.shared}


def _entry(raw: object, index: int, settings: Settings) -> DeclaredEntry:
    if not isinstance(raw, Mapping):
        raise PortsError("allocations[%d] is not a dictionary: %r" % (index, raw))
    unknown = sorted(str(key) for key in raw if key not in ENTRY_KEYS)
    if unknown:
        raise PortsError("allocations[%d]: unknown key(s) %s; allowed: %s" % (index, ", ".join(unknown), ", ".join(ENTRY_KEYS)))
    if raw.get("owner") is None:
        raise PortsError("allocations[%d] has no owner" % index)
    owner = validate_owner(raw["owner"])
    try:
        proto = validate_proto("tcp" if raw.get("proto") is None else raw["proto"])
    except PortsError as exc:
        raise PortsError("allocations[%d] (owner %s): %s" % (index, owner, exc)) from exc
    count = 1 if raw.get("count") is None else raw["count"]
    shared = False if raw.get("shared") is None else raw["shared"]
    port = raw.get("port")
    if isinstance(count, int) and not isinstance(count, bool) and count < 0:
        raise PortsError("allocations[%d]: count %d for owner %s/%s must be 0 (free) or more" % (index, count, owner, proto))
    if count == 0 and not isinstance(count, bool):
        # Freeing: nothing else of the entry means anything, so refuse what
        # would suggest otherwise rather than ignore it.
        if port is not None or shared:
            raise PortsError("allocations[%d] (owner %s/%s): count 0 frees the ports; drop port and shared" % (index, owner, proto))
        return DeclaredEntry(owner, proto, 0)
    request = build_allocation_request(owner, proto, count, port, shared, False, settings)
    return DeclaredEntry(request.owner, request.proto, request.count, request.port, request.shared)


def build_declaration(entries: object, settings: Settings) -> List[DeclaredEntry]:
    """Validate every entry before any file is touched; one entry per owner and proto."""
    if not isinstance(entries, (list, tuple)):
        raise PortsError("allocations must be a list of dictionaries, not %r" % (entries,))
    declared = []  # type: List[DeclaredEntry]
    seen = set()  # type: Set[Tuple[str, str]]
    for index, raw in enumerate(entries):
        entry = _entry(raw, index, settings)
        if entry.key in seen:
            raise PortsError(
                "allocations[%d]: owner %s/%s is declared twice; give each owner one entry per proto" % ((index,) + entry.key)
            )
        seen.add(entry.key)
        declared.append(entry)
    return declared
