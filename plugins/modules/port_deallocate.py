#!/usr/bin/python
# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_deallocate
short_description: Free the ports an owner holds in the host's berth.ports database
version_added: 1.0.0
description:
  - Frees the ranges that O(owner) holds for O(proto), all of them or, with O(ports), only the ranges
    that contain the given ports.
  - Idempotent. Freeing what is not held changes nothing, and never creates the database.
  - Ranges are freed whole; a range that contains one of O(ports) is freed entirely.
author:
  - berth.ports contributors (@berth)
options:
  owner:
    description:
      - Whose ports to free; the same rules as O(berth.ports.port_allocate#module:owner).
      - When omitted, the value of the E(MODULE_ID) environment variable on the managed host is used;
        the task fails when both are unset.
    type: str
  proto:
    description:
      - The protocol whose ranges to free; V(all) frees both TCP and UDP ranges.
    type: str
    choices: [tcp, udp, all]
    default: tcp
  ports:
    description:
      - Free only the owner's ranges that contain one of these ports (port numbers or C(LOW-HIGH) strings).
      - When omitted, every range of the owner for O(proto) is freed. An empty list frees nothing.
    type: list
    elements: raw
extends_documentation_fragment:
  - berth.ports.ports
  - berth.ports.ports.action_group
attributes:
  check_mode:
    description: Reports what would be freed and writes nothing.
    support: full
  diff_mode:
    description: Shows the owner's ranges for O(proto) before and after, one C(LOW-HIGH/proto) line each.
    support: full
  platform:
    description: Runs on the managed host.
    platforms: posix
    support: full
seealso:
  - module: berth.ports.port_allocate
  - module: berth.ports.port_info
"""

EXAMPLES = r"""
- name: Free the TCP ports of a removed service
  berth.ports.port_deallocate:
    owner: web

- name: Free everything the service holds, TCP and UDP
  berth.ports.port_deallocate:
    owner: web
    proto: all
  register: freed

- name: Show what was freed
  ansible.builtin.debug:
    msg: "{{ freed.deallocated | map(attribute='range') | list }}"

- name: Free only the UDP range that holds port 25100
  berth.ports.port_deallocate:
    owner: web
    proto: udp
    ports:
      - 25100

- name: Owner from the MODULE_ID environment variable, custom database
  berth.ports.port_deallocate:
    db_path: /srv/berth/ports.db
  environment:
    MODULE_ID: traefik1
"""

RETURN = r"""
owner:
  description: The owner whose ports were freed (from O(owner) or E(MODULE_ID)).
  returned: success
  type: str
  sample: web
deallocated:
  description:
    - The freed ranges, by protocol then port; empty when nothing was held.
    - In check mode, the ranges that would be freed.
  returned: success
  type: list
  elements: dict
  sample:
    - proto: tcp
      range: "25031-25034"
    - proto: udp
      range: "25100-25100"
  contains:
    proto:
      description: The protocol of the range, V(tcp) or V(udp).
      type: str
      returned: always
      sample: tcp
    range:
      description: The freed range as C(LOW-HIGH); a single port is C(N-N).
      type: str
      returned: always
      sample: "25031-25034"
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.allocator import deallocate
from ansible_collections.berth.ports.plugins.module_utils.module_options import database_options
from ansible_collections.berth.ports.plugins.module_utils.reporting import freed_records, rows_diff_ranges, task_diff
from ansible_collections.berth.ports.plugins.module_utils.request import resolve_owner
from ansible_collections.berth.ports.plugins.module_utils.task_failure import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            owner=dict(type="str"),
            proto=dict(type="str", default="tcp", choices=["tcp", "udp", "all"]),
            ports=dict(type="list", elements="raw"),
            **database_options()
        ),
        supports_check_mode=True,
    )
    params = module.params
    db_path = params["db_path"]

    def work():
        owner = resolve_owner(params["owner"], os.environ)
        outcome = deallocate(
            AllocationStore(db_path),
            owner,
            proto=params["proto"],
            ports=params["ports"],
            check_mode=module.check_mode,
        )
        result = dict(changed=outcome.changed, owner=owner, deallocated=freed_records(outcome.freed))
        if module._diff:
            result["diff"] = task_diff(
                "%s/%s (%s)" % (owner, params["proto"], db_path), rows_diff_ranges(outcome.before), rows_diff_ranges(outcome.after)
            )
        return result

    run_module(module, work, db_path)


if __name__ == "__main__":
    main()
