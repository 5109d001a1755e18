"""The ports_prometheus_targets role (issue 19) as users run it: ansible-playbook on a local host writing
file_sd files into a scratch directory. Molecule's discovery scenario has a real Prometheus read them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="needs ansible-playbook on PATH")

PLAY = """- name: Prometheus targets
  hosts: prometheus
  gather_facts: false
  roles:
    - role: berth.ports.ports_prometheus_targets
      vars:
        ports_prometheus_targets_endpoints: "{{ hostvars | berth.ports.endpoints(hosts=groups['app']) }}"
        ports_prometheus_targets_dir: %(dir)s
        ports_prometheus_targets_owners: %(owners)s
        ports_prometheus_targets_pattern: %(pattern)s
  post_tasks:
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ ports_prometheus_targets_result | to_json }}"
        dest: %(result)s
        mode: "0600"
"""


def services(**owners):
    return [{"owner": owner, "ports": {"tcp": ports, "udp": []}} for owner, ports in owners.items()]


class Run:
    def __init__(self, root):
        self.root = str(root)
        self.dir = os.path.join(self.root, "file_sd")
        self.result = os.path.join(self.root, "result.json")
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")

    def play(self, app_results, owners=(), pattern=""):
        inventory = os.path.join(self.root, "hosts.json")
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        me = os.getuid()
        with open(inventory, "w") as handle:
            json.dump({"all": {"vars": dict(local, ports_prometheus_targets_file_owner=str(me),
                                            ports_prometheus_targets_file_group=str(os.getgid())),
                               "children": {
                                   "app": {"hosts": {h: {"ansible_host": "10.0.0.%d" % (i + 11), "service_ports_results": r}
                                                     for i, (h, r) in enumerate(sorted(app_results.items()))}},
                                   "prometheus": {"hosts": {"mon": {}}}}}}, handle)
        play = os.path.join(self.root, "play.yml")
        with open(play, "w") as handle:
            handle.write(PLAY % {"dir": json.dumps(self.dir), "owners": json.dumps(list(owners)),
                                 "pattern": json.dumps(pattern), "result": json.dumps(self.result)})
        done = subprocess.run(["ansible-playbook", "-i", inventory, play], env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
        return done.returncode, done.stdout

    def files(self):
        return sorted(os.listdir(self.dir))

    def load(self, name):
        with open(os.path.join(self.dir, name)) as handle:
            return json.load(handle)

    def inode(self, name):
        return os.stat(os.path.join(self.dir, name)).st_ino


def changed_role_tasks(out):
    """The role's tasks that reported a change (the play's own result-saving task aside)."""
    changed, task = [], None
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:") and task and "ports_prometheus_targets :" in task:
            changed.append(task)
    return changed


def test_write_leave_unchanged_replace_and_remove(tmp_path):
    run = Run(tmp_path)
    apps = {"app1": services(**{"node-exporter": [25031], "web": [25032]}),
            "app2": services(**{"node-exporter": [25031], "web": [25033]})}
    rc, out = run.play(apps, owners=["web"], pattern=".*-exporter")
    assert rc == 0, out
    assert run.files() == ["berth-node-exporter.json", "berth-web.json"]
    assert run.load("berth-node-exporter.json") == [
        {"labels": {"berth_host": "app1", "berth_owner": "node-exporter", "berth_proto": "tcp"}, "targets": ["10.0.0.11:25031"]},
        {"labels": {"berth_host": "app2", "berth_owner": "node-exporter", "berth_proto": "tcp"}, "targets": ["10.0.0.12:25031"]},
    ]
    # Another tool's files in the same directory, and one of ours from an owner now gone.
    for name in ("other.json", "berth-notes.txt", "berth-old.json"):
        with open(os.path.join(run.dir, name), "w") as handle:
            handle.write("[]\n")
    before = {name: (run.inode(name), os.stat(os.path.join(run.dir, name)).st_mtime_ns) for name in run.files()}

    apps["app2"] = services(**{"node-exporter": [25040], "web": [25033]})
    rc, out = run.play(apps, owners=["web"], pattern=".*-exporter")
    assert rc == 0, out
    assert run.files() == ["berth-node-exporter.json", "berth-notes.txt", "berth-web.json", "other.json"]
    with open(run.result) as handle:
        assert json.load(handle)["removed"] == [os.path.join(run.dir, "berth-old.json")]
    # The changed file was replaced by a rename (a new inode), never rewritten in place; the unchanged one untouched.
    assert run.inode("berth-node-exporter.json") != before["berth-node-exporter.json"][0]
    assert run.load("berth-node-exporter.json")[1]["targets"] == ["10.0.0.12:25040"]
    assert (run.inode("berth-web.json"), os.stat(os.path.join(run.dir, "berth-web.json")).st_mtime_ns) == before["berth-web.json"]

    rc, out = run.play(apps, owners=["web"], pattern=".*-exporter")
    assert rc == 0, out
    assert changed_role_tasks(out) == [], out

    # node-exporter deselected: its file goes, web's stays.
    rc, out = run.play(apps, owners=["web"])
    assert rc == 0, out
    assert run.files() == ["berth-notes.txt", "berth-web.json", "other.json"]


def test_no_selection_fails_in_one_line_and_writes_nothing(tmp_path):
    run = Run(tmp_path)
    rc, out = run.play({"app1": services(web=[25031])})
    assert rc != 0
    assert "berth.ports.file_sd_targets: name the owners to scrape" in out
    assert not os.path.exists(run.dir)
