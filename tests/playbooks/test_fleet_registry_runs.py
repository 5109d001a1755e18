"""The fleet registry as users run it: service_ports on local hosts (one database each) through
ansible-playbook, under serial, --limit, check mode, a frozen registry and two runs at once.

Each host is a local connection with its own database and unit directory; a
stand-in systemctl on PATH lets the role's daemon-reload succeed without
systemd. Molecule's fleet_consistent scenario runs the same role on real hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings

from playbook_support import playbook_env

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="needs ansible-playbook on PATH")

SETTINGS = build_settings("25000-25999", [], False)

PLAY = """- name: Fleet services
  hosts: fleet
  gather_facts: false
  serial: %d
  tasks:
    - name: Apply service_ports
      ansible.builtin.include_role:
        name: berth.ports.service_ports
      vars:
        service_ports_services: "{{ berth_services }}"
"""


REPORT_PLAY = """- name: The fleet report
  ansible.builtin.import_playbook: berth.ports.report

- name: Keep what it found
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Save berth_report
      ansible.builtin.copy:
        content: "{{ berth_report | to_json }}"
        dest: %s
        mode: "0600"
"""


class Fleet:
    """Local hosts h0..hN-1, a registry file, and ansible-playbook runs against them."""

    def __init__(self, root, count, services, fallback="fail", frozen=False, per_host=None):
        self.root = str(root)
        self.names = ["h%d" % i for i in range(count)]
        # The default registry: beside the playbook, which start() writes into root.
        self.registry = os.path.join(self.root, "berth-ports-registry.yml")
        os.makedirs(os.path.join(self.root, "inventory"))
        self.env = playbook_env(self.root)
        hosts = {}
        for name in self.names:
            hosts[name] = {"service_ports_db_path": self.db(name),
                           "service_ports_unit_dir": os.path.join(self.root, name, "system")}
            hosts[name].update((per_host or {}).get(name, {}))
        self.inventory = os.path.join(self.root, "inventory", "hosts.json")
        with open(self.inventory, "w") as handle:
            json.dump({"fleet": {"hosts": hosts, "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "service_ports_fleet_consistent": True,
                "service_ports_fleet_fallback": fallback,
                "service_ports_fleet_registry_frozen": frozen,
                "service_ports_restart": False,
                "berth_services": services,
            }}}, handle)

    def db(self, name):
        return os.path.join(self.root, name, "ports.db")

    def start(self, serial=0, extra=()):
        play = os.path.join(self.root, "play-%d.yml" % serial)
        with open(play, "w") as handle:
            handle.write(PLAY % serial)
        return subprocess.Popen(["ansible-playbook", "-i", self.inventory, play] + list(extra), env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, serial=0, extra=()):
        proc = self.start(serial, extra)
        out = proc.communicate(timeout=600)[0]
        return proc.returncode, out

    def report(self, *extra):
        """berth.ports.report over the fleet; its berth_report fact, read back from a JSON file."""
        saved = os.path.join(self.root, "report.json")
        play = os.path.join(self.root, "report.yml")
        with open(play, "w") as handle:
            handle.write(REPORT_PLAY % json.dumps(saved))
        done = subprocess.run(["ansible-playbook", "-i", self.inventory, play, "-e", "berth_hosts_group=fleet"] + list(extra),
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout
        with open(saved) as handle:
            return json.load(handle)

    def hold(self, name, owner, port):
        """Give ``owner`` static ``port`` on host ``name`` before the play, as another team would."""
        allocate(AllocationStore(self.db(name)), build_allocation_request(owner, port=port, settings=SETTINGS), SETTINGS)

    def ports(self, owner):
        """Host -> the owner's tcp ports there ("" where it holds none)."""
        found = {}
        for name in self.names:
            rows = load_rows(AllocationStore(self.db(name))) if os.path.exists(self.db(name)) else []
            found[name] = ",".join(str(r.range) for r in rows if r.owner == owner and r.proto == "tcp")
        return found

    def registry_entries(self, fleet="default"):
        with open(self.registry) as handle:
            return yaml.safe_load(handle)["fleets"][fleet]


API = [{"unit": "api.service", "tcp_ports_demand": 2}]


def port_set(spec):
    """The ports of "25031", "25031-25033" or 25031."""
    first, _dash, last = str(spec).partition("-")
    return set(range(int(first), int(last or first) + 1))


def test_a_rolling_update_gives_the_registry_port_or_fails_clearly_never_another(tmp_path):
    """serial 3 over six hosts, the last three holding 25031 for another owner (issue 17's first case)."""
    fleet = Fleet(tmp_path, 6, API)
    for name in ("h3", "h4", "h5"):
        fleet.hold(name, "legacy", 25031)
    rc, out = fleet.run(serial=3)
    assert rc != 0, out
    assert fleet.registry_entries() == {"api": {"tcp": "25031-25032"}}
    assert fleet.ports("api") == {"h0": "25031-25032", "h1": "25031-25032", "h2": "25031-25032", "h3": "", "h4": "", "h5": ""}
    for name in ("h3", "h4", "h5"):
        assert "host %s: owner api/tcp cannot take its fleet ports 25031-25032, blocked by owner legacy (25031-25031)" % name in out

    # fallback local: the blocked hosts take a port of their own, reported as drift; the registry stays
    fleet_local = Fleet(tmp_path / "local", 6, API, fallback="local")
    for name in ("h3", "h4", "h5"):
        fleet_local.hold(name, "legacy", 25031)
    rc, out = fleet_local.run(serial=3)
    assert rc == 0, out
    held = fleet_local.ports("api")
    assert [held[n] for n in ("h0", "h1", "h2")] == ["25031-25032"] * 3
    assert all(held[n] and held[n] != "25031-25032" for n in ("h3", "h4", "h5")), held
    assert out.count("takes a local port for") == 3 and "(drift, see berth.ports.report)" in out
    assert fleet_local.registry_entries() == {"api": {"tcp": "25031-25032"}}


def test_a_joining_host_under_limit_takes_the_registry_ports(tmp_path):
    """The registry written by hand (Harmony's table); hosts join one at a time with --limit."""
    fleet = Fleet(tmp_path, 3, API)
    with open(fleet.registry, "w") as handle:
        handle.write("fleets:\n  default:\n    api: {tcp: 25040-25041}\n    ceph-rgw: {tcp: 25080}\n")
    rc, out = fleet.run(extra=["--limit", "h0"])
    assert rc == 0, out
    assert fleet.ports("api")["h0"] == "25040-25041"  # not 25031, the lowest free port on h0
    fleet.hold("h1", "metrics", 25041)
    rc, out = fleet.run(extra=["--limit", "h1"])
    assert rc != 0
    assert "host h1: owner api/tcp cannot take its fleet ports 25040-25041, blocked by owner metrics (25041-25041)" in out
    assert fleet.ports("api")["h1"] == ""
    rc, out = fleet.run(extra=["--limit", "h2"])
    assert rc == 0, out
    assert fleet.ports("api")["h2"] == "25040-25041"
    # nothing new to remember: the hand-written file is left as it was
    assert fleet.registry_entries() == {"api": {"tcp": "25040-25041"}, "ceph-rgw": {"tcp": 25080}}


def test_two_runs_at_once_adding_different_owners_both_land_on_different_ports(tmp_path):
    per_host = {"h0": {"berth_services": [{"unit": "web.service"}]},
                "h1": {"berth_services": [{"unit": "db.service", "tcp_ports_demand": 3}]}}
    fleet = Fleet(tmp_path, 2, [], per_host=per_host)
    first, second = fleet.start(extra=["--limit", "h0"]), fleet.start(extra=["--limit", "h1"])
    outs = [proc.communicate(timeout=600)[0] for proc in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    entries = fleet.registry_entries()
    assert sorted(entries) == ["db", "web"]
    web, db = port_set(entries["web"]["tcp"]), port_set(entries["db"]["tcp"])
    assert port_set(fleet.ports("web")["h0"]) == web and port_set(fleet.ports("db")["h1"]) == db
    assert len(web) == 1 and len(db) == 3 and not web & db, entries


def test_a_frozen_registry_refuses_an_owner_it_does_not_name_and_is_never_written(tmp_path):
    fleet = Fleet(tmp_path, 2, API + [{"unit": "web.service"}], frozen=True)
    text = "fleets:\n  default:\n    web: {tcp: 25050}\n"
    with open(fleet.registry, "w") as handle:
        handle.write(text)
    rc, out = fleet.run()
    assert rc != 0
    assert "owner api/tcp is not in the registry, which is frozen and never written" in out
    assert fleet.registry in out
    assert fleet.ports("web") == {"h0": "", "h1": ""}  # failed before any host changed
    with open(fleet.registry) as handle:
        assert handle.read() == text


def test_check_mode_shows_the_registry_change_and_writes_nothing(tmp_path):
    fleet = Fleet(tmp_path, 2, API)
    rc, out = fleet.run(extra=["--check", "--diff"])
    assert rc == 0, out
    assert "+    api:" in out and "+      tcp: 25031-25032" in out
    assert not os.path.exists(fleet.registry)
    assert fleet.ports("api") == {"h0": "", "h1": ""}
    rc, out = fleet.run(extra=["--diff"])
    assert rc == 0, out
    assert fleet.registry_entries() == {"api": {"tcp": "25031-25032"}}
    rc, out = fleet.run(extra=["--diff"])  # the second run changes nothing, the registry included
    assert rc == 0 and "changed=0" in out, out


def test_the_report_measures_drift_against_the_registry_until_every_host_converges(tmp_path):
    fleet = Fleet(tmp_path, 3, API)
    assert fleet.run()[0] == 0
    assert fleet.report("-e", "berth_fleet_registry=" + fleet.registry)["owners_differ"] == []
    # api grows to 3 ports on h0 alone: the registry keeps its first port and grows in place
    grown = json.dumps({"berth_services": [{"unit": "api.service", "tcp_ports_demand": 3}]})
    rc, out = fleet.run(extra=["--limit", "h0", "-e", grown])
    assert rc == 0, out
    assert fleet.registry_entries() == {"api": {"tcp": "25031-25033"}}
    held = {"h0": "25031-25033", "h1": "25031-25032", "h2": "25031-25032"}
    with_registry = fleet.report("-e", "berth_fleet_registry=" + fleet.registry)
    assert with_registry["registry"] == fleet.registry
    assert with_registry["owners_differ"] == [{"owner": "api", "proto": "tcp", "registry": "25031-25033", "hosts": held}]
    # h1 and h2 converge on their next run; then nothing drifts
    rc, out = fleet.run(extra=["-e", grown])
    assert rc == 0, out
    assert fleet.report("-e", "berth_fleet_registry=" + fleet.registry)["owners_differ"] == []


def test_the_default_registry_is_beside_the_playbook_and_never_in_the_inventory_or_the_collection(tmp_path):
    """An inventory directory would read the registry as inventory; berth.ports.site's playbook_dir is
    inside the collection: the collection's own playbook writes where ansible-playbook runs."""
    fleet = Fleet(tmp_path, 1, API)
    assert fleet.run()[0] == 0
    assert os.path.exists(fleet.registry)
    assert os.listdir(os.path.dirname(fleet.inventory)) == ["hosts.json"]
    workdir = tmp_path / "project"
    workdir.mkdir()
    proc = subprocess.run(["ansible-playbook", "-i", fleet.inventory, "berth.ports.site", "-e", "berth_hosts_group=fleet",
                           "-e", "berth_firewall_enabled=false"], cwd=str(workdir), env=fleet.env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout
    with open(str(workdir / "berth-ports-registry.yml")) as handle:
        assert yaml.safe_load(handle)["fleets"]["default"] == {"api": {"tcp": "25031-25032"}}
    collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    for root in filter(None, collections.split(os.pathsep)):
        for parent, unused_dirs, files in os.walk(root):
            assert "berth-ports-registry.yml" not in files, parent
