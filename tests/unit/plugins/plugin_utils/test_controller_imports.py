# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's code never pulls in the host's I/O (issue 18).

The filters, the action and plugins/plugin_utils run on the controller: the
allocation database, the socket probes and the lock queue are host code, and
importing them there would tie the controller to the host's files (and
grow what a filter loads). The check reads the import statements, without
running them, and follows every import of this collection to its file, so
an indirect import (a filter -> plugin_utils -> module_utils -> allocator)
counts as well.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Optional, Set

import pytest

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PREFIX = "ansible_collections.berth.ports."

# Host I/O: the database, the socket probes. store_* are the allocation
# store's parts, however it is split.
HOST_IO = ("allocation_store", "allocator", "listening_ports", "socket_holders")
HOST_IO_PREFIXES = ("store_",)

CONTROLLER_DIRS = ("plugins/plugin_utils", "plugins/filter", "plugins/action")


def _file_of(module: str) -> Optional[str]:
    """This collection's file for a dotted module name, or None (not ours, or a package)."""
    if not module.startswith(PREFIX):
        return None
    path = os.path.join(COLLECTION, *module[len(PREFIX):].split("."))
    return path + ".py" if os.path.isfile(path + ".py") else None


def _imports(path: str) -> Set[str]:
    """The dotted names of this collection that ``path`` imports, at any level of the file."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = set()  # type: Set[str]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # from <package> import <module>
            found.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return {name for name in found if _file_of(name) is not None}


def import_closure(path: str) -> Dict[str, List[str]]:
    """Every module of this collection ``path`` imports, directly or not, with one chain that leads to it."""
    start = os.path.relpath(path, COLLECTION)
    chains = {}  # type: Dict[str, List[str]]
    todo = [(path, [start])]
    while todo:
        current, chain = todo.pop()
        for name in sorted(_imports(current)):
            if name not in chains:
                chains[name] = chain + [name[len(PREFIX):]]
                todo.append((_file_of(name), chains[name]))
    return chains


def host_io_in(path: str) -> List[str]:
    """The chains by which ``path`` reaches host I/O; empty when it does not."""
    found = []
    for name, chain in sorted(import_closure(path).items()):
        stem = name.rsplit(".", 1)[1]
        if stem in HOST_IO or stem.startswith(HOST_IO_PREFIXES):
            found.append(" -> ".join(chain))
    return found


def _controller_files() -> List[str]:
    files = []
    for folder in CONTROLLER_DIRS:
        directory = os.path.join(COLLECTION, folder)
        files.extend(os.path.join(folder, name) for name in sorted(os.listdir(directory))
                     if name.endswith(".py") and name != "__init__.py")
    return files


def test_the_controller_files_are_found():
    files = _controller_files()
    for expected in ("plugins/filter/fleet_ports.py", "plugins/action/fleet_registry.py", "plugins/plugin_utils/fleet_ports.py"):
        assert expected in files


@pytest.mark.parametrize("relative", _controller_files())
def test_controller_code_does_not_import_host_io(relative):
    assert host_io_in(os.path.join(COLLECTION, relative)) == []


def test_the_check_sees_an_indirect_import_of_host_io(tmp_path):
    """A file that imports the applying half of a declaration reaches the allocator through it:
    were the walk blind to indirect imports, the test above could not fail."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text("from ansible_collections.berth.ports.plugins.module_utils import declared_allocations\n")
    chains = host_io_in(str(plugin))
    assert any(chain.endswith("plugins.module_utils.declared_allocations -> plugins.module_utils.allocator") for chain in chains), chains


def test_a_module_reaches_host_io():
    assert host_io_in(os.path.join(COLLECTION, "plugins/modules/port_allocations.py")) != []


def test_the_filters_reach_the_declaration_parser():
    """fleet_ports parses each host's demand with the host's own rules, from the pure parser."""
    closure = import_closure(os.path.join(COLLECTION, "plugins/filter/fleet_ports.py"))
    assert PREFIX + "plugins.module_utils.declared_entries" in closure
    assert PREFIX + "plugins.module_utils.declared_allocations" not in closure
