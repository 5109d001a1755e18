# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection artifact: what `ansible-galaxy collection build` ships.

A copy of the work tree (every file git tracks or would track) gets the junk
a used checkout collects, planted where the allow-list could let it in:
databases with their -wal, -journal and -verified companions, logs, caches,
compiled Python, nested .gitignore files, an old artifact. The artifact built
from that copy must hold exactly the work tree's files that SHIPPED() allows,
the rule galaxy.yml's `manifest:` writes as distlib directives, so a new
module needs no change here but a stray file fails.

Then the artifact is installed in a temporary collections path, the demo
playbook runs from there (berth.ports.demo) and `ansible-galaxy collection
verify --offline` must find the installed files unchanged: the demo keeps its
database outside the collection. And galaxy-importer (its own venv, from
tests/artifact/requirements.txt; `make artifact` builds it under .build/)
imports the artifact, ansible-test disabled, with no ERROR line (its own or
relayed from ansible-lint, as the fleet scenario's import_playbook gave); without
GALAXY_IMPORTER_PYTHON that test is skipped.

Run by `make artifact` from the checkout (not the .build copy: git lists the
files here).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ANSIBLE_GALAXY = str(BIN / "ansible-galaxy") if (BIN / "ansible-galaxy").exists() else "ansible-galaxy"
ANSIBLE_PLAYBOOK = str(BIN / "ansible-playbook") if (BIN / "ansible-playbook").exists() else "ansible-playbook"

# ---------------------------------------------------------------- the rule
# Kept in step with galaxy.yml's manifest directives.
SINGLE_FILES = {"README.md", "COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "tests/config.yml"}
WHOLE_TREES = ("roles", "docs", "tests/unit", "tests/integration")
JUNK_NAMES = ("*.pyc", "*.pyo", "*.db", "*.db-*", "*-verified", "*.sqlite", "*.sqlite3",
              "*.log", "*.bak", "*.swp", "*~")
ADDED_BY_BUILD = {"MANIFEST.json", "FILES.json"}


def shipped(path: str) -> bool:
    """Whether the work tree's file PATH (relative, '/'-separated) belongs in the artifact."""
    parts = path.split("/")
    name, folder = parts[-1], "/".join(parts[:-1])
    if any(part.startswith(".") or part == "__pycache__" for part in parts):
        return False
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in JUNK_NAMES):
        return False
    if path in SINGLE_FILES:
        return True
    if folder == "meta":  # .txt: the EE requirement files meta/execution-environment.yml names
        return name.endswith((".yml", ".yaml", ".txt"))
    if folder == "playbooks":
        return name.endswith((".yml", ".yaml"))
    if folder == "tests/sanity":
        return fnmatch.fnmatchcase(name, "ignore-*.txt")
    if parts[0] == "plugins" and len(parts) > 1:
        return name.endswith((".py", ".yml", ".yaml"))
    return any(path.startswith(tree + "/") for tree in WHOLE_TREES)


# What a used work tree leaves lying around, inside the shipped trees too.
JUNK = [
    "ports.db", "ports.db-wal", "ports.db-journal", "ports.db-shm", "ports.db-verified", "x.log",
    "berth-ports-0.9.0.tar.gz", "demo/ports.db", "demo/ports.db-verified",
    "roles/service_ports/ports.db", "roles/ports_firewall/files/ports.db-wal",
    "tests/integration/targets/port_info/ports.db-journal", "tests/unit/ports.db-verified",
    "tests/unit/plugins/ports.sqlite", "roles/ports_agent/x.log", "tests/integration/x.log",
    "playbooks/demo/ports.db", "playbooks/x.log",
    "extensions/molecule/.cache/f", "roles/service_ports/.cache/f",
    "tests/unit/.pytest_cache/x", "tests/unit/.pytest_cache/v/cache/nodeids",
    "tests/unit/plugins/module_utils/.hypothesis/examples/0a/1b",
    "tests/integration/targets/port_allocate/.cache/x.yml",
    "plugins/modules/__pycache__/x.pyc", "plugins/module_utils/__pycache__/allocator.cpython-311.pyc",
    "tests/unit/plugins/modules/__pycache__/conftest.cpython-311-pytest-9.2.0.pyc",
    "roles/ports_firewall/.gitignore", "tests/integration/.gitignore", "plugins/.gitignore",
    "roles/service_ports/templates/berth-ports.conf.j2~", "roles/ports_agent/tasks/.main.yml.swp",
    "playbooks/site.yml.bak", "tests/output/junit/x.xml", "benchmarks/results.json",
]

DEVELOPER_ONLY = ("run", "Makefile", ".ci/", "benchmarks/", "extensions/", "tests/reliability/",
                  "tests/utils/", "tests/artifact/", "tests/requirements.txt", "playbooks/inventory/",
                  "changelogs/fragments/", "galaxy.yml")


def work_tree_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, stdout=subprocess.PIPE).stdout
    return sorted(p for p in out.decode("utf-8").split("\0") if p and os.path.isfile(ROOT / p))


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, **kwargs)


def clean_env(home: Path) -> dict:
    """The environment for ansible commands: a HOME of their own, no stray config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "GALAXY_IMPORTER_", "XDG_", "PYTHON"))}
    env.update(HOME=str(home), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=os.pathsep.join([str(BIN), env.get("PATH", os.defpath)]))
    return env


class Artifact:
    def __init__(self, path: Path, tree: list[str], importer):
        self.path = path
        self.tree = tree
        self.importer = importer  # galaxy-importer, started in the background, or None

    def members(self) -> dict[str, tarfile.TarInfo]:
        with tarfile.open(self.path) as tar:
            return {m.name: m for m in tar.getmembers()}

    def read(self, name: str) -> bytes:
        with tarfile.open(self.path) as tar:
            return tar.extractfile(name).read()


def start_importer(artifact: Path, work: Path):
    python = os.environ.get("GALAXY_IMPORTER_PYTHON")
    if not python:
        return None
    work.mkdir()
    cfg = work / "galaxy-importer.cfg"
    cfg.write_text(
        "[galaxy-importer]\n"
        "run_ansible_test = False\n"
        "run_ansible_lint = True\n"
        "offline_ansible_lint = True\n"
        "check_changelog = True\n"
        f"ansible_local_tmp = {work / 'ansible-tmp'}\n"
        f"tmp_root_dir = {work}\n", encoding="utf-8")
    env = clean_env(work)
    env.update(GALAXY_IMPORTER_CONFIG=str(cfg),
               PATH=os.pathsep.join([str(Path(python).parent), env["PATH"]]))
    return subprocess.Popen([python, "-m", "galaxy_importer.main", str(artifact)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Artifact:
    tree = work_tree_files()
    src = tmp_path_factory.mktemp("tree") / "ports"
    for rel in tree:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    for rel in JUNK:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("junk\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("dist")
    build = run([ANSIBLE_GALAXY, "collection", "build", "--output-path", str(out), str(src)],
                env=clean_env(tmp_path_factory.mktemp("home")))
    assert build.returncode == 0, build.stdout
    (path,) = out.glob("berth-ports-*.tar.gz")
    importer = start_importer(path, tmp_path_factory.getbasetemp() / "importer")
    yield Artifact(path, tree, importer)
    if importer and importer.poll() is None:
        importer.kill()
        importer.communicate()


def test_artifact_holds_exactly_the_allowed_files(artifact):
    expected = {p for p in artifact.tree if shipped(p)} | ADDED_BY_BUILD
    members = artifact.members()
    files = {name for name, m in members.items() if m.isfile()}
    assert not [name for name, m in members.items() if not (m.isfile() or m.isdir())]
    assert sorted(files - expected) == [], "shipped but not allowed"
    assert sorted(expected - files) == [], "allowed but not shipped"
    # FILES.json lists the same files
    listed = {e["name"] for e in json.loads(artifact.read("FILES.json"))["files"] if e["ftype"] == "file"}
    assert listed == files - ADDED_BY_BUILD


def test_rule_keeps_what_users_need_and_nothing_else(artifact):
    """The rule itself: what a user needs is in, developer-only content is out."""
    shipped_files = {p for p in artifact.tree if shipped(p)}
    for needed in ("README.md", "COPYING", "meta/runtime.yml", "changelogs/changelog.yaml",
                   "plugins/modules/port_allocate.py", "plugins/module_utils/allocator.py",
                   "plugins/lookup/allocations.py", "plugins/doc_fragments/ports.py",
                   "roles/service_ports/tasks/main.yml", "roles/service_ports/meta/argument_specs.yml",
                   "roles/service_ports/templates/berth-ports.conf.j2",
                   "playbooks/demo.yml", "playbooks/site.yml", "playbooks/report.yml",
                   "tests/config.yml", "tests/unit/plugins/modules/test_port_allocate.py",
                   "tests/integration/targets/port_allocate/tasks/main.yml"):
        assert needed in shipped_files
    for path in artifact.tree:
        if path.startswith(DEVELOPER_ONLY) or path in DEVELOPER_ONLY or path.endswith(".gitignore"):
            assert not shipped(path), path
    for path in JUNK:
        assert not shipped(path), path


def test_installed_demo_leaves_the_collection_verified(artifact, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    collections = tmp_path / "collections"
    env = clean_env(home)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    install = run([ANSIBLE_GALAXY, "collection", "install", "--no-deps", "--offline",
                   "-p", str(collections), str(artifact.path)], env=env)
    assert install.returncode == 0, install.stdout

    demo = run([ANSIBLE_PLAYBOOK, "berth.ports.demo", "-i", "localhost,", "-c", "local",
                "-e", f"ansible_python_interpreter={sys.executable}"], env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout
    assert "TCP_PORT=" in demo.stdout
    # XDG_CACHE_HOME unset: the demo's default is ~/.cache/berth.ports/demo/ports.db
    assert (home / ".cache/berth.ports/demo/ports.db").is_file(), demo.stdout

    verify = run([ANSIBLE_GALAXY, "collection", "verify", "--offline", "-p", str(collections), "berth.ports"],
                 env=env)
    assert verify.returncode == 0, verify.stdout
    assert "modified content" not in verify.stdout
    assert "Successfully verified" in verify.stdout, verify.stdout


def test_galaxy_importer_reports_no_errors(artifact):
    if artifact.importer is None:
        pytest.skip("GALAXY_IMPORTER_PYTHON not set (make artifact sets it)")
    try:
        output = artifact.importer.communicate(timeout=600)[0]
    except subprocess.TimeoutExpired:
        artifact.importer.kill()
        output = artifact.importer.communicate()[0]
        pytest.fail("galaxy-importer still running after 10 minutes:\n" + output)
    # its own errors ("ERROR: ...") and the ones it relays from ansible-lint's
    # log as warnings ("WARNING: ERROR    Failed to find berth.ports.site playbook.")
    errors = [line for line in output.splitlines() if re.match(r"(WARNING: )?ERROR\b", line)]
    assert errors == [], output
    assert artifact.importer.returncode == 0, output
    assert "Importer processing completed successfully" in output, output
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    print("galaxy-importer: %d warning(s)\n%s" % (len(warnings), "\n".join(warnings)))
