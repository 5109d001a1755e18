# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A writer for test_crash_safety.py to SIGKILL.

``loop DB LOG SEED RANGE``: prints "ready", then allocates and frees ports for
ever. Before each operation it appends {"seq", "op"} to LOG, after it
{"seq", "done", "rows"} (the state it committed), so the test knows which
transaction a kill may have interrupted.

``first DB POINT``: one allocation into a database that does not exist yet,
SIGKILLing itself at POINT: "after-parent" (directory made), "after-create"
(empty file made), "stmt:N" (before the N-th SQL statement SQLite runs),
"ready" (print "ready" and let the test kill it at a random moment), "none".
"""

import json
import os
import random
import signal
import sqlite3
import sys
import traceback

from ansible_collections.berth.ports.plugins.module_utils import allocation_store, allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

OWNERS = ["svc%d" % i for i in range(10)]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def random_op(rng, bounds):
    roll = rng.random()
    owner = rng.choice(OWNERS)
    proto = rng.choice(["tcp", "udp"])
    if roll < 0.5:
        return {"op": "allocate", "owner": owner, "proto": proto, "count": rng.randint(1, 4),
                "keep_existing": rng.random() < 0.15}
    if roll < 0.7:
        count = rng.randint(1, 2)
        return {"op": "allocate", "owner": owner, "proto": proto, "count": count,
                "port": rng.randint(bounds.first, bounds.last - count + 1), "shared": rng.random() < 0.5}
    op = {"op": "deallocate", "owner": owner, "proto": rng.choice(["tcp", "udp", "all"])}
    if rng.random() < 0.3:
        op["ports"] = [rng.randint(bounds.first, bounds.last)]
    return op


def apply_op(store, settings, op):
    if op["op"] == "deallocate":
        allocator.deallocate(store, op["owner"], op["proto"], op.get("ports"), False)
        return
    req = request.build_allocation_request(op["owner"], op["proto"], op["count"], op.get("port"),
                                           op.get("shared", False), op.get("keep_existing", False), settings)
    allocator.allocate(store, req, settings)


def loop(db, log, seed, port_range):
    store = AllocationStore(db)
    settings = request.build_settings(port_range, None, False)
    rng = random.Random(seed)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    seq = 0
    while True:
        op = random_op(rng, settings.bounds)
        os.write(fd, (json.dumps({"seq": seq, "op": op}) + "\n").encode())
        try:
            apply_op(store, settings, op)
        except PortsError:
            pass  # exhaustion, a held static port: nothing changed
        rows = [[r.owner, r.proto, r.first, r.last, r.shared, r.kind, r.created, r.id] for r in load_rows(store)]
        os.write(fd, (json.dumps({"seq": seq, "done": True, "rows": rows}) + "\n").encode())
        seq += 1


def first(db, point):
    # The store's front calls these by the names it imported from store_files.
    if point == "after-parent":
        original_parent = allocation_store.prepare_parent

        def prepare_parent(path):
            original_parent(path)
            die()
        allocation_store.prepare_parent = prepare_parent
    elif point == "after-create":
        original_create = allocation_store.create_file

        def create_file(path):
            original_create(path)
            die()
        allocation_store.create_file = create_file
    elif point.startswith("stmt:"):
        target = int(point[len("stmt:"):])
        real_connect = sqlite3.connect
        seen = [0]

        def connect(*args, **kwargs):
            conn = real_connect(*args, **kwargs)

            def trace(statement):
                if seen[0] == target:
                    die()
                seen[0] += 1
            conn.set_trace_callback(trace)
            return conn
        allocation_store.sqlite3.connect = connect
    elif point == "ready":
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    settings = request.build_settings("25000-25099", None, False)
    store = AllocationStore(db)
    req = request.build_allocation_request("first", "tcp", 2, None, False, False, settings)
    allocator.allocate(store, req, settings)


def main():
    try:
        if sys.argv[1] == "loop":
            loop(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        else:
            first(sys.argv[2], sys.argv[3])
    except BaseException:
        sys.stderr.write(traceback.format_exc())
        sys.exit(3)


if __name__ == "__main__":
    main()
