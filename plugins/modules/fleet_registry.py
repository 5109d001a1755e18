#!/usr/bin/python
# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done on the controller by the action plugin of the same name
# (plugins/action/fleet_registry.py); this file holds its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_registry
short_description: Give each owner the same ports on every host of a fleet, remembered in a registry file
version_added: 1.1.0
description:
  - Harmony's registry file on the controller. Reads the YAML file O(registry), chooses the fleet's ports
    of every owner that the hosts of this run ask for, writes the file before any host changes, and
    returns, per host, the entries to give M(berth.ports.port_allocations).
  - An owner in the registry gets exactly its registry ports on every host of every run, whatever the
    run covers (C(serial), C(--limit), job slices, several teams' plays). A demand that grows keeps its
    first port when the larger range is free on every host of the run and held by no other owner of
    the fleet; otherwise it is chosen anew and the registry updated. A demand that shrinks keeps its first port.
  - An owner the hosts already hold but the registry does not name yet is adopted at the port the most
    hosts hold, where that fits the range and no other owner of the fleet holds it.
  - A new owner gets the lowest run free on every host of the run (other owners' allocations, listeners
    without an allocation, static requests of this run, O(reserved)) B(and) held by no other owner of the
    fleet in the registry, searched like a dynamic allocation (the upper band of O(range) first).
    Within a fleet one port belongs to one owner, even on hosts that do not run it.
  - Writing takes an exclusive lock on C(<registry>.lock), reads the file again inside the lock and
    replaces it atomically, in a stable sorted layout; two runs at once that add different owners both
    land, on different ports. A file that contradicts itself (two owners overlapping in a fleet, a
    port outside O(range) or inside O(reserved), a malformed entry) fails the task before any host is
    touched, naming the owners and the file, and is never overwritten.
  - Where a host cannot take its fleet ports, O(fallback) decides; never a silent other port.
  - Runs on the B(controller), once for the play (C(run_once)); it changes nothing on any host.
author:
  - berth.ports contributors (@berth)
options:
  hosts:
    description:
      - A dict of host name to C({demand, survey}), as the P(berth.ports.fleet_ports#filter) filter takes it.
      - C(demand), the entries for M(berth.ports.port_allocations) on that host; C(survey), the registered
        result of M(berth.ports.port_info) on that host, run without C(owner) and C(proto).
    type: dict
    required: true
  registry:
    description:
      - Path of the registry file on the controller; a relative path is taken from the playbook's
        directory. A missing file is an empty registry and is created on the first write; its
        directory must exist.
      - When omitted, C(berth-ports-registry.yml) beside the playbook, or, when the playbook is one of a
        collection's (C(berth.ports.site) itself), in the directory C(ansible-playbook) runs in, the project's
        root under AWX. Never inside a collection, and never in an inventory directory, where Ansible would
        read the file as inventory.
      - Keep it in git beside the playbooks; the lock file C(<registry>.lock) beside it is not content.
    type: path
  fleet:
    description:
      - The fleet of the registry this run belongs to (prod, staging, a site). Several fleets share one
        file; ports are unique within a fleet only.
    type: str
    default: default
  frozen:
    description:
      - Never write the registry. An owner it does not name, or a demand it does not match, fails the
        task naming the owner and the file, with the entry to add. For AWX and CI, where the registry
        comes from git and changes are reviewed.
    type: bool
    default: false
  range:
    description:
      - The range ports are handed out from, V(LOW-HIGH), as O(berth.ports.port_allocations#module:range).
    type: str
    default: "25000-25999"
  reserved:
    description:
      - Ports and V(LOW-HIGH) ranges never chosen, and never allowed in the registry, as
        O(berth.ports.port_allocations#module:reserved).
    type: list
    elements: raw
    default: []
  fallback:
    description:
      - What a host gets when its fleet ports are not free there.
      - V(fail) keeps the fleet port in the entry and records a conflict in RV(hosts) for that host, so the
        play can fail that host before it changes anything.
      - V(local) sends the entry without C(port), so the host allocates a port of its own (drift, which
        the C(berth.ports.report) playbook shows), and records it in RV(hosts).
    type: str
    choices: [fail, local]
    default: fail
attributes:
  check_mode:
    description: Chooses the ports and reports the registry's change, but writes nothing.
    support: full
  diff_mode:
    description: Shows the registry file before and after.
    support: full
  platform:
    description: Runs on the controller only.
    platforms: posix
    support: full
  action:
    description: An action plugin; all of its work is on the controller.
    support: full
notes:
  - The role P(berth.ports.service_ports#role) runs it whenever C(service_ports_fleet_consistent) is on.
seealso:
  - plugin: berth.ports.fleet_ports
    plugin_type: filter
  - module: berth.ports.port_info
"""

EXAMPLES = r"""
- name: Survey every host
  berth.ports.port_info:
  register: survey

- name: Say what each host asks for
  ansible.builtin.set_fact:
    fleet_input:
      demand: [{owner: api, proto: tcp, count: 2}]
      survey: "{{ survey }}"

- name: Choose the fleet's ports, remembered in the registry beside the inventory
  berth.ports.fleet_registry:
    hosts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'fleet_input'))) }}"
    registry: "{{ inventory_dir }}/berth-ports-registry.yml"
    fleet: prod
  run_once: true
  register: fleet

- name: Stop where the fleet's ports are taken
  ansible.builtin.fail:
    msg: "{{ fleet.hosts[inventory_hostname].conflicts | map(attribute='msg') | join('; ') }}"
  when: fleet.hosts[inventory_hostname].conflicts | length > 0

- name: Take them
  berth.ports.port_allocations:
    allocations: "{{ fleet.hosts[inventory_hostname].allocations }}"
"""

RETURN = r"""
registry:
  description: The registry file's absolute path.
  returned: always
  type: str
  sample: /srv/ansible/inventory/berth-ports-registry.yml
ports:
  description: The fleet's ports of every owner and protocol this run asks a dynamic port for.
  returned: always
  type: list
  elements: dict
  contains:
    owner:
      description: The owner.
      type: str
    proto:
      description: V(tcp) or V(udp).
      type: str
    port:
      description: The first port.
      type: int
    ports:
      description: The ports, V(LOW-HIGH).
      type: str
  sample:
    - {owner: api, proto: tcp, port: 25031, ports: 25031-25032}
hosts:
  description:
    - Per host of O(hosts), what the P(berth.ports.fleet_ports#filter) filter returns; C(allocations),
      the entries for M(berth.ports.port_allocations) with the fleet's ports; C(conflicts), each
      C({owner, proto, port, ports, holder, msg}) where the fleet's ports are not free on the host;
      C(local), each C({owner, proto, fleet_port}) sent without a port (O(fallback=local)).
  returned: always
  type: dict
  sample:
    web1:
      allocations: [{owner: api, proto: tcp, count: 2, port: 25031, shared: false}]
      conflicts: []
      local: []
"""
