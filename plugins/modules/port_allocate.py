#!/usr/bin/python
# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_allocate
short_description: Allocate TCP or UDP ports for a service from the host's berth.ports database
version_added: 1.0.0
description:
  - Hands an owner (usually a service) a contiguous range of O(count) ports from the host's reserved
    block O(range), recorded in a small SQLite database so no two owners get the same port, unless every
    holder asked to share it.
  - Dynamic allocation is first-fit and deterministic, skips O(reserved) ports and, with
    O(skip_listening), ports some process already listens on.
  - With O(port) the owner asks for exactly O(port) to O(port) + O(count) - 1 (a static request).
  - Idempotent. When the owner already holds what is asked nothing changes. Otherwise the owner's ranges
    for O(proto) are replaced by one new range that keeps the old first port when it can grow or shrink in
    place, or, with O(keep_existing=true), a further range is added.
  - Returns the ports and the environment variables a systemd unit reads them from (RV(env)).
  - Use M(berth.ports.port_deallocate) to free ports and M(berth.ports.port_info) to inspect the database.
author:
  - berth.ports contributors (@berth)
options:
  owner:
    description:
      - Who holds the ports, for example the name of the systemd unit without its suffix.
      - 1 to 128 characters of letters, digits and C(.), C(_), C(@), C(:), C(-), starting with a letter or digit.
      - When omitted, the value of the E(MODULE_ID) environment variable on the managed host is used;
        the task fails when both are unset.
    type: str
  proto:
    description:
      - The protocol. TCP and UDP ports are separate name spaces.
    type: str
    choices: [tcp, udp]
    default: tcp
  count:
    description:
      - How many ports, always as one contiguous range. At least 1 and at most the size of O(range).
    type: int
    default: 1
  port:
    description:
      - Ask for exactly O(port) to O(port) + O(count) - 1 instead of letting the allocator choose.
      - The ports must lie inside O(range) (either band) and may be O(reserved) ports.
      - Fails, naming the holder, when another owner holds any of them, unless the request and every
        holder of the overlap use O(shared=true).
    type: int
  shared:
    description:
      - Share a static range with other owners that also ask for it with O(shared=true), for services
        that bind with C(SO_REUSEPORT). A shared holder never lets a non-shared request in, and a
        non-shared holder never lets a shared request in.
      - Also allows a static range some process already listens on.
      - Only with O(port).
    type: bool
    default: false
  keep_existing:
    description:
      - V(false) replaces the owner's ranges for O(proto) by the one range asked for.
      - V(true) adds a further range of O(count) ports and keeps the ones the owner holds; RV(env) keeps
        describing the oldest range.
    type: bool
    default: false
  skip_listening:
    description:
      - Skip ports that a process on the host listens on (read from C(/proc/net/tcp), C(tcp6), C(udp),
        C(udp6)) when allocating dynamically, and refuse a non-shared static request for one.
      - The owner's own ports never count as busy, so its running service does not push it elsewhere.
    type: bool
    default: true
extends_documentation_fragment:
  - berth.ports.ports
  - berth.ports.ports.action_group
  - berth.ports.ports.range
attributes:
  check_mode:
    description: Computes exactly what would be allocated and writes nothing; the database is not created.
    support: full
  diff_mode:
    description: Shows the owner's ranges for O(proto) before and after, one C(LOW-HIGH/proto) line each.
    support: full
  platform:
    description: Runs on the managed host; listening ports are read from Linux's C(/proc/net).
    platforms: posix
    support: full
seealso:
  - module: berth.ports.port_deallocate
  - module: berth.ports.port_info
  - plugin: berth.ports.allocations
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Give the metrics exporter one TCP port (owner from the unit name)
  berth.ports.port_allocate:
    owner: node-exporter
  register: exporter_port

- name: Use it
  ansible.builtin.debug:
    msg: "node-exporter listens on {{ exporter_port.port }} ({{ exporter_port.env.TCP_PORT }})"

- name: Four contiguous TCP ports for a podman container in host mode
  berth.ports.port_allocate:
    owner: web
    count: 4
  register: web_ports

- name: Two UDP ports for the same owner, never from 25100-25199
  berth.ports.port_allocate:
    owner: web
    proto: udp
    count: 2
    reserved:
      - 25100-25199

- name: A fixed port shared by two SO_REUSEPORT workers
  berth.ports.port_allocate:
    owner: "{{ item }}"
    port: 25010
    shared: true
  loop:
    - rgw-a
    - rgw-b

- name: Another block and database for a lab host
  berth.ports.port_allocate:
    owner: lab-api
    count: 2
    range: "40000-40999"
    db_path: /srv/berth/ports.db

- name: Owner from the MODULE_ID environment variable of the managed host
  berth.ports.port_allocate:
    count: 3
  environment:
    MODULE_ID: traefik1
"""

RETURN = r"""
owner:
  description: The owner the ports are allocated to (from O(owner) or E(MODULE_ID)).
  returned: success
  type: str
  sample: web
proto:
  description: The protocol of the ports.
  returned: success
  type: str
  sample: tcp
port:
  description:
    - The first port of the owner's oldest range for O(proto).
    - In check mode, the port that would be allocated.
  returned: success
  type: int
  sample: 25031
ports:
  description: Every port the owner holds for O(proto), in the order of RV(ranges).
  returned: success
  type: list
  elements: int
  sample: [25031, 25032, 25033, 25034]
ranges:
  description:
    - The owner's ranges for O(proto) as C(LOW-HIGH) strings, oldest first; a single port is C(N-N).
    - More than one only with O(keep_existing=true).
  returned: success
  type: list
  elements: str
  sample: ["25031-25034"]
env:
  description:
    - Environment variables for a service, prefixed C(TCP_) or C(UDP_) after O(proto).
    - C(TCP_PORT) always, the first port.
    - C(TCP_PORTS_RANGE) only when the oldest range has more than one port, as C(LOW-HIGH).
    - C(TCP_PORTS) only when the oldest range has more than one and at most 8 ports, comma-separated.
    - With several ranges (O(keep_existing=true)) the variables describe the oldest one.
  returned: success
  type: dict
  sample:
    TCP_PORT: "25031"
    TCP_PORTS_RANGE: "25031-25034"
    TCP_PORTS: "25031,25032,25033,25034"
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.berth.ports.plugins.module_utils.allocation_rows import ORIGIN_PORT_ALLOCATE
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.module_options import allocation_options, policy_options
from ansible_collections.berth.ports.plugins.module_utils.request import (
    build_allocation_request,
    build_settings,
    resolve_owner,
)
from ansible_collections.berth.ports.plugins.module_utils.task_failure import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            owner=dict(type="str"),
            keep_existing=dict(type="bool", default=False),
            **allocation_options(),
            **policy_options()
        ),
        required_if=[("shared", True, ["port"])],
        supports_check_mode=True,
    )
    params = module.params
    db_path = params["db_path"]

    def work():
        owner = resolve_owner(params["owner"], os.environ)
        settings = build_settings(params["range"], params["reserved"], params["skip_listening"])
        request = build_allocation_request(
            owner,
            params["proto"],
            params["count"],
            params["port"],
            params["shared"],
            params["keep_existing"],
            settings,
        )
        outcome = allocate(
            AllocationStore(db_path), request, settings, check_mode=module.check_mode, origin=ORIGIN_PORT_ALLOCATE
        )
        result = dict(changed=outcome.changed)
        result.update(outcome.after.as_dict())
        if module._diff:
            # Only diff mode needs it: every module_utils file imported costs the
            # host a compile of its source (AnsiballZ ships no bytecode).
            from ansible_collections.berth.ports.plugins.module_utils.reporting import (  # pylint: disable=import-outside-toplevel
                owner_diff_ranges,
                task_diff,
            )

            result["diff"] = task_diff(
                "%s/%s (%s)" % (request.owner, request.proto, db_path),
                owner_diff_ranges(request.owner, request.proto, outcome.before.ranges),
                owner_diff_ranges(request.owner, request.proto, outcome.after.ranges),
            )
        return result

    run_module(module, work, db_path)


if __name__ == "__main__":
    main()
