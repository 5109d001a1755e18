"""berth.ports as AWX runs it: the execution environment's definition, ansible-runner, job slices.

AWX (and Automation Platform) runs each job through ansible-runner, inside an
execution environment (EE), from a private data directory: `inventory/hosts`
(a script printing the inventory as JSON), `env/extravars` (the job template's
extra vars), `env/envvars`, and `project/` (the project's git checkout). A
sliced job template runs one such job per slice, each with its part of the
inventory and its own checkout of the project.

- The EE definition, meta/execution-environment.yml, is checked with
  `ansible-builder create` (the build context it generates) and `ansible-builder
  introspect` (what an image build reads from the installed collection). No
  image is built: that needs a container engine and ansible-builder's
  RHEL-family base images, neither of which this machine has.
- berth.ports.site runs through `ansible-runner run` on local hosts (one
  database each, a stand-in systemctl on PATH, as in test_fleet_registry_runs.py)
  with the firewall off; the result is read from runner's artifacts (status,
  rc, job_events/*.json), not from the play's output.
- Two slices of one inventory run at once, each from its own private data
  directory with the project's registry file: with the registry frozen, as
  under AWX, they give a service the same ports on every host, and an owner
  the registry does not name fails both with the entry to add.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows

from playbook_support import stand_in_systemctl

try:
    import ansible_builder  # noqa: F401  pylint: disable=unused-import
    import ansible_runner  # noqa: F401  pylint: disable=unused-import
    MISSING = ""
except ImportError as exc:
    MISSING = "needs ansible-runner and ansible-builder (tests/requirements.txt): %s" % exc

pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "-")

BIN = Path(sys.executable).parent
COLLECTION = Path(__file__).resolve().parents[2]  # .../ansible_collections/berth/ports
COLLECTIONS = COLLECTION.parents[2]  # the folder holding ansible_collections/


def tool(name):
    """The venv's copy of an entry point, else the one on PATH."""
    return str(BIN / name) if (BIN / name).exists() else (shutil.which(name) or name)


def port_set(spec):
    """The ports of "25031", "25031-25033" or 25031."""
    first, _dash, last = str(spec).partition("-")
    return set(range(int(first), int(last or first) + 1))


def run(cmd, **kwargs):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=300, **kwargs)


# ------------------------------------------------------------ the EE definition

def test_ansible_builder_create_asks_for_the_collection_and_what_it_needs(tmp_path):
    """The definition's paths are relative to the collection root (introspection's rule), so it is
    given to `ansible-builder create` from there, as meta/execution-environment.yml tells users."""
    definition = yaml.safe_load((COLLECTION / "meta" / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    root = tmp_path / "checkout"
    (root / "meta").mkdir(parents=True)
    shutil.copy(COLLECTION / "meta" / "execution-environment.yml", root / "execution-environment.yml")
    shutil.copy(COLLECTION / "meta" / "ee-requirements.txt", root / "meta" / "ee-requirements.txt")
    context = tmp_path / "context"
    done = run([tool("ansible-builder"), "create", "-f", str(root / "execution-environment.yml"), "-c", str(context)], cwd=root)
    assert done.returncode == 0, done.stdout

    build = context / "_build"
    pip_lines = [line.split("#")[0].strip() for line in (build / "requirements.txt").read_text().splitlines()]
    assert "jmespath>=1.0.0" in pip_lines
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    names = [c["name"] for c in galaxy["collections"]]
    assert names[0] == "berth.ports" and "ansible.posix" in names  # galaxy.yml's dependency
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "requirements.yml" in containerfile
    assert "introspect.py introspect" in containerfile  # the collections' own requirements join at build time
    assert "ansible-core>=2.19.0" in containerfile and "ansible-runner" in containerfile
    assert definition["images"]["base_image"]["name"] in containerfile


def test_ansible_builder_introspect_finds_jmespath_in_the_installed_collection():
    """What the image build does with every collection it installs: berth.ports asks for jmespath."""
    done = run([tool("ansible-builder"), "introspect", "--sanitize", str(COLLECTIONS)])
    assert done.returncode == 0, done.stdout
    found = yaml.safe_load(done.stdout)
    assert "jmespath>=1.0.0  # from collection berth.ports" in found["python"], done.stdout
    assert found["system"] == []


# ------------------------------------------------------------ ansible-runner jobs

SITE = """- name: berth.ports.site, as the project's playbook
  ansible.builtin.import_playbook: berth.ports.site
"""

INVENTORY_SCRIPT = """#!%s
# AWX writes a job's inventory as a script that prints it as JSON.
import json
import sys

DATA = %r
print(json.dumps(DATA if "--list" in sys.argv else {}))
"""

REGISTRY_TASK = "Take the fleet's ports from the registry, or choose them there"
ALLOCATE_TASK = "Allocate and free the ports of every service"


class Job:
    """One ansible-runner job from a private data directory laid out as AWX lays it out."""

    def __init__(self, root, hosts, services, registry_text=None, **extravars):
        self.root = Path(root)
        self.hosts = hosts
        self.ident = "job-" + self.root.name
        project = self.root / "project"
        project.mkdir(parents=True)
        (project / "site.yml").write_text(SITE)
        self.registry = project / "berth-ports-registry.yml"  # the project's git holds it
        if registry_text is not None:
            self.registry.write_text(registry_text)
        bindir = stand_in_systemctl(str(self.root))
        hostvars = {name: {"service_ports_db_path": str(self.db(name)),
                           "service_ports_unit_dir": str(self.root / name / "system")} for name in hosts}
        data = {"fleet": {"hosts": list(hosts), "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "service_ports_fleet_consistent": True,
            "service_ports_restart": False,
            "berth_services": services,
        }}, "_meta": {"hostvars": hostvars}}
        inventory = self.root / "inventory"
        inventory.mkdir()
        (inventory / "hosts").write_text(INVENTORY_SCRIPT % (sys.executable, data))
        (inventory / "hosts").chmod(0o755)
        env = self.root / "env"
        env.mkdir()
        # The registry's default, beside the inventory, is the job's own inventory folder under AWX,
        # gone with the job, and playbook_dir in berth.ports.site is the collection's playbooks
        # folder: the job template names the project's file, /runner/project/... inside an EE.
        extra = {"berth_hosts_group": "fleet", "berth_firewall_enabled": False,
                 "service_ports_fleet_registry": str(self.registry)}
        extra.update(extravars)
        (env / "extravars").write_text(yaml.safe_dump(extra))
        (env / "envvars").write_text(yaml.safe_dump({
            "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS)),
            "PATH": os.pathsep.join([bindir, str(BIN), os.environ.get("PATH", os.defpath)]),
            "ANSIBLE_NOCOLOR": "1",
        }))
        self.proc = None

    def db(self, name):
        return self.root / name / "ports.db"

    def start(self):
        self.proc = subprocess.Popen([tool("ansible-runner"), "run", str(self.root), "-p", "site.yml", "--ident", self.ident],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self

    def wait(self):
        out = self.proc.communicate(timeout=300)[0]
        artifacts = self.root / "artifacts" / self.ident
        assert artifacts.is_dir(), out
        return Result(artifacts, out)

    def ports(self, owner):
        """Host -> the owner's tcp ranges in its database ("" where it holds none)."""
        found = {}
        for name in self.hosts:
            rows = load_rows(AllocationStore(str(self.db(name)))) if self.db(name).exists() else []
            found[name] = ",".join(str(r.range) for r in rows if r.owner == owner and r.proto == "tcp")
        return found


class Result:
    """A finished job as AWX sees it: artifacts/<ident>/status, rc and job_events/."""

    def __init__(self, artifacts, out):
        self.status = (artifacts / "status").read_text().strip()
        self.rc = int((artifacts / "rc").read_text().strip())
        self.events = []
        for path in sorted(glob.glob(str(artifacts / "job_events" / "*.json"))):
            with open(path) as handle:
                self.events.append(json.load(handle))
        self.out = out  # only for assertion messages

    def on(self, event, task=None):
        """event_data of the EVENT events (runner_on_ok, runner_on_failed, ...), of TASK if given."""
        return [e["event_data"] for e in self.events
                if e.get("event") == event and (task is None or e["event_data"].get("task") == task)]

    def stats(self):
        return [e["event_data"] for e in self.events if e.get("event") == "playbook_on_stats"][-1]


API_WEB = [{"unit": "api.service", "tcp_ports_demand": 2}, {"unit": "web.service"}]


def test_site_through_ansible_runner_reads_as_awx_reads_it(tmp_path):
    job = Job(tmp_path / "site", ["h0", "h1"], API_WEB).start()
    result = job.wait()
    assert (result.status, result.rc) == ("successful", 0), result.out
    assert result.stats()["failures"] == {} and result.stats()["dark"] == {}

    chosen = result.on("runner_on_ok", REGISTRY_TASK)
    assert len(chosen) == 1, result.out  # run once for the play's hosts
    res = chosen[0]["res"]
    assert res["changed"] and res["registry"] == str(job.registry)
    fleet_ports = {(p["owner"], p["proto"]): port_set(p["ports"]) for p in res["ports"]}
    assert set(fleet_ports) == {("api", "tcp"), ("web", "tcp")}
    assert len(fleet_ports[("api", "tcp")]) == 2 and not fleet_ports[("api", "tcp")] & fleet_ports[("web", "tcp")]

    allocated = result.on("runner_on_ok", ALLOCATE_TASK)
    assert sorted(e["host"] for e in allocated) == ["h0", "h1"]
    for event in allocated:
        held = {(a["owner"], a["proto"]): set(a["ports"]) for a in event["res"]["allocations"]}
        assert held == fleet_ports, event
    # the firewall play ran no firewalld task
    assert not [e for e in result.events if str(e.get("event_data", {}).get("task_action", "")).endswith("firewalld")]

    registry = yaml.safe_load(job.registry.read_text())
    assert registry["version"] == 1
    assert {(k, "tcp"): port_set(v["tcp"]) for k, v in registry["fleets"]["default"].items()} == fleet_ports
    for owner in ("api", "web"):  # each host's database, read with the collection's own code
        assert [port_set(ports) for ports in job.ports(owner).values()] == [fleet_ports[(owner, "tcp")]] * 2


REGISTRY = "version: 1\nfleets:\n  default:\n    api: {tcp: 25040-25041}\n    web: {tcp: 25050}\n"


def slices(tmp_path, services, registry_text):
    """Two slices of one four-host inventory started together, each its own private data directory
    with its own copy of the project (registry included), the registry frozen as under AWX."""
    inventory = ["h0", "h1", "h2", "h3"]
    jobs = [Job(tmp_path / ("slice%d" % number), half, services, registry_text, service_ports_fleet_registry_frozen=True)
            for number, half in ((1, inventory[:2]), (2, inventory[2:]))]
    for job in jobs:
        job.start()
    return jobs, [job.wait() for job in jobs]


def test_job_slices_with_the_frozen_registry_agree_on_every_port(tmp_path):
    jobs, results = slices(tmp_path, API_WEB, REGISTRY)
    for job, result in zip(jobs, results):
        assert (result.status, result.rc) == ("successful", 0), result.out
        assert sorted(e["host"] for e in result.on("runner_on_ok", ALLOCATE_TASK)) == job.hosts
        assert not result.on("runner_on_ok", REGISTRY_TASK)[0]["res"]["changed"]
        assert job.registry.read_text() == REGISTRY  # frozen: never written
    # the registry's ports, not the lowest free ones, in both halves
    assert {**jobs[0].ports("api"), **jobs[1].ports("api")} == dict.fromkeys(["h0", "h1", "h2", "h3"], "25040-25041")
    assert {**jobs[0].ports("web"), **jobs[1].ports("web")} == dict.fromkeys(["h0", "h1", "h2", "h3"], "25050-25050")


def test_job_slices_fail_an_owner_the_frozen_registry_does_not_name_with_the_entry_to_add(tmp_path):
    services = API_WEB + [{"unit": "cache.service"}]
    jobs, results = slices(tmp_path, services, REGISTRY)
    for job, result in zip(jobs, results):
        assert result.status == "failed" and result.rc != 0, result.out
        failed = result.on("runner_on_failed", REGISTRY_TASK)
        assert len(failed) == 1, result.out
        msg = failed[0]["res"]["msg"]
        assert "owner cache/tcp is not in the registry, which is frozen and never written" in msg
        assert str(job.registry) in msg and "add it by hand and commit it" in msg and "cache: {tcp:" in msg
        assert not result.on("runner_on_ok", ALLOCATE_TASK)  # failed before any host changed
        assert set(job.ports("api").values()) == {""}
        assert job.registry.read_text() == REGISTRY
