# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numbers as they reach the controller-side filters from registered results
and Jinja: ints, or strings of digits where a template rendered them."""

from __future__ import annotations

import re

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT, MIN_PORT

DIGITS_RE = re.compile(r"[0-9]+")


def as_int(value: object, what: str) -> int:
    """An int, or a string of digits; nothing else (not a bool, not a float)."""
    if isinstance(value, bool):
        raise PortsError("%s %r is not an integer" % (what, value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and DIGITS_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise PortsError("%s %r is not an integer" % (what, value))


def as_port(value: object, what: str) -> int:
    """A port number, 1-65535."""
    port = as_int(value, what)
    if not MIN_PORT <= port <= MAX_PORT:
        raise PortsError("%s %d is outside %d-%d" % (what, port, MIN_PORT, MAX_PORT))
    return port
