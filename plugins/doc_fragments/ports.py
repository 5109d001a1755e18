# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option documentation shared by the berth.ports modules."""

from __future__ import annotations


class ModuleDocFragment:
    # Every module: where the allocation database lives.
    DOCUMENTATION = r"""
options:
  db_path:
    description:
      - Path of the SQLite allocation database on the managed host.
      - On the first write its directory is created with mode C(0700) and the file with mode C(0600).
        Read-only calls never create it; a missing database reads as holding no allocations.
      - A file that is not a valid berth.ports database (corrupt, not SQLite, another application's
        database, or a newer schema) is never overwritten; the task fails and says why.
    type: path
    default: /var/lib/berth/ports.db
notes:
  - Every change is one SQLite C(BEGIN IMMEDIATE) transaction with a busy timeout, so concurrent
    runs against one host serialise and never hand out the same port twice. A failed task leaves
    the database exactly as it was.
"""

    # Modules that need the host's policy: the block ports come from and what to keep out of it.
    RANGE = r"""
options:
  range:
    description:
      - The block ports are handed out from, as C(LOW-HIGH), both included.
      - The low part of the block is the static band, one 32nd of its size, at least 16 and at most
        128 ports, and none when the block has fewer than 16 ports. Dynamic allocations take the
        upper band first and fall back to the static band only when the upper band is full.
      - TCP and UDP are separate name spaces, each with its own copy of this block.
    type: str
    default: "25000-25999"
  reserved:
    description:
      - Ports that dynamic allocation never hands out, as port numbers or C(LOW-HIGH) strings.
      - A static request (O(berth.ports.port_allocate#module:port)) may still take them.
    type: list
    elements: raw
    default: []
"""

    # Every module: member of the berth.ports.all action group (meta/runtime.yml).
    ACTION_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/berth.ports.all) in C(module_defaults) to set options such as O(db_path) once.
    membership:
      - berth.ports.all
    support: full
"""
