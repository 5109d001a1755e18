# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's allocation settings for the agent and the CLI, from one file.

``/etc/berth/agent.json`` (written by the ``berth.ports.ports_agent`` role; missing
means the collection's defaults)::

    {"db_path": "/var/lib/berth/ports.db", "range": "25000-25999",
     "reserved": [25100, "25200-25210"], "skip_listening": true}

The daemon and root's direct CLI calls read the same file, so a port handed
out through the socket and one taken directly follow the same policy.
Callers never choose the range: it is the host's, not theirs.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Optional

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import DEFAULT_DB_PATH
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, build_settings

_KEYS = ("db_path", "range", "reserved", "skip_listening")
_MAX_CONFIG_BYTES = 1024 * 1024


class AgentConfig(NamedTuple):
    db_path: str
    settings: Settings


def parse_config(data: Any, where: str = "agent config") -> AgentConfig:
    if not isinstance(data, dict):
        raise PortsError("%s is not a JSON object" % where)
    unknown = sorted(str(k) for k in set(data) - set(_KEYS))
    if unknown:
        raise PortsError("%s has unknown keys: %s" % (where, ", ".join(unknown)))
    db_path = data.get("db_path", DEFAULT_DB_PATH)
    if not isinstance(db_path, str) or not db_path.startswith("/"):
        raise PortsError("%s: db_path %r is not an absolute path" % (where, db_path))
    reserved = data.get("reserved", [])
    if not isinstance(reserved, list):
        raise PortsError("%s: reserved is not a list" % where)
    try:
        settings = build_settings(data.get("range"), reserved, data.get("skip_listening", True))
    except PortsError as exc:
        raise PortsError("%s: %s" % (where, exc))
    return AgentConfig(db_path, settings)


def load_config(path: Optional[str]) -> AgentConfig:
    """The settings in ``path``; the defaults when it is None or does not exist."""
    if path is None:
        return parse_config({})
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return parse_config({})
    except OSError as exc:
        raise PortsError("agent config %s: cannot read it: %s" % (path, exc.strerror))
    if len(raw) > _MAX_CONFIG_BYTES:
        raise PortsError("agent config %s is larger than %d bytes" % (path, _MAX_CONFIG_BYTES))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PortsError("agent config %s is not JSON: %s" % (path, str(exc)[:80]))
    return parse_config(data, "agent config %s" % path)
