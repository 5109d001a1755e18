# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: port_map_html
author:
  - berth.ports contributors (@berth)
version_added: 1.0.0
short_description: Draw a fleet's port allocations as one self-contained HTML page
description:
  - Takes the registered results of M(berth.ports.port_info) of many hosts and returns an HTML page (a string)
    that shows them, per host, the range as a strip of cells per protocol (TCP above UDP), each allocation in
    its owner's colour, and below a sortable table of the same facts.
  - Hosts whose allocations and listener conflicts are identical (owner, protocol, ports, shared, kind; creation
    times may differ) share one row, with their count, so that the page stays readable at hundreds of hosts.
  - Highlights owners that B(drift) (different ports on different hosts; an orange bar on their cells), B(stray
    listeners) (a process listening in the range without an allocation; a black tick), ports B(held twice) (two
    allocations of one host overlap; a purple bar; grey when every holder asked to share) and listeners on
    another owner's ports (a red tick). Hosts whose survey is missing or failed are listed as not read.
  - Hovering a cell names its ports, protocol, owner, kind and since when it is held (the earliest creation
    time among the row's hosts).
  - Each owner's colour depends on its name only, so it is the same on every page and every run.
  - The page fetches nothing (inline CSS and SVG, a few lines of inline script that sort the table), so it
    works from C(file://) and as a mail attachment.
  - Runs on the B(controller), on data already gathered. The playbook C(berth.ports.map) writes it to a file.
positional: _input
options:
  _input:
    description:
      - A dict of host name to the registered result of M(berth.ports.port_info) on that host, run without
        O(berth.ports.port_info#module:owner) and O(berth.ports.port_info#module:proto) so that it shows every
        owner. A missing, empty, failed, skipped or unreachable result puts the host in the list of hosts not read.
    type: dict
    required: true
  range:
    description:
      - The block drawn, V(LOW-HIGH); allocations and listeners outside it are listed in the table only.
    type: str
    default: "25000-25999"
  title:
    description: The page's title and heading.
    type: str
    default: berth.ports map
  generated:
    description: A time stamp shown in the header, such as the time the play ran. Nothing when omitted.
    type: str
  registry:
    description:
      - The fleet registry (see M(berth.ports.fleet_registry)), a path on the controller. Given, an owner it names
        drifts where a host holds other ports than the registry's, even when most hosts agree with each other.
        A missing file names no owner.
    type: path
    version_added: 1.1.0
  fleet:
    description: The fleet of O(registry) the hosts belong to.
    type: str
    default: default
    version_added: 1.1.0
seealso:
  - module: berth.ports.port_info
  - plugin: berth.ports.fleet_ports
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Survey every host
  berth.ports.port_info:
  register: berth_port_info

- name: Write the map on the controller
  ansible.builtin.copy:
    dest: ./berth-ports-map.html
    content: >-
      {{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars)
                                         | map(attribute='berth_port_info', default={})))
         | berth.ports.port_map_html(range='25000-25999', title='Ports of ' ~ ansible_play_hosts | length ~ ' hosts') }}
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - The page, a complete HTML document (C(<!DOCTYPE html>) ... C(</html>)), UTF-8 text.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import expected_ranges
from ansible_collections.berth.ports.plugins.plugin_utils.port_map import shape_port_map
from ansible_collections.berth.ports.plugins.plugin_utils.port_map_html import render_port_map


def port_map_html(surveys, range="25000-25999", title="berth.ports map", generated=None, registry=None, fleet="default"):
    """``{host: port_info result} | berth.ports.port_map_html(range=..., title=..., generated=..., registry=...)``."""
    try:
        port_map = shape_port_map(surveys, port_range=range, expected=expected_ranges(registry, str(fleet)))
    except PortsError as exc:
        raise AnsibleFilterError("berth.ports.port_map_html: %s" % exc) from exc
    return render_port_map(port_map, title=str(title), generated=None if generated is None else str(generated))


class FilterModule:
    """berth.ports' port map filter."""

    def filters(self):
        return {"port_map_html": port_map_html}
