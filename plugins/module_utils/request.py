# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a caller asks for, validated once, before any file is touched.

Everything here raises PortsError with a one-line message on bad input, so
the modules, the lookup and scripts all refuse the same things the same way.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Optional, Tuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import (
    DEFAULT_RANGE,
    PortRange,
    parse_port_list,
    parse_range,
)

PROTOCOLS = ("tcp", "udp")

# Letters, digits and ._@:- ; no leading punctuation so an owner can never be
# mistaken for an option or a relative path. ASCII only: owners end up in
# unit names and environment files.
_OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")

OWNER_ENV_VAR = "MODULE_ID"


class Settings(NamedTuple):
    """The host-side policy a call runs under: bounds, reserved ports, listener check."""

    bounds: PortRange
    reserved: Tuple[PortRange, ...] = ()
    skip_listening: bool = True
    # Callers the host trusts (playbooks, root, admin grants) may take reserved
    # ports statically and let shared skip the listener check; the agent turns
    # both off for grantees whose grant does not allow them.
    static_reserved: bool = True
    shared_skips_listening: bool = True


class AllocationRequest(NamedTuple):
    owner: str
    proto: str
    count: int = 1
    port: Optional[int] = None
    shared: bool = False
    keep_existing: bool = False

    @property
    def static_range(self) -> Optional[PortRange]:
        if self.port is None:
            return None
        return PortRange(self.port, self.port + self.count - 1)


def validate_owner(owner: object) -> str:
    if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
        raise PortsError(
            "owner %r is not 1-128 characters of letters, digits and ._@:- "
            "starting with a letter or digit" % (owner,)
        )
    return owner


def resolve_owner(owner: Optional[str], environ: Mapping[str, str]) -> str:
    """The owner asked for, else the MODULE_ID of the environment (NethServer's rule)."""
    if owner is None or owner == "":
        owner = environ.get(OWNER_ENV_VAR) or None
        if owner is None:
            raise PortsError("owner is required when the %s environment variable is unset" % OWNER_ENV_VAR)
    return validate_owner(owner)


def validate_proto(proto: object, allow_all: bool = False) -> str:
    choices = PROTOCOLS + (("all",) if allow_all else ())
    if proto not in choices:
        raise PortsError("proto %r is not one of %s" % (proto, ", ".join(choices)))
    return str(proto)


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PortsError("%s %r is not an integer" % (name, value))
    return value


def _flag(value: object, name: str) -> bool:
    # bool("no") is True: refuse anything that is not a real boolean rather
    # than guess (the modules' argument_spec has already converted yes/no).
    if not isinstance(value, bool):
        raise PortsError("%s %r is not a boolean" % (name, value))
    return value


def build_settings(
    port_range: Optional[str] = None,
    reserved: Optional[Iterable[object]] = None,
    skip_listening: bool = True,
) -> Settings:
    bounds = parse_range(DEFAULT_RANGE if port_range is None else port_range)
    return Settings(
        bounds=bounds,
        reserved=tuple(parse_port_list(reserved or (), what="reserved")),
        skip_listening=_flag(skip_listening, "skip_listening"),
    )


def build_allocation_request(
    owner: str,
    proto: str = "tcp",
    count: int = 1,
    port: Optional[int] = None,
    shared: bool = False,
    keep_existing: bool = False,
    settings: Optional[Settings] = None,
) -> AllocationRequest:
    """Validate an allocation against ``settings`` (count and port inside the bounds)."""
    owner = validate_owner(owner)
    proto = validate_proto(proto)
    count = _int(count, "count")
    shared = _flag(shared, "shared")
    keep_existing = _flag(keep_existing, "keep_existing")
    bounds = (settings or build_settings()).bounds
    if count < 1:
        raise PortsError("count %d for owner %s/%s must be at least 1" % (count, owner, proto))
    if count > bounds.size:
        raise PortsError(
            "count %d for owner %s/%s is larger than the range %s (%d ports)" % (count, owner, proto, bounds, bounds.size)
        )
    if port is not None:
        port = _int(port, "port")
        wanted = PortRange(port, port + count - 1)
        if not bounds.covers(wanted):
            raise PortsError("ports %s for owner %s/%s are outside the range %s" % (wanted, owner, proto, bounds))
    elif shared:
        raise PortsError("shared for owner %s/%s needs port: only static ports can be shared" % (owner, proto))
    return AllocationRequest(owner, proto, count, port, shared, keep_existing)
