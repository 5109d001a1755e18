# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""berth.ports benchmarks: each figure next to a baseline measured in the same run.

Run with ``make bench`` (the venv's python, the built collection first on
PYTHONPATH and ANSIBLE_COLLECTIONS_PATH). The machine is shared and noisy, so
value and baseline are measured alternately, round by round, and the median
of the rounds is reported. Prints a table and writes the same figures to
benchmarks/results.json.

Environment knobs (defaults in brackets): BENCH_ROWS (all; e.g. "2,3"),
BENCH_PLAY_ROUNDS [3], BENCH_FLEET_HOSTS [200], BENCH_FLEET_FORKS [10],
BENCH_FLEET_ROUNDS [1], BENCH_SERVICES_HOSTS [10; full size 50], BENCH_SERVICES_PER_HOST [10],
BENCH_SERVICES_FORKS [10], BENCH_SERVICES_ROUNDS [1], BENCH_REGISTRY_HOSTS [20; full size 50],
BENCH_REGISTRY_PER_HOST [10], BENCH_REGISTRY_FORKS [10], BENCH_REGISTRY_ROUNDS [1],
BENCH_CHOICE_SERVICES [20], BENCH_CHOICE_ROUNDS [3], BENCH_DIR (scratch directory on the disk to measure
[a temporary directory under .build/]).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from ansible_collections.berth.ports.plugins.module_utils import store_schema
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, bands
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry import registry_fleet_ports

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results.json")


def _env_int(name, default):
    return int(os.environ.get(name, default))


def _median(values):
    return statistics.median(values)


def _fresh(path):
    for suffix in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def _row(name, value, baseline, unit, target, higher_is_better, note=""):
    """One result; ``target`` bounds value/baseline (None: reported only)."""
    ratio = value / baseline if baseline else float("nan")
    if target is None:
        met = None
    elif higher_is_better:
        met = ratio >= target
    else:
        met = ratio <= target
    return {
        "row": name,
        "value": value,
        "baseline": baseline,
        "unit": unit,
        "ratio": ratio,
        "target": ("%s %.2fx" % (">=" if higher_is_better else "<=", target)) if target is not None else "-",
        "met": met,
        "note": note,
    }


def _alternating(rounds, value, baseline, label):
    """Medians of ``value()`` and ``baseline()`` measured in turns, the baseline
    first in even rounds and second in odd ones, so drift hits both alike."""
    return tuple(_in_turns(rounds, (value, baseline), label))


def _in_turns(rounds, measures, label):
    """Medians of each of ``measures`` measured in turns, the order reversed
    every other round. A measure may return a tuple (say a first and a second
    run): its medians are then taken element by element."""
    results = [[] for _measure in measures]
    order = list(range(len(measures)))
    for index in range(rounds):
        for which in order[::-1] if index % 2 == 0 else order:
            results[which].append(measures[which]())
        print(
            "  %s round %d: %s" % (label, index + 1, " vs ".join(_fmt(got[-1]) for got in results)),
            flush=True,
        )
    return [
        tuple(_median(column) for column in zip(*got)) if isinstance(got[0], tuple) else _median(got) for got in results
    ]


def _fmt(got):
    return "/".join("%.4g" % one for one in got) if isinstance(got, tuple) else "%.4g" % got


def _write_database(path, rows, version=store_schema.SCHEMA_VERSION):
    """A berth database at schema ``version`` holding ``rows`` of (owner, proto,
    first, last), written straight through sqlite3 in one transaction: filling a
    table of 65 000 rows one allocation at a time would take minutes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("PRAGMA application_id = %d" % store_schema.APPLICATION_ID)
    for step in store_schema.MIGRATIONS[:version]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = %d" % version)
    conn.executemany(
        "INSERT INTO allocations (owner, proto, first_port, last_port, shared, kind, created)"
        " VALUES (?, ?, ?, ?, 0, 'dynamic', '2026-01-01T00:00:00Z')",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()


def _allocate(store, settings, owner, count=1):
    request = build_allocation_request(owner, "tcp", count, settings=settings)
    return allocate(store, request, settings)


# ---------------------------------------------------------------- row 1 and 5: plays


def _ansible_env():
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""))
    env.update(ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_NOCOLOR="1")
    return env


def _write_play(path, module, tasks):
    """A play of ``tasks`` (a list of option dicts) calling ``module`` on every host."""
    lines = ["- name: bench", "  hosts: all", "  gather_facts: false", "  tasks:"]
    for index, options in enumerate(tasks):
        lines.append("    - name: task %d" % index)
        if options:
            lines.append("      %s:" % module)
            for key, val in options.items():
                lines.append("        %s: %s" % (key, json.dumps(val)))
        else:
            lines.append("      %s: {}" % module)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def _run_play(play, inventory, forks, extra=(), env=None):
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, "-f", str(forks), play] + list(extra),
        env=dict(_ansible_env(), **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout.decode("utf-8", "replace")[-4000:])
        raise SystemExit("ansible-playbook %s failed (rc=%d)" % (play, proc.returncode))
    return elapsed


def bench_module_overhead(work):
    """Row 1: 50 port_allocate tasks vs 50 ping tasks against localhost."""
    rounds = _env_int("BENCH_PLAY_ROUNDS", 3)
    db = os.path.join(work, "play.db")
    inventory = os.path.join(work, "localhost.ini")
    with open(inventory, "w") as handle:
        handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    ping = os.path.join(work, "ping50.yml")
    alloc = os.path.join(work, "alloc50.yml")
    _write_play(ping, "ansible.builtin.ping", [{}] * 50)
    _write_play(alloc, "berth.ports.port_allocate", [{"owner": "svc%02d" % i, "db_path": db} for i in range(50)])

    def allocating():
        _fresh(db)
        return _run_play(alloc, inventory, 1)

    value, baseline = _alternating(rounds, allocating, lambda: _run_play(ping, inventory, 1), "row 1 alloc vs ping")
    _fresh(db)
    return _row(
        "1 module overhead: play of 50 port_allocate vs 50 ping (localhost)",
        value,
        baseline,
        "s/play",
        1.10,
        False,
        "%d rounds, forks 1" % rounds,
    )


def bench_fleet(work):
    """Row 5: 200 local hosts, each its own database, 5 services each."""
    hosts = _env_int("BENCH_FLEET_HOSTS", 200)
    forks = _env_int("BENCH_FLEET_FORKS", 10)
    rounds = _env_int("BENCH_FLEET_ROUNDS", 1)
    dbdir = os.path.join(work, "fleet")
    inventory = os.path.join(work, "fleet.ini")
    with open(inventory, "w") as handle:
        handle.write("[fleet]\n")
        for i in range(hosts):
            handle.write("h%03d bench_db=%s/h%03d.db\n" % (i, dbdir, i))
        handle.write("[fleet:vars]\nansible_connection=local\nansible_python_interpreter=%s\n" % sys.executable)
    ping = os.path.join(work, "fleet-ping.yml")
    alloc = os.path.join(work, "fleet-alloc.yml")
    _write_play(ping, "ansible.builtin.ping", [{}] * 5)
    _write_play(
        alloc, "berth.ports.port_allocate", [{"owner": "svc%d" % i, "count": i + 1, "db_path": "{{ bench_db }}"} for i in range(5)]
    )

    def allocating():
        shutil.rmtree(dbdir, ignore_errors=True)
        return _run_play(alloc, inventory, forks)

    value, baseline = _alternating(rounds, allocating, lambda: _run_play(ping, inventory, forks), "row 5 alloc vs ping")
    shutil.rmtree(dbdir, ignore_errors=True)
    return _row(
        "5 fleet: %d hosts x 5 port_allocate vs 5 ping" % hosts,
        value,
        baseline,
        "s/play",
        1.20,
        False,
        "%d round(s), forks %d, local connection, one database per host" % (rounds, forks),
    )


# ---------------------------------------------------------------- row 7: fleet services

# The same stand-in for both plays: this machine has no systemd as PID 1.
# daemon-reload and restart succeed doing nothing; `show` prints the
# properties asked for, for each unit named, as an inactive unit (so nothing
# is restarted), one block per unit as systemctl prints them.
_STANDIN_SYSTEMCTL = """#!/bin/sh
# berth.ports bench: stand-in for systemctl (no systemd as PID 1 here)
[ "$1" = show ] || exit 0
shift
props=Id,ActiveState
units=
for arg in "$@"; do
  case $arg in
    --property=*) props=${arg#--property=} ;;
    -*) ;;
    *) units="$units $arg" ;;
  esac
done
sep=
for unit in $units; do
  [ -z "$sep" ] || echo
  sep=1
  for prop in $(echo "$props" | tr , ' '); do
    case $prop in
      Id) echo "Id=$unit" ;;
      ActiveState) echo "ActiveState=inactive" ;;
      *) echo "$prop=" ;;
    esac
  done
done
"""

# What a user writes by hand: the drop-ins from fixed ports in inventory,
# the same text as the role's template, one daemon-reload handler.
_BASELINE_TEMPLATE = """{{ ansible_managed | comment }}
# Ports of {{ item.owner }} from the berth.ports database
# ({{ service_ports_db_path }}); use them as ${TCP_PORT} and so on in ExecStart.
[Service]
{% for name, value in item.env | dictsort %}
Environment={{ name }}={{ value }}
{% endfor %}
"""

_BASELINE_PLAY = """- name: Drop-ins from fixed ports in inventory
  hosts: berth_hosts
  gather_facts: false
  tasks:
    - name: Create the drop-in directories
      ansible.builtin.file:
        path: "{{ service_ports_unit_dir }}/{{ item.unit }}.d"
        state: directory
        owner: root
        group: root
        mode: "0755"
      loop: "{{ bench_dropins }}"
    - name: Template the drop-ins
      ansible.builtin.template:
        src: %(template)s
        dest: "{{ service_ports_unit_dir }}/{{ item.unit }}.d/50-berth-ports.conf"
        owner: root
        group: root
        mode: "0644"
      loop: "{{ bench_dropins }}"
      notify: Reload systemd
  handlers:
    - name: Reload systemd
      ansible.builtin.systemd_service:
        daemon_reload: true
"""

# site.yml's service play as it was before the list form: the role once per
# service with the single-service variables.
_PER_SERVICE_PLAY = """- name: Allocate ports for the services of each host, one service at a time
  hosts: berth_hosts
  gather_facts: false
  tasks:
    - name: Apply berth.ports.service_ports to each service
      ansible.builtin.include_role:
        name: berth.ports.service_ports
      vars:
        service_ports_unit: "{{ berth_service.unit }}"
        service_ports_owner: "{{ berth_service.owner | default('') }}"
        service_ports_state: "{{ berth_service.state | default('present') }}"
        service_ports_tcp_ports_demand: "{{ berth_service.tcp_ports_demand | default(1) }}"
        service_ports_udp_ports_demand: "{{ berth_service.udp_ports_demand | default(0) }}"
        service_ports_tcp_port: "{{ berth_service.tcp_port | default(none) }}"
        service_ports_udp_port: "{{ berth_service.udp_port | default(none) }}"
        service_ports_tcp_shared: "{{ berth_service.tcp_shared | default(false) }}"
        service_ports_udp_shared: "{{ berth_service.udp_shared | default(false) }}"
      loop: "{{ berth_services | default([]) }}"
      loop_control:
        loop_var: berth_service
        label: "{{ berth_service.unit }}"
"""


def _fleet_services(per_host, block=PortRange(25000, 25999)):
    """``per_host`` services as berth_services entries, and the drop-ins the role
    gives them in an empty database (first fit in list order, TCP and UDP apart,
    from the dynamic band of the role's default range): the fixed ports a user
    would have written into inventory instead."""
    low = bands(block)[0].first
    services, dropins = [], []
    next_port = {"tcp": low, "udp": low}
    for i in range(per_host):
        # Mostly one TCP port; every third also a UDP port, every fourth 3 TCP.
        demand = {"tcp": 3 if i % 4 == 3 else 1, "udp": 1 if i % 3 == 2 else 0}
        entry = {"unit": "bench-svc%02d.service" % i, "tcp_ports_demand": demand["tcp"]}
        if demand["udp"]:
            entry["udp_ports_demand"] = demand["udp"]
        env = {}
        for proto in ("tcp", "udp"):
            if demand[proto]:
                first, last = next_port[proto], next_port[proto] + demand[proto] - 1
                next_port[proto] = last + 1
                env.update(
                    {"%s_PORT" % proto.upper(): str(first)}
                    if first == last
                    else {
                        "%s_PORT" % proto.upper(): str(first),
                        "%s_PORTS_RANGE" % proto.upper(): "%d-%d" % (first, last),
                        "%s_PORTS" % proto.upper(): ",".join(str(p) for p in range(first, last + 1)),
                    }
                )
        services.append(entry)
        dropins.append({"unit": entry["unit"], "owner": "bench-svc%02d" % i, "env": env})
    return services, dropins


def _dropin_texts(unit_dir):
    found = {}
    for parent, _dirs, files in os.walk(unit_dir):
        for name in files:
            with open(os.path.join(parent, name)) as handle:
                found[os.path.relpath(os.path.join(parent, name), unit_dir)] = handle.read()
    return found


def _services_fleet(root, hosts, per_host):
    """Local hosts with ``per_host`` services each, for site.yml (rows 7 and 8): the
    inventory (each host its own database and unit directory; berth_services for
    the role, bench_dropins, the same ports fixed, for a hand-written play), the
    environment with the stand-in systemctl, the hosts' directory and names."""
    hostdir = os.path.join(root, "hosts")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir, exist_ok=True)
    systemctl = os.path.join(bindir, "systemctl")
    with open(systemctl, "w") as handle:
        handle.write(_STANDIN_SYSTEMCTL)
    os.chmod(systemctl, 0o755)
    env = {"PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    services, dropins = _fleet_services(per_host)
    names = ["h%03d" % i for i in range(hosts)]
    group = {
        "hosts": {
            name: {
                "service_ports_db_path": os.path.join(hostdir, name, "ports.db"),
                "service_ports_unit_dir": os.path.join(hostdir, name, "system"),
            }
            for name in names
        },
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "berth_firewall_enabled": False,
            "berth_services": services,
            "bench_dropins": dropins,
        },
    }
    inventory = os.path.join(root, "inventory.json")  # JSON is YAML: the yaml inventory plugin reads it
    with open(inventory, "w") as handle:
        json.dump({"berth_hosts": group}, handle, indent=1)
    return inventory, env, hostdir, names


def bench_fleet_services(work):
    """Row 7: site.yml's service play (firewall off) over many hosts with many
    services each, against hand-written drop-ins from fixed ports; and the old
    per-service include_role loop against the list form."""
    hosts = _env_int("BENCH_SERVICES_HOSTS", 10)
    per_host = _env_int("BENCH_SERVICES_PER_HOST", 10)
    forks = _env_int("BENCH_SERVICES_FORKS", 10)
    rounds = _env_int("BENCH_SERVICES_ROUNDS", 1)
    root = os.path.join(work, "services")
    inventory, env, hostdir, names = _services_fleet(root, hosts, per_host)
    template = os.path.join(root, "baseline.conf.j2")
    with open(template, "w") as handle:
        handle.write(_BASELINE_TEMPLATE)
    baseline_play = os.path.join(root, "baseline.yml")
    with open(baseline_play, "w") as handle:
        handle.write(_BASELINE_PLAY % {"template": json.dumps(template)})
    per_service_play = os.path.join(root, "per-service.yml")
    with open(per_service_play, "w") as handle:
        handle.write(_PER_SERVICE_PLAY)
    # site.yml as installed (the collection copy on ANSIBLE_COLLECTIONS_PATH).
    site = "berth.ports.site"
    outcome = {}

    def converge(play, name, again=True):
        """Fresh databases and drop-in directories, a first run (everything
        changes), then the same run again (nothing does): both timed."""
        shutil.rmtree(hostdir, ignore_errors=True)
        first = _run_play(play, inventory, forks, env=env)
        outcome[name] = _dropin_texts(os.path.join(hostdir, names[0], "system"))
        return (first, _run_play(play, inventory, forks, env=env)) if again else first

    # The per-service path is timed on the first converge only: at full size
    # one run of it takes longer than the four others together.
    (list_first, list_second), (base_first, base_second), per_first = _in_turns(
        rounds,
        (
            lambda: converge(site, "list"),
            lambda: converge(baseline_play, "baseline"),
            lambda: converge(per_service_play, "per-service", again=False),
        ),
        "row 7 list (first/second run) vs hand-written (first/second) vs per-service (first)",
    )
    shutil.rmtree(root, ignore_errors=True)
    # The comparison is only fair if all three wrote the same files.
    if not outcome["list"] or outcome["list"] != outcome["baseline"] or outcome["list"] != outcome["per-service"]:
        raise SystemExit("row 7: the plays wrote different drop-ins: %s" % json.dumps(outcome, indent=1)[:4000])
    shape = "%d hosts x %d services, forks %d, %d round(s)" % (hosts, per_host, forks, rounds)
    row = _row(
        "7 fleet services: site.yml (list form) vs hand-written drop-ins",
        list_first,
        base_first,
        "s/play",
        1.25,
        False,
        "%s; first converge (fresh databases and drop-ins); second, unchanged run: %.1f vs %.1f s = %.2fx;"
        " stand-in systemctl for both" % (shape, list_second, base_second, list_second / base_second),
    )
    row.update(value_second=list_second, baseline_second=base_second, ratio_second=list_second / base_second)
    row_b = _row(
        "7b fleet services: per-service include_role vs list form (speed-up)",
        per_first,
        list_first,
        "s/play",
        4.0,
        True,
        "%s; first converge (fresh databases and drop-ins); stand-in systemctl for both" % shape,
    )
    return [row, row_b]


# ---------------------------------------------------------------- row 8: the fleet registry


def bench_fleet_registry(work):
    """Row 8: site.yml with fleet-consistent ports from the registry against the same
    play without fleet consistency (8); the registry's choice alone on the
    controller at 500 and 5 000 hosts, against ten times the 500-host time (8b)."""
    hosts = _env_int("BENCH_REGISTRY_HOSTS", 20)
    per_host = _env_int("BENCH_REGISTRY_PER_HOST", 10)
    forks = _env_int("BENCH_REGISTRY_FORKS", 10)
    rounds = _env_int("BENCH_REGISTRY_ROUNDS", 1)
    root = os.path.join(work, "registry")
    inventory, env, hostdir, unused_names = _services_fleet(root, hosts, per_host)
    registry = os.path.join(root, "berth-ports-registry.yml")

    def converge(extra):
        """Fresh databases, drop-ins and registry, then one timed first run."""
        shutil.rmtree(hostdir, ignore_errors=True)
        _fresh(registry)
        return _run_play("berth.ports.site", inventory, forks, extra=extra, env=env)

    fleet_args = ["-e", json.dumps({"service_ports_fleet_consistent": True, "service_ports_fleet_registry": registry})]
    value, baseline = _alternating(rounds, lambda: converge(fleet_args), lambda: converge([]), "row 8 registry vs plain")
    with open(registry) as handle:
        written = handle.read()
    shutil.rmtree(root, ignore_errors=True)
    if written.count("tcp:") != per_host:
        raise SystemExit("row 8: the registry does not hold the %d services: %s" % (per_host, written[:2000]))
    row = _row(
        "8 fleet registry: site.yml fleet-consistent with the registry vs without",
        value,
        baseline,
        "s/play",
        1.3,
        False,
        "%d hosts x %d services, forks %d, %d round(s); first converge (fresh databases, drop-ins, registry);"
        " stand-in systemctl for both" % (hosts, per_host, forks, rounds),
    )
    return [row, _bench_registry_choice(work)]


def _choice_input(hosts, services):
    """What the role hands the registry for ``hosts`` hosts asking for ``services`` services each."""
    demand = [{"owner": "svc%02d" % i, "proto": "tcp", "count": 1 + i % 3} for i in range(services)]
    survey = {"changed": False, "allocations": [], "conflicts": [], "free": {}, "largest_free_run": {}}
    return {"h%05d" % i: {"demand": demand, "survey": survey} for i in range(hosts)}


def _bench_registry_choice(work):
    """Row 8b: registry_fleet_ports alone, 5 000 hosts against ten times 500 (linear is 1x)."""
    services = _env_int("BENCH_CHOICE_SERVICES", 20)
    rounds = _env_int("BENCH_CHOICE_ROUNDS", 3)
    path = os.path.join(work, "choice-registry.yml")

    def timed(hosts):
        data = _choice_input(hosts, services)

        def run():
            _fresh(path)  # every owner new: the whole choice, and a write
            start = time.perf_counter()
            registry_fleet_ports(data, path)
            return time.perf_counter() - start

        return run

    large, small = _alternating(rounds, timed(5000), timed(500), "row 8b choice 5000 vs 500 hosts")
    _fresh(path)
    row = _row(
        "8b registry choice: 5 000 hosts vs 10 x 500 hosts (x %d services)" % services,
        large,
        10 * small,
        "s",
        1.3,
        False,
        "500 hosts: %.2f s; 5 000 hosts: %.2f s (target under 2 s); median of %d" % (small, large, rounds),
    )
    row["met"] = row["met"] and large < 2.0
    return row


# ---------------------------------------------------------------- row 2: durable rate


def _raw_commits(conn, start, n):
    for i in range(start, start + n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO allocations (owner, proto, first_port, last_port, shared, kind, created)"
            " VALUES (?, 'tcp', ?, ?, 0, 'dynamic', '2026-01-01T00:00:00Z')",
            ("raw%d" % i, 1 + i, 1 + i),
        )
        conn.execute("COMMIT")


def bench_durable_rate(work):
    """Row 2: allocations/s through the allocator vs raw single-row INSERT commits."""
    rounds, per_round = 15, 40
    raw_db = os.path.join(work, "raw.db")
    alloc_db = os.path.join(work, "rate.db")
    _fresh(raw_db)
    _fresh(alloc_db)
    # The same schema and pragmas (SQLite's defaults: rollback journal,
    # synchronous=FULL), the same directory: only the allocator's work differs.
    _write_database(raw_db, ())
    conn = sqlite3.connect(raw_db, isolation_level=None)
    store = AllocationStore(alloc_db)
    settings = build_settings("1-65535")
    _allocate(store, settings, "warmup")
    done = {"raw": 0, "alloc": 0}

    def raw_rate():
        start = time.perf_counter()
        _raw_commits(conn, done["raw"], per_round)
        done["raw"] += per_round
        return per_round / (time.perf_counter() - start)

    def alloc_rate():
        start = time.perf_counter()
        for i in range(done["alloc"], done["alloc"] + per_round):
            _allocate(store, settings, "svc%d" % i)
        done["alloc"] += per_round
        return per_round / (time.perf_counter() - start)

    value, baseline = _alternating(rounds, alloc_rate, raw_rate, "row 2 ops/s alloc vs raw")
    conn.close()
    journal = sqlite3.connect(alloc_db).execute("PRAGMA journal_mode").fetchone()[0]
    _fresh(raw_db)
    _fresh(alloc_db)
    return _row(
        "2 durable allocation rate vs raw INSERT commits",
        value,
        baseline,
        "ops/s",
        0.8,
        True,
        "%d rounds x %d, journal_mode=%s, synchronous=FULL, skip_listening on" % (rounds, per_round, journal),
    )


# ---------------------------------------------------------------- row 3: scale


def _fill_fragmented(path, low=1, high=65535, free=655):
    """99% of ``low``-``high`` held, one row per port; the free ports are singletons
    at every other port at the top, so first-fit skips nearly the whole table."""
    holes = set(high - 2 * k for k in range(free))
    # Schema 2, without the free-run index: the first write builds it, as it
    # would for a database filled by an older berth.ports.
    _write_database(path, (("f%d" % port, "tcp", port, port) for port in range(low, high + 1) if port not in holes), version=2)
    return high - low + 1 - len(holes)


def bench_scale(work):
    """Row 3: one allocation in 1-65535 at 99% full, worst fragmentation, vs empty."""
    rounds, per_round = 9, 5
    full_db = os.path.join(work, "full.db")
    empty_db = os.path.join(work, "empty.db")
    _fresh(full_db)
    _fresh(empty_db)
    held = _fill_fragmented(full_db)
    settings = build_settings("1-65535")
    full, empty = AllocationStore(full_db), AllocationStore(empty_db)
    # The first write migrates the filled (version 2) file: not what is measured.
    start = time.perf_counter()
    _allocate(full, settings, "warmup")
    migrate = time.perf_counter() - start
    _allocate(empty, settings, "warmup")
    full_costs, empty_costs = [], []
    n = 0
    for _round in range(rounds):
        for store, costs in ((full, full_costs), (empty, empty_costs)):
            start = time.perf_counter()
            for i in range(per_round):
                _allocate(store, settings, "s%d-%d" % (n, i))
            costs.append((time.perf_counter() - start) / per_round * 1000)
        n += 1
    _fresh(full_db)
    _fresh(empty_db)
    return _row(
        "3 scale: one allocation, 1-65535 99% full & fragmented vs empty",
        _median(full_costs),
        _median(empty_costs),
        "ms/alloc",
        2.0,
        False,
        "%d held rows, 655 free singletons at the top; first write (migration) took %.2fs" % (held, migrate),
    )


# ---------------------------------------------------------------- row 4: contention


def _worker(db, worker, count, barrier, results):
    """One writer process: waits until every writer is forked and ready, then
    allocates ``count`` times and reports its ports and when it started and ended.

    It then waits for the others before exiting: a finished writer's exit
    (interpreter teardown) would otherwise take CPU from those still writing.
    """
    store = AllocationStore(db)
    settings = build_settings("20000-29999", skip_listening=False)
    ports = []
    barrier.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    for i in range(count):
        ports.extend(_allocate(store, settings, "w%d-%d" % (worker, i)).after.ports)
    end = time.perf_counter()
    results.put((ports, start, end))
    barrier.wait()


def _contention_round(ctx, db, procs, per_proc):
    """Aggregate allocations/s of ``procs`` writer processes, timed from the moment
    all are ready to the last one's end: forking and collecting them is not the
    allocator's cost, and would weigh on 32 processes and not on one."""
    _fresh(db)
    _allocate(AllocationStore(db), build_settings("20000-29999", skip_listening=False), "init")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    writers = [ctx.Process(target=_worker, args=(db, w, per_proc, barrier, results)) for w in range(procs)]
    for writer in writers:
        writer.start()
    reports = [results.get(timeout=300) for writer in writers]  # (ports, start, end) each
    for writer in writers:
        writer.join()
    elapsed = max(report[2] for report in reports) - min(report[1] for report in reports)
    handed = [p for report in reports for p in report[0]]
    held = [p for row in load_rows(AllocationStore(db)) for p in range(row.first, row.last + 1)]
    duplicates = (len(handed) - len(set(handed))) + (len(held) - len(set(held)))
    if len(handed) != procs * per_proc:
        raise SystemExit("row 4: %d ports handed out, %d expected" % (len(handed), procs * per_proc))
    return len(handed) / elapsed, duplicates


def bench_contention(work):
    """Row 4: 32 processes allocating into one database vs one process, same total."""
    procs, per_proc, rounds = 32, 8, 5
    db = os.path.join(work, "contention.db")
    single, multi, dups = [], [], 0
    ctx = multiprocessing.get_context("fork")
    for _round in range(rounds):
        rate, dup = _contention_round(ctx, db, 1, procs * per_proc)
        single.append(rate)
        dups += dup
        rate, dup = _contention_round(ctx, db, procs, per_proc)
        multi.append(rate)
        dups += dup
    _fresh(db)
    row = _row(
        "4 contention: 32 processes into one database vs 1 process",
        _median(multi),
        _median(single),
        "ops/s",
        0.7,
        True,
        "%d rounds x %d allocations; duplicates: %d" % (rounds, procs * per_proc, dups),
    )
    row["duplicates"] = dups
    row["met"] = row["met"] and dups == 0
    return row


# ---------------------------------------------------------------- row 6: lookup


def _lookup_plugin():
    import yaml  # pylint: disable=import-outside-toplevel
    from ansible import constants as C  # pylint: disable=import-outside-toplevel
    from ansible_collections.berth.ports.plugins.lookup import allocations  # pylint: disable=import-outside-toplevel

    name = "berth.ports.allocations"
    options = yaml.safe_load(allocations.DOCUMENTATION)["options"]
    C.config.initialize_plugin_configuration_definitions("lookup", name, options)
    plugin = allocations.LookupModule()
    plugin._load_name = name  # pylint: disable=protected-access
    return plugin


def bench_lookup(work):
    """Row 6: the lookup over 10 000 allocations with a JMESPath query, per call."""
    import jmespath  # pylint: disable=import-outside-toplevel

    db = os.path.join(work, "lookup.db")
    _fresh(db)
    _write_database(db, (("svc%d" % i, ("tcp", "udp")[i % 2], 20000 + i, 20000 + i) for i in range(10000)))
    plugin = _lookup_plugin()
    query = "[?proto=='tcp' && first >= `25000`].first"
    expected = plugin.run([], variables={}, db_path=db, query=query)
    assert len(expected) == 2500, len(expected)

    def baseline():
        # The floor: the same rows as dicts straight from SQLite, the same query.
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as raw:
            records = [
                dict(zip(("owner", "proto", "first", "last", "shared", "kind", "created"), r))
                for r in raw.execute("SELECT owner, proto, first_port, last_port, shared, kind, created FROM allocations")
            ]
        return jmespath.search(query, records)

    values, baselines = [], []
    for _round in range(7):
        start = time.perf_counter()
        plugin.run([], variables={}, db_path=db, query=query)
        values.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        baseline()
        baselines.append((time.perf_counter() - start) * 1000)
    _fresh(db)
    return _row(
        "6 lookup: 10 000 allocations + JMESPath query, per call",
        _median(values),
        _median(baselines),
        "ms/call",
        None,
        False,
        "baseline: sqlite3 SELECT into dicts + the same jmespath.search",
    )


# ---------------------------------------------------------------- main

BENCHES = {
    "1": bench_module_overhead,
    "2": bench_durable_rate,
    "3": bench_scale,
    "4": bench_contention,
    "5": bench_fleet,
    "6": bench_lookup,
    "7": bench_fleet_services,
    "8": bench_fleet_registry,
}


def _machine():
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }


def _print_table(rows):
    header = "%-66s %12s %12s %-9s %8s %-9s %s" % ("row", "value", "baseline", "unit", "ratio", "target", "met")
    print(header)
    print("-" * len(header))
    for row in rows:
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        print(
            "%-66s %12.3f %12.3f %-9s %7.2fx %-9s %s"
            % (row["row"][:66], row["value"], row["baseline"], row["unit"], row["ratio"], row["target"], met)
        )
        if row["note"]:
            print("    %s" % row["note"])


def main():
    wanted = os.environ.get("BENCH_ROWS", "1,2,3,4,5,6,7,8").replace(" ", "").split(",")
    # Scratch files on the checkout's disk, in the ignored .build/ so that
    # neither git nor the collection copy ever sees them.
    base = os.environ.get("BENCH_DIR") or os.path.join(os.path.dirname(HERE), ".build")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-work-", dir=base)
    machine = _machine()
    rows = []
    started = time.perf_counter()
    try:
        for key in wanted:
            t0 = time.perf_counter()
            print("== row %s" % key, flush=True)
            got = BENCHES[key](work)
            for row in got if isinstance(got, list) else [got]:
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine["load_after"] = os.getloadavg()
    machine["total_seconds"] = time.perf_counter() - started
    print()
    _print_table(rows)
    with open(RESULTS, "w") as handle:
        json.dump({"machine": machine, "rows": rows}, handle, indent=2)
        handle.write("\n")
    print("\nwritten: %s (%.0fs)" % (os.path.relpath(RESULTS), machine["total_seconds"]))


if __name__ == "__main__":
    main()
