"""Property tests: whatever sequence of calls, the state keeps SPEC.md's invariants.

A small range makes collisions, exhaustion, shared ports and fallbacks to the
static band common, which is where an allocator goes wrong.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.allocator import deallocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortLimitExceeded, PortsError

from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import Host

LOW, HIGH = 100, 163  # 64 ports: static band 16 (100-115), dynamic 116-163
OWNERS = ["a", "b", "c", "d", "e"]

dynamic_op = st.fixed_dictionaries(
    {
        "op": st.just("allocate"),
        "owner": st.sampled_from(OWNERS),
        "proto": st.sampled_from(["tcp", "udp"]),
        "count": st.integers(1, 12),
        "keep_existing": st.booleans(),
    }
)
static_op = st.fixed_dictionaries(
    {
        "op": st.just("allocate"),
        "owner": st.sampled_from(OWNERS),
        "proto": st.sampled_from(["tcp", "udp"]),
        "count": st.integers(1, 4),
        "keep_existing": st.booleans(),
        # Mostly inside the range, sometimes just outside it; a few hot ports
        # so that static requests meet each other and shared holders.
        "port": st.one_of(st.sampled_from([100, 116, 117, 120]), st.integers(LOW - 2, HIGH)),
        "shared": st.booleans(),
    }
)
free_op = st.fixed_dictionaries(
    {"op": st.just("deallocate"), "owner": st.sampled_from(OWNERS), "proto": st.sampled_from(["tcp", "udp", "all"])}
)
listen_op = st.fixed_dictionaries({"op": st.just("listen"), "ports": st.sets(st.integers(LOW, HIGH), max_size=4)})
operations = st.lists(st.one_of(dynamic_op, static_op, free_op, listen_op), min_size=1, max_size=25)


def run(ops, reserved=(), check_first=False):
    """Apply ``ops`` to a fresh host; return the outcome of every call and the host."""
    directory = tempfile.mkdtemp(prefix="berth-prop-")
    host = Host(directory + "/ports.db", port_range="%d-%d" % (LOW, HIGH), reserved=reserved)
    outcomes = []
    for op in ops:
        if op["op"] == "listen":
            host.listening["tcp"] = set(op["ports"])
            outcomes.append(None)
            continue
        before = host.rows()
        try:
            if op["op"] == "deallocate":
                result = deallocate(host.store, op["owner"], op["proto"])
                outcomes.append(("freed", [str(r.range) for r in result.freed]))
            else:
                kwargs = dict((k, v) for k, v in op.items() if k not in ("op", "owner", "proto", "count"))
                if check_first:
                    planned = host.allocate(op["owner"], op["count"], op["proto"], check_mode=True, **kwargs)
                    assert host.rows() == before, "check mode wrote"
                result = host.allocate(op["owner"], op["count"], op["proto"], **kwargs)
                if check_first:
                    assert planned.after == result.after and planned.changed == result.changed
                outcomes.append(("ok", result.changed, [str(r) for r in result.after.ranges]))
                check_result(op, result)
        except PortsError as exc:
            assert "\n" not in str(exc)
            assert host.rows() == before, "a failed call changed the state"
            outcomes.append(("error", str(exc)))
        check_state(host)
    return outcomes, host


def check_result(op, result):
    ranges = result.after.ranges
    assert ranges, "an allocation returned no ports"
    assert result.after.ports == [p for r in ranges for p in range(r.first, r.last + 1)]
    newest = ranges[-1] if op.get("keep_existing") else ranges[0]
    if not op.get("keep_existing"):
        assert len(ranges) == 1 or not result.changed
    if result.changed:
        assert newest.size == op["count"], "count ports, contiguous"
        if "port" in op:
            assert newest.first == op["port"]
    assert result.after.env["%s_PORT" % op["proto"].upper()] == str(ranges[0].first)


def check_state(host):
    holders = defaultdict(list)
    for row in host.rows():
        assert LOW <= row.first <= row.last <= HIGH, "range outside its bounds"
        for port in range(row.first, row.last + 1):
            holders[(row.proto, port)].append(row)
    for (proto, port), rows in holders.items():
        if len(rows) > 1:
            assert all(r.shared for r in rows), "%s/%d handed out twice: %r" % (proto, port, rows)
            assert all(r.kind == "static" for r in rows)
            assert len(set(r.owner for r in rows)) == len(rows)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_invariants_hold_after_every_call(ops):
    run(ops, check_first=True)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_same_calls_give_same_ports(ops):
    first = run(ops)[0]
    second = run(ops)[0]
    # Error messages and ports must match; nothing depends on time or randomness.
    assert first == second


@settings(max_examples=60, deadline=None)
@given(operations, st.sets(st.integers(LOW, HIGH), max_size=10))
def test_reserved_ports_are_never_handed_out_dynamically(ops, reserved):
    ops = [op for op in ops if "port" not in op]
    host = run(ops, reserved=sorted(reserved))[1]
    for row in host.rows():
        assert row.kind == "dynamic"
        assert not reserved & set(range(row.first, row.last + 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(dynamic_op, static_op, free_op), min_size=1, max_size=25), st.integers(0, 8))
def test_a_demand_cap_is_never_passed_and_refuses_only_what_would_pass_it(ops, cap):
    """NethServer's max_ports: every call capped at ``cap`` ports per owner and proto."""
    directory = tempfile.mkdtemp(prefix="berth-prop-")
    host = Host(directory + "/ports.db", port_range="%d-%d" % (LOW, HIGH))
    for op in ops:
        if op["op"] == "deallocate":
            deallocate(host.store, op["owner"], op["proto"])
            continue
        kwargs = dict((k, v) for k, v in op.items() if k not in ("op", "owner", "proto", "count"))
        before = host.rows()
        try:
            result = host.allocate(op["owner"], op["count"], op["proto"], max_ports=cap, **kwargs)
        except PortLimitExceeded:
            assert host.rows() == before, "a refused call changed the state"
            # Refused only because the same call, uncapped, would hold more than cap.
            uncapped = host.allocate(op["owner"], op["count"], op["proto"], check_mode=True, **kwargs)
            assert len(uncapped.after.ports) > cap
            continue
        except PortsError:
            continue
        assert len(result.after.ports) <= cap
        for proto in ("tcp", "udp"):
            for owner in OWNERS:
                assert sum(r.last - r.first + 1 for r in host.rows() if (r.owner, r.proto) == (owner, proto)) <= cap
