# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_ports
author:
  - berth.ports contributors (@berth)
version_added: 1.0.0
short_description: Choose the same port for an owner on every host of a play
description:
  - Takes, per host, the entries a play would give M(berth.ports.port_allocations) and that host's
    M(berth.ports.port_info) survey, and returns per host the entries to send instead, in which every
    dynamic entry (no C(port)) asks statically for one B(fleet port) shared by all hosts.
  - An owner that already holds ports of that protocol on some hosts keeps the port the most hosts hold
    (its lowest first port on each host; a tie goes to the lowest port). Hosts that hold it elsewhere are
    moved to it and hosts that join get it.
  - A new owner gets the lowest run of its largest C(count) that is free on B(every) host, searched like a
    dynamic allocation (the upper band of O(range) first, then the whole range). Free means no other owner's
    row of that protocol, no C(unallocated) listener from the surveys, no port of O(reserved), no run already
    chosen for another owner and no port another owner's static entry asks for. Never outside O(range).
  - Existing owners are settled first, then new ones, each in sorted owner and protocol order, so the same
    input always gives the same result, whatever the order of the hosts.
  - Entries with C(count=0) (free) and static entries (with C(port)) are passed through unchanged.
  - Where a host cannot take its fleet port (another owner holds one of the ports, a listener without an
    allocation sits on one, or the run would leave O(range)), O(fallback) decides.
  - Runs on the B(controller), on data already gathered; it changes nothing on any host.
positional: _input
options:
  _input:
    description:
      - A dict of host name to a dict with two keys.
      - C(demand), the list of entries for M(berth.ports.port_allocations) on that host, each
        C({owner, proto, count, port, shared}) with C(proto) defaulting to V(tcp), C(count) to V(1)
        and C(shared) to V(false); one entry per owner and protocol. Integers may be digit strings.
      - C(survey), the registered result of M(berth.ports.port_info) on that host, run without
        O(berth.ports.port_info#module:owner) and O(berth.ports.port_info#module:proto) so that it shows every
        owner. A missing or failed survey is an error.
    type: dict
    required: true
  range:
    description:
      - The range ports are handed out from, V(LOW-HIGH); the same as the modules' O(berth.ports.port_allocations#module:range).
    type: str
    default: "25000-25999"
  reserved:
    description:
      - Ports and V(LOW-HIGH) ranges never chosen for a new owner, as the modules'
        O(berth.ports.port_allocations#module:reserved).
    type: list
    elements: raw
    default: []
  fallback:
    description:
      - What a host gets when its fleet port is not free there, or when no run is free on every host.
      - V(fail) keeps the fleet port in the entry and records a conflict in RV(_value.conflicts) for that
        host, so the play can fail that host before it changes anything.
      - V(local) sends the entry without C(port), so the host allocates a dynamic port of its own, and
        records it in RV(_value.local).
    type: str
    choices: [fail, local]
    default: fail
notes:
  - Hosts that free an owner (C(count=0)) do not count towards the port it keeps.
  - An owner whose held ports all lie outside O(range) is treated as a new owner.
  - A run is chosen for the largest C(count) any host asks; each host asks for its own C(count) from the
    fleet port on.
seealso:
  - module: berth.ports.port_info
  - module: berth.ports.port_allocations
"""

EXAMPLES = r"""
- name: Survey every host
  berth.ports.port_info:
  register: berth_survey

- name: Put each host's demand next to its survey
  ansible.builtin.set_fact:
    berth_fleet_input:
      demand:
        - {owner: web, count: 2}
        - {owner: dns, proto: udp}
      survey: "{{ berth_survey }}"

- name: Choose one port per owner for the whole play
  ansible.builtin.set_fact:
    berth_fleet: >-
      {{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'berth_fleet_input')))
         | berth.ports.fleet_ports(range='25000-25999', reserved=[25080, '25500-25510'], fallback='fail') }}
  run_once: true

- name: Stop a host whose fleet port is taken, before anything changes
  ansible.builtin.fail:
    msg: "{{ berth_fleet[inventory_hostname].conflicts | map(attribute='msg') | join('; ') }}"
  when: berth_fleet[inventory_hostname].conflicts | length > 0

- name: Allocate the fleet ports
  berth.ports.port_allocations:
    allocations: "{{ berth_fleet[inventory_hostname].allocations }}"

- name: A plain call, with every option left at its default
  ansible.builtin.debug:
    msg: >-
      {{ {'web1': {'demand': [{'owner': 'web', 'count': 2}], 'survey': web1_survey},
          'web2': {'demand': [{'owner': 'web', 'count': 2}], 'survey': web2_survey}}
         | berth.ports.fleet_ports }}
"""

RETURN = r"""
_value:
  description:
    - A dict of host name to what that host gets, for every host of the input.
  type: dict
  contains:
    allocations:
      description:
        - The host's entries for M(berth.ports.port_allocations), in the input order, each with every key
          (C(owner), C(proto), C(count), C(port), C(shared)).
        - A dynamic entry has C(port) set to the fleet port and C(shared=false), or C(port=null) when it
          fell back to a host-local port (O(fallback=local)).
      type: list
      elements: dict
      sample:
        - {owner: web, proto: tcp, count: 2, port: 25031, shared: false}
    conflicts:
      description:
        - The entries whose fleet port is not free on this host (only with O(fallback=fail)).
        - C(owner), C(proto); C(port), the fleet port (V(null) when no run is free on every host);
          C(ports), the host's ports V(LOW-HIGH) (V(null) likewise); C(holder), what is in the way;
          C(msg), one line naming the host, owner, protocol, ports and holder.
      type: list
      elements: dict
      sample:
        - owner: web
          proto: tcp
          port: 25600
          ports: 25600-25601
          holder: owner legacy-app (25600-25600)
          msg: "host web2: owner web/tcp cannot take its fleet ports 25600-25601, blocked by owner legacy-app (25600-25600)"
    local:
      description:
        - The entries sent without a port because their fleet port was not free (only with O(fallback=local)),
          each C({owner, proto, fleet_port}); C(fleet_port) is V(null) when no run was free on every host.
      type: list
      elements: dict
      sample:
        - {owner: web, proto: tcp, fleet_port: 25600}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_ports import choose_fleet_ports


def fleet_ports(hosts, range="25000-25999", reserved=None, fallback="fail"):
    """``hosts | berth.ports.fleet_ports(range=..., reserved=..., fallback=...)``."""
    try:
        return choose_fleet_ports(hosts, port_range=range, reserved=() if reserved is None else reserved, fallback=fallback)
    except PortsError as exc:
        raise AnsibleFilterError("berth.ports.fleet_ports: %s" % exc) from exc


class FilterModule:
    """berth.ports' filters."""

    def filters(self):
        return {"fleet_ports": fleet_ports}
