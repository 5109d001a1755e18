# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_drift
author:
  - berth.ports contributors (@berth)
version_added: 1.1.0
short_description: The owners whose ports differ between hosts, or from the fleet registry
description:
  - Takes every host's M(berth.ports.port_info) survey and returns the owners whose ports drift, per protocol,
    with the ranges each holding host holds.
  - Without O(registry), an owner drifts when the hosts that hold it do not all hold the same ranges.
  - With O(registry), an owner the registry names drifts where a host holds other ranges than the registry's,
    even when most hosts agree with each other (a host not yet converged on a changed entry, say); owners it
    does not name are compared between hosts as without it.
  - Runs on the B(controller), on data already gathered. The playbook C(berth.ports.report) prints it as
    C(owners_differ).
positional: _input
options:
  _input:
    description:
      - A dict of host name to the registered result of M(berth.ports.port_info) on that host, run without
        O(berth.ports.port_info#module:owner). Hosts whose result is missing, failed or skipped are left out.
    type: dict
    required: true
  registry:
    description:
      - The fleet registry on the controller (see M(berth.ports.fleet_registry)). A missing file names no owner.
    type: path
  fleet:
    description: The fleet of O(registry) the hosts belong to.
    type: str
    default: default
seealso:
  - module: berth.ports.fleet_registry
  - plugin: berth.ports.port_map_html
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Owners whose ports differ from the registry
  ansible.builtin.debug:
    msg: >-
      {{ dict(groups.all | zip(groups.all | map('extract', hostvars, 'berth_port_info')))
         | berth.ports.fleet_drift(registry=inventory_dir ~ '/berth-ports-registry.yml') }}
"""

RETURN = r"""
_value:
  description: One item per drifting owner and protocol, sorted by owner then protocol.
  type: list
  elements: dict
  contains:
    owner:
      description: The owner.
      type: str
    proto:
      description: V(tcp) or V(udp).
      type: str
    registry:
      description: The registry's ranges for the owner, V(LOW-HIGH); V(null) when the registry does not name it.
      type: str
    hosts:
      description: Every host that holds the owner's ports of that protocol, and its ranges (V(A-B,C-D)).
      type: dict
  sample:
    - {owner: api, proto: tcp, registry: 25031-25032, hosts: {web1: 25031-25032, web2: 25040-25041}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_drift import owners_that_drift
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import expected_ranges


def fleet_drift(surveys, registry=None, fleet="default"):
    """``{host: port_info result} | berth.ports.fleet_drift(registry=..., fleet=...)``."""
    try:
        return owners_that_drift(surveys, expected_ranges(registry, str(fleet)))
    except PortsError as exc:
        raise AnsibleFilterError("berth.ports.fleet_drift: %s" % exc) from exc


class FilterModule:
    """berth.ports' drift filter."""

    def filters(self):
        return {"fleet_drift": fleet_drift}
