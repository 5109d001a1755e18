#!/usr/bin/python
# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_allocations
short_description: Declare every port allocation of a host at once, in one transaction
version_added: 1.0.0
description:
  - Applies a list of allocations, one per owner and protocol, to the host's berth.ports database in one
    transaction. When any entry cannot be met nothing changes, and the task fails naming that entry's owner,
    protocol, ports and holder.
  - Each entry follows the rules of M(berth.ports.port_allocate) without O(berth.ports.port_allocate#module:keep_existing)
    - idempotent, the first port kept when a range grows or shrinks in place, the same environment variables -
    and O(allocations[].count=0) frees what the owner holds of that protocol, like M(berth.ports.port_deallocate).
  - Entries are worked in three passes, each in the order given - frees, then static requests
    (O(allocations[].port)), then dynamic ones - so a dynamic entry never takes a port a static entry of the
    same list names. The same list on two hosts with the same history gives the same ports.
  - One task for all the services of a host instead of one task per service; the role
    R(berth.ports.service_ports,ansible_collections.berth.ports.service_ports_role) uses it.
author:
  - berth.ports contributors (@berth)
options:
  allocations:
    description:
      - What the host should hold, one entry per owner and protocol; two entries for the same owner and
        protocol are an error.
      - Owners and protocols not listed are left alone, unless O(prune=true).
    type: list
    elements: dict
    required: true
    suboptions:
      owner:
        description:
          - Who holds the ports, for example the name of the systemd unit without its suffix.
          - 1 to 128 characters of letters, digits and C(.), C(_), C(@), C(:), C(-), starting with a letter or digit.
        type: str
        required: true
      proto:
        description: The protocol. TCP and UDP ports are separate name spaces.
        type: str
        choices: [tcp, udp]
        default: tcp
      count:
        description:
          - How many ports, as one contiguous range, at most the size of O(range).
          - V(0) frees every port the owner holds of O(allocations[].proto).
        type: int
        default: 1
      port:
        description:
          - Ask for exactly O(allocations[].port) to O(allocations[].port) + O(allocations[].count) - 1.
          - Must lie inside O(range); may be a O(reserved) port. Fails, naming the holder, when another owner
            holds any of them, unless this entry and every holder use O(allocations[].shared=true).
        type: int
      shared:
        description:
          - Share the static range with other owners that share it too (C(SO_REUSEPORT)); only with
            O(allocations[].port).
        type: bool
        default: false
  prune:
    description:
      - Also free every owner and protocol that is not listed and whose ports this module allocated.
      - Allocations made by M(berth.ports.port_allocate), ad hoc, by the runtime agent, or before the database
        recorded who made them are never pruned.
    type: bool
    default: false
  skip_listening:
    description:
      - Skip ports that a process on the host listens on when allocating dynamically, and refuse a non-shared
        static entry for one. An owner's own ports never count as busy.
    type: bool
    default: true
extends_documentation_fragment:
  - berth.ports.ports
  - berth.ports.ports.action_group
  - berth.ports.ports.range
attributes:
  check_mode:
    description: Computes exactly what would be allocated and freed, and writes nothing; the database is not created.
    support: full
  diff_mode:
    description: Shows the ranges of every owner and protocol the task touches, one C(owner LOW-HIGH/proto) line each.
    support: full
  platform:
    description: Runs on the managed host; listening ports are read from Linux's C(/proc/net).
    platforms: posix
    support: full
seealso:
  - module: berth.ports.port_allocate
  - module: berth.ports.port_deallocate
  - module: berth.ports.port_info
"""

EXAMPLES = r"""
- name: Every port of the storage node, in one transaction
  berth.ports.port_allocations:
    allocations:
      - owner: ceph-rgw
        port: 25080
      - owner: web
        count: 4
      - owner: dns
        proto: udp
  register: node_ports

- name: Hand web its variables
  ansible.builtin.copy:
    dest: /etc/systemd/system/web.service.d/50-berth-ports.conf
    content: |
      [Service]
      {% for name, value in node_ports.env.web | dictsort %}
      Environment={{ name }}={{ value }}
      {% endfor %}
    mode: "0644"

- name: Two SO_REUSEPORT workers on one port, and free what old-api held
  berth.ports.port_allocations:
    allocations:
      - {owner: haproxy-a, port: 25443, shared: true}
      - {owner: haproxy-b, port: 25443, shared: true}
      - {owner: old-api, count: 0}

- name: The list is the whole truth - free what an earlier run of this module gave owners no longer listed
  berth.ports.port_allocations:
    allocations:
      - owner: web
        count: 4
      - owner: api
    prune: true
"""

RETURN = r"""
allocations:
  description:
    - What each entry with a O(allocations[].count) above 0 holds after the task (in check mode, would hold),
      in the order given.
  returned: success
  type: list
  elements: dict
  contains:
    owner:
      description: The owner.
      type: str
      sample: web
    proto:
      description: The protocol.
      type: str
      sample: tcp
    port:
      description: The first port of the owner's oldest range.
      type: int
      sample: 25031
    ports:
      description: Every port the owner holds for the protocol.
      type: list
      elements: int
      sample: [25031, 25032, 25033, 25034]
    ranges:
      description: The owner's ranges for the protocol as C(LOW-HIGH) strings, oldest first.
      type: list
      elements: str
      sample: ["25031-25034"]
    env:
      description: C(TCP_PORT), C(TCP_PORTS_RANGE), C(TCP_PORTS) (or C(UDP_*)) by the rule of M(berth.ports.port_allocate).
      type: dict
      sample: {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25034", "TCP_PORTS": "25031,25032,25033,25034"}
env:
  description:
    - Owner to the variables of all its protocols together, what one systemd drop-in needs.
    - An owner whose entries all have O(allocations[].count=0) maps to an empty dictionary.
  returned: success
  type: dict
  sample:
    web: {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25034", "TCP_PORTS": "25031,25032,25033,25034"}
    dns: {"UDP_PORT": "25031"}
    old-api: {}
freed:
  description: The ranges freed by entries with O(allocations[].count=0) and by O(prune).
  returned: success
  type: list
  elements: dict
  contains:
    owner:
      description: Who held the range.
      type: str
    proto:
      description: Its protocol.
      type: str
    range:
      description: The range, C(LOW-HIGH).
      type: str
  sample: [{"owner": "old-api", "proto": "tcp", "range": "25040-25041"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.declared_allocations import declare
from ansible_collections.berth.ports.plugins.module_utils.declared_entries import build_declaration
from ansible_collections.berth.ports.plugins.module_utils.module_options import allocation_options, policy_options
from ansible_collections.berth.ports.plugins.module_utils.reporting import rows_diff_ranges, task_diff
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings
from ansible_collections.berth.ports.plugins.module_utils.task_failure import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            allocations=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(owner=dict(type="str", required=True), **allocation_options()),
            ),
            prune=dict(type="bool", default=False),
            **policy_options()
        ),
        supports_check_mode=True,
    )
    params = module.params
    db_path = params["db_path"]

    def work():
        settings = build_settings(params["range"], params["reserved"], params["skip_listening"])
        entries = build_declaration(params["allocations"], settings)
        outcome = declare(AllocationStore(db_path), entries, settings, prune=params["prune"], check_mode=module.check_mode)
        result = dict(
            changed=outcome.changed,
            allocations=[held.as_dict() for held, entry in zip(outcome.after, entries) if entry.count > 0],
            env=outcome.env,
            freed=[{"owner": row.owner, "proto": row.proto, "range": str(row.range)} for row in outcome.freed],
        )
        if module._diff:
            result["diff"] = task_diff(
                db_path, rows_diff_ranges(outcome.before_rows), rows_diff_ranges(outcome.after_rows), with_owner=True
            )
        return result

    run_module(module, work, db_path)


if __name__ == "__main__":
    main()
