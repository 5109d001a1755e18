"""service_ports' exec_start (issue 19) as users run it: ansible-playbook on a local host with its own
database and unit directory; a stand-in systemctl on PATH lets the daemon-reload succeed without systemd.

Molecule's discovery scenario runs Debian's prometheus-node-exporter through the same drop-in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from playbook_support import playbook_env

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="needs ansible-playbook on PATH")

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter --web.listen-address=:${TCP_PORT}"

PLAY = """- name: Services with and without exec_start
  hosts: host
  gather_facts: false
  tasks:
    - name: Apply service_ports
      ansible.builtin.include_role:
        name: berth.ports.service_ports
      vars:
        service_ports_services: %s
"""


class Host:
    """One local host: a database, a unit directory, and ansible-playbook runs against it."""

    def __init__(self, root):
        self.root = str(root)
        self.env = playbook_env(self.root)
        self.unit_dir = os.path.join(self.root, "system")
        self.inventory = os.path.join(self.root, "hosts.json")
        with open(self.inventory, "w") as handle:
            json.dump({"all": {"hosts": {"host": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "service_ports_db_path": os.path.join(self.root, "ports.db"),
                "service_ports_unit_dir": self.unit_dir,
                "service_ports_restart": False,
            }}}}, handle)

    def run(self, services):
        play = os.path.join(self.root, "play.yml")
        with open(play, "w") as handle:
            handle.write(PLAY % json.dumps(services))
        done = subprocess.run(["ansible-playbook", "-i", self.inventory, play], env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
        return done.returncode, done.stdout

    def dropin(self, unit):
        with open(os.path.join(self.unit_dir, unit + ".d", "50-berth-ports.conf")) as handle:
            return handle.read()

    def service_lines(self, unit):
        """The drop-in's lines after [Service], comments left out."""
        lines = self.dropin(unit).splitlines()
        return [line for line in lines[lines.index("[Service]") + 1:] if not line.startswith("#")]


def test_exec_start_resets_then_sets_the_command_and_goes_when_removed(tmp_path):
    host = Host(tmp_path)
    services = [{"unit": "prometheus-node-exporter.service", "owner": "node-exporter", "exec_start": NODE_EXPORTER},
                {"unit": "web.service"}]
    rc, out = host.run(services)
    assert rc == 0, out
    lines = host.service_lines("prometheus-node-exporter.service")
    port = [line.split("=", 2)[2] for line in lines if line.startswith("Environment=TCP_PORT=")]
    assert len(port) == 1 and port[0].isdigit()
    # systemd: an empty ExecStart= clears the unit's list, the next line is the only command.
    assert lines[-2:] == ["ExecStart=", "ExecStart=" + NODE_EXPORTER]
    assert not [line for line in host.service_lines("web.service") if line.startswith("ExecStart")]

    rc, out = host.run(services)
    assert rc == 0, out
    assert "changed=0" in out, out

    services[0].pop("exec_start")
    rc, out = host.run(services)
    assert rc == 0, out
    assert not [line for line in host.service_lines("prometheus-node-exporter.service") if line.startswith("ExecStart")]


@pytest.mark.parametrize("exec_start", ["", "   ", "/usr/bin/a\nExecStartPre=/bin/evil", "/usr/bin/a\r", 42])
def test_bad_exec_start_fails_in_one_line_before_any_change(tmp_path, exec_start):
    host = Host(tmp_path)
    rc, out = host.run([{"unit": "exporter.service", "exec_start": exec_start}, {"unit": "web.service"}])
    assert rc != 0, out
    # Ansible prints the message twice (the error line and the result); each time on one line.
    lines = [line for line in out.splitlines() if "exec_start must be" in line]
    assert lines, out
    for line in lines:
        assert "service_ports: exporter.service: exec_start must be a non-empty command line without newlines, got" in line
    assert not os.path.exists(os.path.join(host.root, "ports.db")), "nothing allocated"
    assert not os.path.exists(host.unit_dir), "no drop-in written"


SINGLE_PLAY = """- name: One service, the single-service variables
  hosts: host
  gather_facts: false
  roles:
    - role: berth.ports.service_ports
      vars:
        service_ports_unit: exporter
        service_ports_exec_start: %s
"""


@pytest.mark.parametrize("exec_start", [None, NODE_EXPORTER])
def test_single_service_form(tmp_path, exec_start):
    host = Host(tmp_path)
    play = os.path.join(host.root, "single.yml")
    with open(play, "w") as handle:
        handle.write(SINGLE_PLAY % ("null" if exec_start is None else json.dumps(exec_start)))
    done = subprocess.run(["ansible-playbook", "-i", host.inventory, play], env=host.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout
    commands = [line for line in host.service_lines("exporter.service") if line.startswith("ExecStart")]
    assert commands == ([] if exec_start is None else ["ExecStart=", "ExecStart=" + exec_start])
