# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.ports.fleet_registry: the fleet's ports from the registry file, on the controller.

Thin: the argument spec, then plugin_utils/fleet_registry.py does the work.
"""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry import registry_fleet_ports
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import DEFAULT_FLEET

DEFAULT_REGISTRY_FILE = "berth-ports-registry.yml"

ARGUMENT_SPEC = {
    "hosts": {"type": "dict", "required": True},
    "registry": {"type": "path"},
    "fleet": {"type": "str", "default": DEFAULT_FLEET},
    "frozen": {"type": "bool", "default": False},
    "range": {"type": "str", "default": "25000-25999"},
    "reserved": {"type": "list", "elements": "raw", "default": []},
    "fallback": {"type": "str", "choices": ["fail", "local"], "default": "fail"},
}


def _default_directory(task_vars):
    """Beside the playbook; but never inside a collection (berth.ports.site's playbook_dir is the
    collection's playbooks/), and never in an inventory directory, where Ansible would read the
    registry as inventory: there, the directory ansible-playbook runs in (the project, under AWX)."""
    playbook_dir = task_vars.get("playbook_dir")
    if isinstance(playbook_dir, str) and os.path.isdir(playbook_dir):
        parts = os.path.abspath(playbook_dir).split(os.sep)
        if "ansible_collections" not in parts:
            return playbook_dir
    return os.getcwd()


class ActionModule(ActionBase):
    """Read, choose, write the registry; return each host's entries."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # nothing is copied to the host
        unused_validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = args["registry"]
        if not path:
            path = os.path.join(_default_directory(task_vars or {}), DEFAULT_REGISTRY_FILE)
        elif not os.path.isabs(path):
            path = self._loader.path_dwim(path)
        # Plain Python data for the library: templated values are Ansible's tagged
        # str subclasses, which the registry's YAML writer rightly refuses.
        plain = json.loads(json.dumps({"hosts": args["hosts"], "fleet": args["fleet"], "range": args["range"],
                                       "reserved": args["reserved"]}))
        try:
            run = registry_fleet_ports(
                plain["hosts"],
                path,
                fleet=plain["fleet"],
                port_range=plain["range"],
                reserved=plain["reserved"],
                fallback=args["fallback"],
                frozen=args["frozen"],
                check_mode=bool(self._task.check_mode),
            )
        except PortsError as exc:
            raise AnsibleActionFail("berth.ports.fleet_registry: %s" % exc) from exc
        result.update(
            changed=run.write.changed,
            registry=os.path.abspath(path),
            hosts=run.hosts,
            ports=[
                {"owner": owner, "proto": proto, "port": ports.first, "ports": str(ports)}
                for (owner, proto), ports in sorted(run.ports.items())
            ],
        )
        if self._task.diff and run.write.changed:
            result["diff"] = {"before": run.write.before, "after": run.write.after, "before_header": path, "after_header": path}
        return result
