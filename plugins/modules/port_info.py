#!/usr/bin/python
# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_info
short_description: Show the allocations, free ports and port conflicts of a host
version_added: 1.0.0
description:
  - Reads the host's berth.ports database and reports every allocation, how many ports of O(range) are
    still free per protocol, and conflicts between the allocations and the sockets that processes on the
    host listen on.
  - Read-only. Never writes or creates the database; a missing database reports no allocations.
author:
  - berth.ports contributors (@berth)
options:
  owner:
    description:
      - Report only this owner's allocations and conflicts.
      - Unlike M(berth.ports.port_allocate), the E(MODULE_ID) environment variable is not consulted;
        when omitted, every owner is reported.
      - RV(free) and RV(largest_free_run) always count every owner's allocations.
    type: str
  proto:
    description:
      - The protocol to report on; V(all) reports TCP and UDP.
    type: str
    choices: [tcp, udp, all]
    default: all
extends_documentation_fragment:
  - berth.ports.ports
  - berth.ports.ports.action_group
  - berth.ports.ports.range
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: N/A
  platform:
    description: Runs on the managed host; listeners are read from Linux's C(/proc).
    platforms: posix
    support: full
seealso:
  - module: berth.ports.port_allocate
  - plugin: berth.ports.allocations
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Everything the host has handed out
  berth.ports.port_info:
  register: ports_info

- name: Warn before the TCP block runs out
  ansible.builtin.debug:
    msg: "Only {{ ports_info.free.tcp }} TCP ports left on {{ inventory_hostname }}"
  when: ports_info.free.tcp < 50

- name: Fail when a process listens on a port nobody allocated, or on someone else's
  ansible.builtin.assert:
    that: ports_info.conflicts | length == 0
    fail_msg: "{{ ports_info.conflicts }}"

- name: One owner's UDP ports, from a block other than the default
  berth.ports.port_info:
    owner: web
    proto: udp
    range: "40000-40999"
    db_path: /srv/berth/ports.db
"""

RETURN = r"""
allocations:
  description: The allocations, by protocol then port.
  returned: success
  type: list
  elements: dict
  sample:
    - owner: web
      proto: tcp
      first: 25031
      last: 25034
      shared: false
      kind: dynamic
      created: "2026-01-15T09:30:00Z"
      origin: port_allocate
  contains:
    owner:
      description: Who holds the ports.
      type: str
      returned: always
      sample: web
    proto:
      description: V(tcp) or V(udp).
      type: str
      returned: always
      sample: tcp
    first:
      description: The first port of the range.
      type: int
      returned: always
      sample: 25031
    last:
      description: The last port of the range, included.
      type: int
      returned: always
      sample: 25034
    shared:
      description: Whether the range was asked for with O(berth.ports.port_allocate#module:shared=true).
      type: bool
      returned: always
      sample: false
    kind:
      description: V(dynamic) (chosen by the allocator) or V(static) (asked for with a port).
      type: str
      returned: always
      sample: dynamic
    created:
      description: When the range was allocated, UTC, ISO 8601.
      type: str
      returned: always
      sample: "2026-01-15T09:30:00Z"
    origin:
      description:
        - Which call made the range - V(port_allocate), V(port_allocations), V(agent), V(library) (a script
          calling the allocator), or V(unknown) for ranges made before the database recorded it.
        - Only ranges made by M(berth.ports.port_allocations) are freed by its O(berth.ports.port_allocations#module:prune).
      type: str
      returned: always
      sample: port_allocate
      version_added: 1.0.0
free:
  description:
    - Per protocol, how many ports of O(range) a dynamic request could still get (not allocated, not
      O(reserved)).
  returned: success
  type: dict
  sample:
    tcp: 996
    udp: 1000
largest_free_run:
  description:
    - Per protocol, the largest run of free ports as C(LOW-HIGH) (the lowest on a tie), or V(null) when
      no port is free. The largest O(berth.ports.port_allocate#module:count) that can still be served.
  returned: success
  type: dict
  sample:
    tcp: "25035-25999"
    udp: "25000-25999"
conflicts:
  description:
    - Listening sockets in O(range) that disagree with the allocations.
    - V(unallocated) is a listener on a port that no allocation covers.
    - V(foreign_listener) is a listener on an allocated port whose owner is a systemd unit, running in
      another unit's cgroup.
    - V(in_use) is a listener on an allocated port whose owner is not a systemd unit that can be matched;
      the operator judges whether it is the owner's own service.
    - Listeners running in the owner's own unit are not reported.
  returned: success
  type: list
  elements: dict
  sample:
    - type: unallocated
      proto: tcp
      port: 25500
      pid: 4242
      unit: stray.service
      owner: null
  contains:
    type:
      description: V(unallocated), V(foreign_listener) or V(in_use).
      type: str
      returned: always
      sample: in_use
    proto:
      description: V(tcp) or V(udp).
      type: str
      returned: always
      sample: tcp
    port:
      description: The port listened on.
      type: int
      returned: always
      sample: 25031
    pid:
      description: The listening process, or V(null) when it could not be found (for example without root).
      type: int
      returned: always
      sample: 4242
    unit:
      description: The systemd unit whose cgroup holds the process, or V(null).
      type: str
      returned: always
      sample: nginx.service
    owner:
      description: The owner of the allocation covering the port, V(null) for V(unallocated).
      type: str
      returned: always
      sample: web
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.module_options import policy_options
from ansible_collections.berth.ports.plugins.module_utils.port_info import port_report
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings, validate_owner
from ansible_collections.berth.ports.plugins.module_utils.task_failure import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            owner=dict(type="str"),
            proto=dict(type="str", default="all", choices=["tcp", "udp", "all"]),
            **policy_options(skip_listening=False)
        ),
        supports_check_mode=True,
    )
    params = module.params
    db_path = params["db_path"]

    def work():
        owner = params["owner"]
        if owner is not None:
            owner = validate_owner(owner)
        settings = build_settings(params["range"], params["reserved"], skip_listening=False)
        report = port_report(AllocationStore(db_path), settings, owner=owner, proto=params["proto"])
        return dict(changed=False, **report)

    run_module(module, work, db_path, writes=False)


if __name__ == "__main__":
    main()
