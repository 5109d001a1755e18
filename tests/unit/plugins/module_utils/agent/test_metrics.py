# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth-ports-metrics (issue 11): the node_exporter textfile, checked by promtool."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import warnings

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent import metrics
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import SCHEMA_VERSION
from ansible_collections.berth.ports.plugins.module_utils.request import build_settings
from ansible_collections.berth.ports.tests.unit.plugins.module_utils.agent.promtool import find_promtool


def sample(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, value = line.rsplit(" ", 1)
        base, unused, rest = metric.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if base == name and got == want:
            return float(value)
    raise AssertionError("no %s{%s} in\n%s" % (name, want, text))


@pytest.fixture
def no_listeners(tmp_path):
    net = tmp_path / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    for name in ("tcp", "tcp6", "udp", "udp6"):
        (net / name).write_text(header)
    return {"proc_net": str(net), "proc": str(tmp_path / "proc"), "unit_dirs": ()}


def fill(host):
    host.allocate("web", count=4)
    host.allocate("web", proto="udp", count=2)
    host.allocate("rgw", port=25080)
    host.allocate("h-a", port=25443, shared=True)
    host.allocate("h-b", port=25443, shared=True)


def test_metrics_of_a_database(host, no_listeners):
    fill(host)
    settings = build_settings("25000-25999", [25990, "25995-25999"])
    text, error = metrics.render(host.store.path, settings, now=1700000000.0, **no_listeners)
    assert error is None
    assert sample(text, "berth_ports_range_ports", proto="tcp", range="25000-25999") == 1000
    assert sample(text, "berth_ports_used_ports", proto="tcp", range="25000-25999") == 6  # 25443 held twice counts once
    assert sample(text, "berth_ports_free_ports", proto="tcp", range="25000-25999") == 1000 - 6 - 6
    assert sample(text, "berth_ports_reserved_ports", proto="udp", range="25000-25999") == 6
    assert sample(text, "berth_ports_used_ports", proto="udp", range="25000-25999") == 2
    assert sample(text, "berth_ports_owner_ports", owner="web", proto="tcp") == 4
    assert sample(text, "berth_ports_owner_allocations", owner="web", proto="udp") == 1
    assert sample(text, "berth_ports_owner_ports", owner="h-b", proto="tcp") == 1
    assert sample(text, "berth_ports_stray_listeners", proto="tcp", range="25000-25999") == 0
    assert sample(text, "berth_ports_database_schema_version") == SCHEMA_VERSION
    assert sample(text, "berth_ports_database_present") == 1
    assert abs(sample(text, "berth_ports_database_last_change_timestamp_seconds") - os.stat(host.store.path).st_mtime) < 0.01
    assert sample(text, "berth_ports_metrics_success") == 1
    assert sample(text, "berth_ports_metrics_timestamp_seconds") == 1700000000
    assert not re.search(r"^berth_ports_\w*_total", text, re.M)  # gauges, not counters


def test_stray_listener_counts(host, tmp_path):
    net = tmp_path / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    listen = "   0: 00000000:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n" % 25700
    (net / "tcp").write_text(header + listen)
    for name in ("tcp6", "udp", "udp6"):
        (net / name).write_text(header)
    fill(host)
    text, unused = metrics.render(host.store.path, build_settings("25000-25999"), proc_net=str(net),
                                  proc=str(tmp_path / "proc"), unit_dirs=())
    assert sample(text, "berth_ports_stray_listeners", proto="tcp", range="25000-25999") == 1
    assert sample(text, "berth_ports_listener_conflicts", proto="tcp", range="25000-25999", type="unallocated") == 1


def test_missing_database_is_never_created(tmp_path, no_listeners):
    db = tmp_path / "sub" / "ports.db"
    text, error = metrics.render(str(db), build_settings(), **no_listeners)
    assert error is None and not db.exists() and not db.parent.exists()
    assert sample(text, "berth_ports_database_present") == 0
    assert sample(text, "berth_ports_database_schema_version") == 0
    assert sample(text, "berth_ports_free_ports", proto="udp", range="25000-25999") == 1000
    assert "berth_ports_database_last_change_timestamp_seconds" not in text


def test_reading_does_not_change_the_file(host, no_listeners):
    fill(host)
    db = pathlib.Path(host.store.path)
    before = (db.read_bytes(), os.stat(str(db)).st_mtime_ns, sorted(p.name for p in db.parent.iterdir()))
    metrics.render(str(db), build_settings(), **no_listeners)
    assert (db.read_bytes(), os.stat(str(db)).st_mtime_ns, sorted(p.name for p in db.parent.iterdir())) == before


def test_a_bad_database_is_reported_and_left_alone(tmp_path, no_listeners):
    db = tmp_path / "ports.db"
    db.write_bytes(b"not a database at all" * 100)
    text, error = metrics.render(str(db), build_settings(), **no_listeners)
    assert error and "# ERROR reading the database" in text
    assert sample(text, "berth_ports_metrics_success") == 0
    assert db.read_bytes() == b"not a database at all" * 100
    out = tmp_path / "m.prom"
    assert metrics.main(["--config", str(tmp_path / "none.json"), "--db-path", str(db), "--output", str(out)]) == 1
    assert "berth_ports_metrics_success 0" in out.read_text()


def test_write_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "textfile" / "berth_ports.prom"
    metrics.write_atomically(str(out), "a 1\n")
    assert out.read_text() == "a 1\n" and oct(out.stat().st_mode & 0o777) == "0o644"
    inode = out.stat().st_ino

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        metrics.write_atomically(str(out), "a 2\n")
    assert out.read_text() == "a 1\n" and out.stat().st_ino == inode  # the old file, whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["berth_ports.prom"]


def test_main_uses_the_agent_config(host, tmp_path):
    fill(host)
    config = tmp_path / "agent.json"
    config.write_text('{"db_path": "%s", "range": "25000-25099"}' % host.store.path)
    out = tmp_path / "m.prom"
    assert metrics.main(["--config", str(config), "--output", str(out)]) == 0
    text = out.read_text()
    assert sample(text, "berth_ports_range_ports", proto="tcp", range="25000-25099") == 100
    assert sample(text, "berth_ports_used_ports", proto="tcp", range="25000-25099") == 5  # 25443 outside


def test_label_values_are_escaped():
    family = metrics.Family("berth_ports_x", "help", (metrics.Sample("berth_ports_x", (("owner", 'a"b\\c'),), 1),))
    assert metrics.format_families([family]).splitlines()[-1] == 'berth_ports_x{owner="a\\"b\\\\c"} 1'


@pytest.fixture(scope="module")
def promtool():
    found = find_promtool()
    if found is None:
        message = "promtool is not available: the promtool check of the metrics did NOT run"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " - required under CI=true")
        warnings.warn(message)
        pytest.skip(message)
    return found


def test_promtool_check_metrics_passes(promtool, host, tmp_path, no_listeners):
    fill(host)
    for db in (host.store.path, str(tmp_path / "missing.db")):
        text, unused = metrics.render(db, build_settings(), **no_listeners)
        done = subprocess.run([promtool, "check", "metrics"], input=text, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        assert done.returncode == 0 and done.stdout.strip() == "", done.stdout
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 4096)
    text, unused = metrics.render(str(bad), build_settings(), **no_listeners)
    done = subprocess.run([promtool, "check", "metrics"], input=text, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    assert done.returncode == 0, done.stdout
