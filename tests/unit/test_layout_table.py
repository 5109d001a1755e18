# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CONTRIBUTING.md's "Where things are" table names every folder and every
code file of plugins/, and nothing that is not there: a newcomer's map that
cannot drift from the tree."""

from __future__ import annotations

import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLUGINS = os.path.join(ROOT, "plugins")


def layout_table() -> str:
    with open(os.path.join(ROOT, "CONTRIBUTING.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("## Where things are", 1)[1]
    return section.split("\n## ", 1)[0]


def named(table: str) -> set:
    return set(re.findall(r"`([^`]+)`", table))


def test_every_folder_of_plugins_is_in_the_table():
    table = layout_table()
    folders = ["plugins/%s/" % name for name in sorted(os.listdir(PLUGINS))
               if os.path.isdir(os.path.join(PLUGINS, name)) and name != "__pycache__"]
    folders.append("plugins/module_utils/agent/")
    assert [folder for folder in folders if "`%s`" % folder not in table] == []


def test_every_helper_file_is_named_and_every_named_helper_exists():
    names = named(layout_table())
    for folder in ("module_utils", "plugin_utils"):
        stems = {name[:-3] for name in os.listdir(os.path.join(PLUGINS, folder)) if name.endswith(".py")}
        assert sorted(stems - names) == [], "in plugins/%s/, missing from the table" % folder
    listed = {name for name in names if re.fullmatch(r"[a-z_]+", name)}
    existing = {os.path.basename(path)[:-3] for path in glob.glob(os.path.join(PLUGINS, "**", "*.py"), recursive=True)}
    # Plugin names and folders the table may name besides files.
    existing.update({"berth-ports", "demo", "site", "report", "map", "allocations", "__ports_agent_library"})
    for role in os.listdir(os.path.join(ROOT, "roles")):
        existing.add(role)
    existing.update(os.path.basename(path) for path in os.listdir(os.path.join(ROOT, "extensions", "molecule")))
    assert sorted(listed - existing) == [], "named in the table, not in the tree"
