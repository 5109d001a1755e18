"""The ports_agent role installs exactly the files the daemon imports (issue 18).

The role's list (``__ports_agent_library`` in roles/ports_agent/vars/main.yml)
is checked against the real import closure of the code the host runs: the
modules the role's command templates import ``main`` from, and the client
library's public path. The closure follows every ``ansible_collections.berth.
ports.*`` import in each file's syntax tree, at any depth (an import inside
a function runs on the host too), so a file the daemon starts to import, or
stops importing, fails here until the list says the same.
"""

from __future__ import annotations

import ast
import os
import re

import yaml

from ansible_collections.berth.ports.plugins.module_utils import agent_client
from ansible_collections.berth.ports.plugins.module_utils.agent import client

COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))
MODULE_UTILS = os.path.join(COLLECTION, "plugins", "module_utils")
ROLE = os.path.join(COLLECTION, "roles", "ports_agent")
PACKAGE = "ansible_collections.berth.ports"
# The commands the role installs; each imports its main() from one module.
COMMAND_TEMPLATES = ("berth-ports.j2", "berth-ports-metrics.j2")
# What services on the host import (roles/ports_agent/README.md): the client
# library's public path, installed though the commands do not import it.
CLIENT_LIBRARY = os.path.join(MODULE_UTILS, "agent_client.py")
MAIN_IMPORT = re.compile(r"^from (%s(?:\.\w+)+) import main\b" % re.escape(PACKAGE), re.MULTILINE)


def module_file(root: str, dotted: str):
    """The file of ``dotted`` (a name under PACKAGE) in the tree at ``root``, or None."""
    base = os.path.join(root, *dotted[len(PACKAGE) + 1:].split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def imported_files(root: str, path: str):
    """The collection files ``path`` imports, directly."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = set()
    here = os.path.relpath(os.path.dirname(path), root).split(os.sep)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            required, optional = [alias.name for alias in node.names], []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved from this file's package
                parts = here[:len(here) - node.level + 1] + ([module] if module else [])
                module = ".".join([PACKAGE] + parts)
            # `from package import name`: name may be a submodule or an attribute
            required, optional = [module], ["%s.%s" % (module, alias.name) for alias in node.names]
        else:
            continue
        for name in required + optional:
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            target = module_file(root, name)
            if target is not None:
                found.add(target)
            elif name in required and not os.path.isdir(os.path.join(root, *name.split(".")[3:])):
                raise AssertionError("%s imports %s, which is not in the collection" % (path, name))
    return found


def import_closure(root: str, entries):
    closure, todo = set(), list(entries)
    while todo:
        path = todo.pop()
        if path not in closure:
            closure.add(path)
            todo.extend(imported_files(root, path))
    return closure


def command_entries():
    entries = []
    for name in COMMAND_TEMPLATES:
        with open(os.path.join(ROLE, "templates", name), encoding="utf-8") as handle:
            modules = MAIN_IMPORT.findall(handle.read())
        assert len(modules) == 1, "%s: expected one `from %s... import main`, found %r" % (name, PACKAGE, modules)
        entries.append(module_file(COLLECTION, modules[0]))
        assert entries[-1] is not None, "%s imports main from %s, which does not exist" % (name, modules[0])
    return entries


def role_library():
    with open(os.path.join(ROLE, "vars", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["__ports_agent_library"]


def test_the_role_installs_exactly_the_daemons_import_closure():
    closure = import_closure(COLLECTION, command_entries() + [CLIENT_LIBRARY])
    needed = sorted(os.path.relpath(path, MODULE_UTILS).replace(os.sep, "/") for path in closure)
    listed = role_library()
    assert sorted(set(listed) - set(needed)) == [], "listed in vars/main.yml, imported by nothing the host runs"
    assert sorted(set(needed) - set(listed)) == [], "imported on the host, missing from vars/main.yml"
    assert listed == sorted(set(listed)), "keep __ports_agent_library sorted, each file once"


def test_the_commands_are_the_agent_cli_and_the_metrics_writer():
    names = sorted(os.path.relpath(path, MODULE_UTILS) for path in command_entries())
    assert names == [os.path.join("agent", "cli.py"), os.path.join("agent", "metrics.py")]


def test_the_closure_follows_every_form_of_import(tmp_path):
    """A form the walker missed would let the list lose a file the host needs."""
    utils = tmp_path / "plugins" / "module_utils"
    (utils / "sub").mkdir(parents=True)
    prefix = PACKAGE + ".plugins.module_utils"
    files = {
        "entry.py": "import os\nfrom %s import a\nfrom %s.sub.b import B\n\ndef late():\n    import %s.c\n" % ((prefix,) * 3),
        "a.py": "from .sub import d\n",
        "sub/b.py": "from ..e import E\n",
        "c.py": "",
        "sub/d.py": "",
        "e.py": "",
        "unused.py": "",
    }
    for name, text in files.items():
        (utils / name).write_text(text)
    closure = import_closure(str(tmp_path), [str(utils / "entry.py")])
    assert sorted(os.path.relpath(p, str(utils)) for p in closure) == sorted(
        os.path.normpath(name) for name in files if name != "unused.py")


def test_the_old_client_path_is_the_client():
    """Services that import the client from its pre-issue-18 path get the same objects."""
    assert agent_client.__all__ == client.__all__
    for name in client.__all__:
        assert getattr(agent_client, name) is getattr(client, name)
