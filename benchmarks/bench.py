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
BENCH_FLEET_ROUNDS [1], BENCH_DIR (scratch directory on the disk to measure
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

from ansible_collections.berth.ports.plugins.module_utils import allocation_store as store_mod
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings

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
    values, baselines = [], []
    for index in range(rounds):
        turns = ((baseline, baselines), (value, values))
        for measure, into in turns if index % 2 == 0 else turns[::-1]:
            into.append(measure())
        print("  %s round %d: %.4g vs %.4g" % (label, index + 1, values[-1], baselines[-1]), flush=True)
    return _median(values), _median(baselines)


def _write_database(path, rows, version=store_mod.SCHEMA_VERSION):
    """A berth database at schema ``version`` holding ``rows`` of (owner, proto,
    first, last), written straight through sqlite3 in one transaction: filling a
    table of 65 000 rows one allocation at a time would take minutes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("PRAGMA application_id = %d" % store_mod.APPLICATION_ID)
    for step in store_mod._MIGRATIONS[:version]:  # pylint: disable=protected-access
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


def _run_play(play, inventory, forks, extra=()):
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, "-f", str(forks), play] + list(extra),
        env=_ansible_env(),
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
    wanted = os.environ.get("BENCH_ROWS", "1,2,3,4,5,6").replace(" ", "").split(",")
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
            rows.append(BENCHES[key](work))
            rows[-1]["seconds"] = time.perf_counter() - t0
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
