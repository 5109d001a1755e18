# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The environment variables a service reads its ports from (NethServer 8's rule)."""

from __future__ import annotations

from typing import Dict, Sequence

from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange

# More than this many ports and *_PORTS would make an unwieldy variable; the
# service reads *_PORTS_RANGE instead.
MAX_LISTED_PORTS = 8


def port_environment(proto: str, ranges: Sequence[PortRange]) -> Dict[str, str]:
    """``TCP_PORT`` / ``TCP_PORTS_RANGE`` / ``TCP_PORTS`` (or ``UDP_*``) for ``ranges``.

    ``ranges`` are the owner's ranges oldest first. The variables describe the
    oldest range: with keep_existing an owner may hold several, and the first
    one is the one its service was configured with.
    """
    if not ranges:
        return {}
    prefix = proto.upper()
    oldest = ranges[0]
    env = {"%s_PORT" % prefix: str(oldest.first)}
    if oldest.size > 1:
        env["%s_PORTS_RANGE" % prefix] = str(oldest)
        if oldest.size <= MAX_LISTED_PORTS:
            env["%s_PORTS" % prefix] = ",".join(str(p) for p in oldest.ports())
    return env
