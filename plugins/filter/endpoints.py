# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: endpoints
author:
  - berth.ports contributors (@berth)
version_added: 1.1.0
short_description: Where every owner's ports are, per host, for load balancers and monitoring
description:
  - Turns what the fleet holds into B(endpoint groups), one per owner and protocol, each listing the hosts that
    hold ports for that owner with the address to reach them and the ports, as
    C({owner, proto, endpoints}) with C(endpoints) a list of C({host, address, port, ports}).
  - Use it to write haproxy backends, Prometheus targets
    (see R(berth.ports.ports_prometheus_targets,ansible_collections.berth.ports.ports_prometheus_targets_role))
    or a client's configuration from the ports berth.ports handed out, instead of copying them by hand.
  - B(From each host's results) (the default). The input is C(hostvars). For each host, the variable named by
    O(results) is read, the fact C(service_ports_results) that R(berth.ports.service_ports,ansible_collections.berth.ports.service_ports_role)
    sets, or a registered result of M(berth.ports.port_info) (every owner's allocations on that host).
    With O(hosts), every host named must have that variable (a backend silently missing from a load balancer
    is worse than a failed run); without O(hosts), the hosts that have it are read and the others left out.
  - B(From the fleet registry) (O(registry) set). Every host of O(hosts) is taken to hold every owner of the fleet
    O(fleet) at the registry's ports, which is what the fleet registry promises, so a play that runs on the load
    balancer alone still lists every backend without gathering anything from them. The input is C(hostvars)
    (for the addresses) or simply the list of hosts (their names are then their addresses).
  - The address of a host is its variable O(address_var) (V(ansible_host) by default) when set and not empty,
    otherwise its inventory name.
  - Each allocation of the input appears in exactly one group, as one endpoint; nothing else is added. Groups are
    sorted by owner then protocol, endpoints by host then port, so the same fleet always gives the same list
    whatever the order of the hosts, and a template rendered from it changes only when a port does.
  - Runs on the B(controller), on data already gathered or on the registry file; it changes nothing on any host.
positional: _input
options:
  _input:
    description:
      - C(hostvars), or a dict of host name to that host's variables (at least O(results) and O(address_var)).
      - With O(registry), also simply a list of host names (then O(hosts) defaults to it).
    type: raw
    required: true
  hosts:
    description:
      - The hosts to read, for example C(groups['app']). Each must be in the input.
      - Without O(registry), unset means every host of the input that has the variable O(results).
      - With O(registry), required when the input is C(hostvars).
    type: list
    elements: str
  results:
    description:
      - The variable of each host holding what it was given. A list is read as the role's C(service_ports_results)
        (owner and C(ports.tcp)/C(ports.udp) of each service; a service without ports adds nothing); a dict as a
        registered result of M(berth.ports.port_info) (its C(allocations)).
    type: str
    default: service_ports_results
  address_var:
    description:
      - The variable of each host that holds the address consumers reach it at. Unset or empty on a host means its
        inventory name.
    type: str
    default: ansible_host
  registry:
    description:
      - The fleet registry file on the controller (see M(berth.ports.fleet_registry)) to read the ports from instead
        of each host's results. A missing file is an empty registry, which gives no groups.
    type: path
  fleet:
    description:
      - With O(registry), the fleet of the registry whose owners are listed.
    type: str
    default: default
notes:
  - Every port of an allocation is in C(ports); C(port) is the first, the one C(TCP_PORT) or C(UDP_PORT) gives the
    service.
  - From the registry, a host that does not run an owner still holds its ports (they are kept free there for the
    fleet); list only the hosts that run it in O(hosts), or pick the groups you need.
seealso:
  - module: berth.ports.port_info
  - module: berth.ports.fleet_registry
  - plugin: berth.ports.fleet_ports
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Each app host gets its ports
  ansible.builtin.include_role:
    name: berth.ports.service_ports
  vars:
    service_ports_services:
      - unit: web.service

- name: Write haproxy's backends from the ports of every app host
  ansible.builtin.template:
    src: haproxy.cfg.j2
    dest: /etc/haproxy/haproxy.cfg
    mode: "0644"
    validate: haproxy -c -f %s
  vars:
    # [{owner: web, proto: tcp, endpoints: [{host: app1, address: 10.0.0.11, port: 25031, ports: [25031]}, ...]}]
    web_backends: >-
      {{ (hostvars | berth.ports.endpoints(hosts=groups['app'])
          | selectattr('owner', 'eq', 'web') | selectattr('proto', 'eq', 'tcp') | first).endpoints }}
  delegate_to: "{{ groups['lb'] | first }}"
  run_once: true
  notify: Reload haproxy

- name: The same from registered port_info results, addresses from another variable
  ansible.builtin.debug:
    msg: "{{ hostvars | berth.ports.endpoints(hosts=groups['app'], results='berth_survey', address_var='private_ip') }}"

- name: On the load balancer alone, from the fleet registry
  ansible.builtin.debug:
    msg: >-
      {{ hostvars | berth.ports.endpoints(registry=playbook_dir ~ '/berth-ports-registry.yml',
                                          hosts=groups['app'], fleet='default') }}

- name: From the registry with bare host names as addresses
  ansible.builtin.debug:
    msg: "{{ ['app1', 'app2'] | berth.ports.endpoints(registry='/srv/ansible/berth-ports-registry.yml') }}"
"""

RETURN = r"""
_value:
  description:
    - One group per owner and protocol that some host holds ports for, sorted by owner then protocol.
  type: list
  elements: dict
  contains:
    owner:
      description: The owner of the ports.
      type: str
      sample: web
    proto:
      description: V(tcp) or V(udp).
      type: str
      sample: tcp
    endpoints:
      description:
        - One per allocation of that owner and protocol, sorted by host then port.
        - C(host), the inventory name; C(address), where to reach it (O(address_var), or the name);
          C(port), the first port; C(ports), every port of the allocation, in order.
      type: list
      elements: dict
      sample:
        - {host: app1, address: 10.0.0.11, port: 25031, ports: [25031]}
        - {host: app2, address: 10.0.0.12, port: 25031, ports: [25031]}
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.endpoints import (
    DEFAULT_ADDRESS_VAR,
    DEFAULT_RESULTS_VAR,
    endpoints_from_registry,
    endpoints_from_results,
)
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import DEFAULT_FLEET


def endpoints(data, hosts=None, results=DEFAULT_RESULTS_VAR, address_var=DEFAULT_ADDRESS_VAR, registry=None, fleet=DEFAULT_FLEET):
    """``hostvars | berth.ports.endpoints(hosts=..., results=..., address_var=..., registry=..., fleet=...)``."""
    try:
        if not registry:
            return endpoints_from_results(data, hosts=hosts, results_var=results, address_var=address_var)
        if isinstance(data, Mapping):
            if hosts is None:
                raise PortsError("with registry and hostvars as input, hosts must name the hosts, e.g. hosts=groups['app']")
            return endpoints_from_registry(registry, hosts, hostvars=data, fleet=fleet, address_var=address_var)
        return endpoints_from_registry(registry, data if hosts is None else hosts, fleet=fleet, address_var=address_var)
    except PortsError as exc:
        raise AnsibleFilterError("berth.ports.endpoints: %s" % exc) from exc


class FilterModule:
    """berth.ports' endpoint filters."""

    def filters(self):
        return {"endpoints": endpoints}
