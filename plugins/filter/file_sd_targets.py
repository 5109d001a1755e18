# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: file_sd_targets
author:
  - berth.ports contributors (@berth)
version_added: 1.1.0
short_description: Prometheus file-based service discovery files from berth.ports endpoints
description:
  - Turns the endpoint groups of P(berth.ports.endpoints#filter) into the files Prometheus' C(file_sd_configs)
    reads, one per selected owner, C(<prefix><owner>.json).
  - Each file is a JSON list of target groups, one per endpoint (host), each with one target C(address:port)
    (an IPv6 address in brackets) and the labels C(berth_owner), C(berth_proto) and C(berth_host), plus
    O(labels).
  - Only tcp groups are written, the first port of each allocation is the target.
  - Owners are selected by O(owners) or O(pattern) (either may match); at least one must be given.
  - The text is stable, with sorted keys, groups by host then port, and a final newline, so the same fleet always
    gives the same bytes and a copy of it leaves an unchanged file untouched.
  - R(berth.ports.ports_prometheus_targets,ansible_collections.berth.ports.ports_prometheus_targets_role) writes the
    files atomically and removes those of owners no longer selected.
positional: _input
options:
  _input:
    description: The list P(berth.ports.endpoints#filter) returns.
    type: list
    elements: dict
    required: true
  owners:
    description: Owners to write a file for.
    type: list
    elements: str
    default: []
  pattern:
    description: A Python regular expression; owners it matches B(whole) get a file too.
    type: str
    default: ""
  labels:
    description:
      - Labels added to every target group, for example C({env = prod}) in Prometheus' terms.
      - Names follow Prometheus (letters, digits, C(_), not starting with C(__)); the C(berth_) labels cannot be
        overridden.
    type: dict
    default: {}
  prefix:
    description: The start of every file name, letters, digits and C(._-); the role removes only files that have it.
    type: str
    default: berth-
seealso:
  - plugin: berth.ports.endpoints
    plugin_type: filter
"""

EXAMPLES = r"""
- name: One file per exporter owner
  ansible.builtin.copy:
    content: "{{ item.content }}"
    dest: /etc/prometheus/file_sd/{{ item.file }}
    mode: "0644"
  loop: >-
    {{ hostvars | berth.ports.endpoints(hosts=groups['app'])
       | berth.ports.file_sd_targets(pattern='.*-exporter', labels={'env': 'prod'}) }}
  loop_control:
    label: "{{ item.file }}"
"""

RETURN = r"""
_value:
  description:
    - One entry per selected owner that holds tcp ports somewhere, sorted by file name.
    - C(owner), the owner; C(file), the file name; C(content), the file's text.
  type: list
  elements: dict
  sample:
    - owner: node-exporter
      file: berth-node-exporter.json
      content: |
        [
          {
            "labels": {
              "berth_host": "app1",
              "berth_owner": "node-exporter",
              "berth_proto": "tcp"
            },
            "targets": [
              "10.0.0.11:25031"
            ]
          }
        ]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.file_sd_targets import DEFAULT_PREFIX, file_sd_targets as build_files


def file_sd_targets(endpoint_groups, owners=None, pattern="", labels=None, prefix=DEFAULT_PREFIX):
    """``endpoints | berth.ports.file_sd_targets(owners=..., pattern=..., labels=..., prefix=...)``."""
    try:
        return build_files(endpoint_groups, owners=owners, pattern=pattern, labels=labels, prefix=prefix)
    except PortsError as exc:
        raise AnsibleFilterError("berth.ports.file_sd_targets: %s" % exc) from exc


class FilterModule:
    """berth.ports' Prometheus file_sd filter."""

    def filters(self):
        return {"file_sd_targets": file_sd_targets}
