# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One of many processes racing on one database (test_concurrency.py).

argv[1]: JSON {"db": path, "range": "LOW-HIGH", "ops": [op, ...]}; each op is
{"op": "allocate", "owner", "proto", "count", "port", "shared", "keep_existing"}
or {"op": "deallocate", "owner", "proto"}. Imports everything, prints "ready",
waits for a line on stdin (the barrier), runs the ops in order and prints one
JSON line: a result per op, {"ok": ...}, {"error": msg} or {"crash": traceback}.
"""

import json
import sys
import traceback

from ansible_collections.berth.ports.plugins.module_utils import allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError


def run(spec, op):
    store = AllocationStore(spec["db"])
    if op["op"] == "deallocate":
        result = allocator.deallocate(store, op["owner"], op["proto"], None, False)
        return {"changed": result.changed, "freed": [[r.proto, r.first, r.last] for r in result.freed]}
    settings = request.build_settings(spec["range"], None, False)
    req = request.build_allocation_request(
        op["owner"], op["proto"], op["count"], op.get("port"), op.get("shared", False), op.get("keep_existing", False), settings
    )
    outcome = allocator.allocate(store, req, settings)
    return {"changed": outcome.changed, "ranges": [[r.first, r.last] for r in outcome.after.ranges]}


def main():
    spec = json.loads(sys.argv[1])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    results = []
    for op in spec["ops"]:
        try:
            results.append({"ok": run(spec, op)})
        except PortsError as exc:
            results.append({"error": str(exc)})
        except BaseException:  # the test fails on any of these
            results.append({"crash": traceback.format_exc()})
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
