# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option specs the modules share, as the plain dicts AnsibleModule's
argument_spec takes, so an option reads the same in every module that has it
(the doc fragments in plugins/doc_fragments/ports.py document them once too)."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import DEFAULT_DB_PATH
from ansible_collections.berth.ports.plugins.module_utils.port_range import DEFAULT_RANGE
from ansible_collections.berth.ports.plugins.module_utils.request import PROTOCOLS

Spec = Dict[str, Dict[str, Any]]


def allocation_options() -> Spec:
    """What one allocation asks for besides its owner: port_allocate's options,
    and each entry of port_allocations."""
    return dict(
        proto=dict(type="str", default="tcp", choices=list(PROTOCOLS)),
        count=dict(type="int", default=1),
        port=dict(type="int"),
        shared=dict(type="bool", default=False),
    )


def database_options() -> Spec:
    """The database file, for every module."""
    return dict(db_path=dict(type="path", default=DEFAULT_DB_PATH))


def policy_options(skip_listening: bool = True) -> Spec:
    """The host's policy: the block, the reserved ports, the listener check (when
    the module allocates) and the database."""
    spec = dict(
        range=dict(type="str", default=DEFAULT_RANGE),
        reserved=dict(type="list", elements="raw", default=[]),
        **database_options()
    )  # type: Spec
    if skip_listening:
        spec["skip_listening"] = dict(type="bool", default=True)
    return spec
