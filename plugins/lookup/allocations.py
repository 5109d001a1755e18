# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: allocations
author:
  - berth.ports contributors (@berth)
version_added: 1.0.0
short_description: Read port allocations from a berth.ports database on the controller
description:
  - Returns the allocation records of a berth.ports database, one dict per range, by protocol then port,
    in the shape of M(berth.ports.port_info)'s RV(berth.ports.port_info#module:allocations).
  - Like every lookup it runs on the B(controller) and reads a file there, for example the controller's
    own database, the one on an C(ansible-pull) host, or a copy fetched from a managed host with
    M(ansible.builtin.fetch). Use M(berth.ports.port_info) to read a managed host's database in place.
  - It never writes. The file is opened read-only and never created, migrated or repaired.
  - Use C(query()) (or C(wantlist=true)) to always get a list; C(lookup()) returns a single record
    as a dict.
options:
  _terms:
    description:
      - Owners whose allocations to return. When none are given, every owner's are returned.
    type: list
    elements: str
    required: false
  proto:
    description:
      - Only allocations of this protocol; V(all) returns TCP and UDP.
    type: str
    choices: [tcp, udp, all]
    default: all
  db_path:
    description:
      - Path of the database file on the controller.
      - A value from O(db_path)'s variable may itself be a template, for example
        C("{{ inventory_dir }}/fetched/{{ inventory_hostname }}.db").
    type: str
    default: /var/lib/berth/ports.db
    env:
      - name: BERTH_PORTS_DB_PATH
    vars:
      - name: berth_ports_db_path
  missing:
    description:
      - What to do when O(db_path) does not exist.
      - V(empty) returns no records, as for a host that has never allocated a port.
      - V(error) fails, which catches a mistyped path or a fetch that did not happen.
    type: str
    choices: [empty, error]
    default: empty
  query:
    description:
      - A JMESPath expression applied to the list of records; the lookup returns its result.
      - A result that is not a list is returned as a one-element list, and V(null) (no match) as an
        empty list, so C(query()) always gives a list.
      - Needs the C(jmespath) Python package on the controller.
    type: str
requirements:
  - jmespath (only for O(query))
notes:
  - Records have the keys C(owner), C(proto), C(first), C(last), C(shared), C(kind), C(created) and C(origin).
  - A database with a newer schema than this collection knows, a corrupt file, or a file that is not a
    berth.ports database makes the lookup fail with a clear message; it is never touched.
seealso:
  - module: berth.ports.port_info
  - module: berth.ports.port_allocate
"""

EXAMPLES = r"""
- name: Every allocation in the controller's database
  ansible.builtin.debug:
    msg: "{{ query('berth.ports.allocations') }}"

- name: The TCP ranges of two services, from a copy fetched from a host
  ansible.builtin.debug:
    msg: "{{ query('berth.ports.allocations', 'web', 'traefik1', proto='tcp', db_path='fetched/' ~ inventory_hostname ~ '/ports.db') }}"

- name: Copy a host's database to the controller
  ansible.builtin.fetch:
    src: /var/lib/berth/ports.db
    dest: fetched/{{ inventory_hostname }}/ports.db
    flat: true

- name: Owners and their first ports, through JMESPath
  ansible.builtin.debug:
    msg: "{{ query('berth.ports.allocations', query='[].{owner: owner, port: first}', db_path=fetched_db) }}"
  vars:
    fetched_db: fetched/{{ inventory_hostname }}/ports.db

- name: Fail when the database is missing instead of reading it as empty
  ansible.builtin.set_fact:
    web_first_port: "{{ query('berth.ports.allocations', 'web', query='[0].first', missing='error') | first }}"
  vars:
    berth_ports_db_path: /srv/berth/ports.db
"""

RETURN = r"""
_raw:
  description:
    - Without O(query), the allocation records, by protocol then port.
    - With O(query), the result of the JMESPath expression (a list; a non-list result is wrapped in one).
  type: list
  elements: raw
  contains:
    owner:
      description: Who holds the ports.
      type: str
      sample: web
    proto:
      description: V(tcp) or V(udp).
      type: str
      sample: tcp
    first:
      description: The first port of the range.
      type: int
      sample: 25031
    last:
      description: The last port of the range, included.
      type: int
      sample: 25034
    shared:
      description: Whether the range is shared (a static request with O(berth.ports.port_allocate#module:shared=true)).
      type: bool
      sample: false
    kind:
      description: V(dynamic) or V(static).
      type: str
      sample: dynamic
    created:
      description: When the range was allocated, UTC, ISO 8601.
      type: str
      sample: "2026-01-15T09:30:00Z"
    origin:
      description:
        - Which call made the range - V(port_allocate), V(port_allocations), V(agent), V(library), or
          V(unknown) for ranges made before the database recorded it.
      type: str
      sample: port_allocations
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.reporting import allocation_records
from ansible_collections.berth.ports.plugins.module_utils.request import validate_owner
from ansible_collections.berth.ports.plugins.module_utils.task_failure import TASK_ERRORS, failure_message

JMESPATH_MISSING = (
    "the query option of the berth.ports.allocations lookup needs the jmespath Python package "
    "on the controller; install it with: pip install jmespath"
)


def _run_query(expression, records):
    try:
        import jmespath  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise AnsibleLookupError(JMESPATH_MISSING) from exc
    try:
        result = jmespath.search(expression, records)
    except jmespath.exceptions.JMESPathError as exc:
        raise AnsibleLookupError("query %r: %s" % (expression, " ".join(to_native(exc).split()))) from exc
    if result is None:
        return []
    if isinstance(result, list):
        return result
    return [result]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        db_path = self.get_option("db_path")
        if "db_path" not in kwargs and self._templar is not None:
            # Options mapped from variables arrive untemplated (a known
            # ansible-core limitation): berth_ports_db_path set to
            # "{{ base }}/ports.db" must not silently read a missing file.
            db_path = self._templar.template(db_path)
        # type str, not path: path would resolve the raw template against the
        # current directory before it is templated.
        db_path = os.path.expanduser(str(db_path))
        proto = self.get_option("proto")
        expression = self.get_option("query")

        try:
            owners = [validate_owner(term) for term in terms]
            if not os.path.lexists(db_path) and self.get_option("missing") == "error":
                raise PortsError("db_path %s does not exist on the controller" % db_path)
            rows = load_rows(AllocationStore(db_path), readonly=True)
        except TASK_ERRORS as exc:
            raise AnsibleLookupError(failure_message(exc, db_path, writes=False)) from exc

        records = allocation_records(rows, owners, proto)
        if expression:
            return _run_query(expression, records)
        return records
