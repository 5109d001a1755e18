"""Behaviour that mutation testing found unguarded (issue 13), one test per gap.

Each test names the mutant it kills: the change to the code under which it
fails. tests/mutation/ re-runs the mutants; CONTRIBUTING.md says how.
"""

from __future__ import annotations

import pytest

from ansible_collections.berth.ports.plugins.module_utils import allocator as allocator_mod
from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import (
    Allocation,
    dynamic_blocked,
    largest_run,
    owner_ranges,
    plan_allocation,
    plan_deallocation,
)
from ansible_collections.berth.ports.plugins.module_utils.allocator import deallocate
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import (
    AllocationRequest,
    build_allocation_request,
    build_settings,
    resolve_owner,
)

CREATED = "2026-01-01T00:00:00Z"


def _row(owner, first, last, proto="tcp", kind="dynamic", row_id=None, shared=False):
    return Allocation(owner, proto, first, last, shared, kind, CREATED, row_id)


# 1. request.py: the static range's end `port + count - 1` -> `port + count + 1`.
def test_static_request_ending_on_the_top_of_the_range_is_accepted():
    assert build_allocation_request("web", port=25999).static_range == PortRange(25999, 25999)
    assert build_allocation_request("web", port=25998, count=2).static_range == PortRange(25998, 25999)
    assert AllocationRequest("web", "tcp", 1, 25999).static_range == PortRange(25999, 25999)


def test_static_request_on_the_top_port_is_allocated(host):
    assert host.allocate("edge", 1, port=25999).after.ranges == [(25999, 25999)]


# 2. _plan_static: `if request.keep_existing:` -> `if False:`.
def test_repeating_a_static_keep_existing_request_changes_nothing(host):
    host.allocate("web", 2)
    assert host.allocate("web", 1, port=25500, keep_existing=True).changed
    again = host.allocate("web", 1, port=25500, keep_existing=True)  # a playbook's second run
    assert not again.changed
    assert host.ranges("web") == ["25031-25032", "25500-25500"]


# 3. _plan_static: `if request.keep_existing:` -> `if True:`.
def test_static_request_without_keep_existing_collapses_several_ranges(host):
    host.allocate("web", 2)
    host.allocate("web", 1, port=25500, keep_existing=True)
    collapsed = host.allocate("web", 1, port=25500)
    assert collapsed.changed
    assert host.ranges("web") == ["25500-25500"]
    assert collapsed.after.env == {"TCP_PORT": "25500"}


# 4. _held_ports: `range(row.first, row.last + 1)` -> `range(row.last + 1)`:
# a foreign listener below the owner's range passes for the owner's own.
def test_static_move_onto_a_foreign_listener_below_the_owner_is_refused(host):
    host.allocate("rgw", 1, port=25500)
    host.listening["tcp"] = {25100}
    with pytest.raises(PortsError, match="a process listens on 25100"):
        host.allocate("rgw", 1, port=25100)
    assert host.ranges("rgw") == ["25500-25500"]


def test_dynamic_move_steps_over_a_foreign_listener_below_the_owner(host):
    host.allocate("old", 4)  # 25031-25034, freed below
    host.allocate("web", 2)  # 25035-25036
    host.allocate("db", 1)  # 25037: web cannot grow in place
    deallocate(host.store, "old")
    host.listening["tcp"] = {25031}  # not web's process
    assert str(host.allocate("web", 3).after.ranges[0]) == "25032-25034"


def test_held_ports_are_exactly_the_rows_ports():
    rows = [_row("web", 25035, 25036)]
    blocked = dynamic_blocked(rows, build_settings(), listening=[25031, 25034, 25037], exempt=rows)
    assert blocked == [PortRange(25031, 25031), PortRange(25034, 25034), PortRange(25037, 25037)]


# 5. _held_ports: `row.last + 1` -> `row.last + 2`: the port just above the
# owner's range would count as its own.
def test_growing_in_place_stops_at_a_foreign_listener_just_above(host):
    host.allocate("web", 2)  # 25031-25032
    host.listening["tcp"] = {25033}
    grown = host.allocate("web", 3)
    assert str(grown.after.ranges[0]) == "25034-25036"


def test_growing_in_place_stops_at_a_foreign_listener_just_above_full_scan():
    mine = _row("web", 25031, 25032, row_id=1)
    plan = plan_allocation(AllocationRequest("web", "tcp", 3), build_settings(), [mine], {25033}, CREATED)
    assert [(r.first, r.last) for r in plan.add] == [(25034, 25036)]


# 6. owner_ranges: `row.id or 0` -> `row.id and 0`: the oldest range comes first
# even when it sits above a newer one and both were made in the same second.
def test_oldest_range_first_even_at_a_higher_port():
    older = _row("web", 25500, 25500, kind="static", row_id=1)
    newer = _row("web", 25031, 25031, row_id=2)
    assert owner_ranges([newer, older], "web", "tcp") == [older, newer]


def test_env_describes_the_oldest_range_at_a_higher_port(host, monkeypatch):
    monkeypatch.setattr(allocator_mod, "utc_now", lambda: CREATED)
    host.allocate("web", 2, port=25500)
    host.allocate("web", 1, keep_existing=True)
    stored = host.allocate("web", 3)  # holds 3 already: nothing changes, rows as stored
    assert not stored.changed
    assert [str(r) for r in stored.after.ranges] == ["25500-25501", "25031-25031"]
    assert stored.after.env == {"TCP_PORT": "25500", "TCP_PORTS_RANGE": "25500-25501", "TCP_PORTS": "25500,25501"}


# 7. plan_deallocation: `continue` -> `break`: rows of another proto (or
# owner) before the ones to free must not stop the scan.
def test_freeing_udp_after_tcp_rows(host):
    host.allocate("dns", 1, proto="tcp")
    host.allocate("dns", 1, proto="udp")
    freed = deallocate(host.store, "dns", "udp")
    assert [(r.proto, str(r.range)) for r in freed.freed] == [("udp", "25031-25031")]
    assert host.ranges("dns", "udp") == []
    assert host.ranges("dns", "tcp") == ["25031-25031"]


def test_plan_deallocation_skips_other_protos_and_owners():
    rows = [_row("dns", 1, 1, "tcp"), _row("web", 2, 2, "udp"), _row("dns", 3, 3, "udp")]
    assert plan_deallocation("dns", ("udp",), rows).remove == (rows[2],)


# 8. dynamic_blocked: `own = merge(...)` -> `own = None`: a port reserved
# after the owner took it stays usable by that owner in the full-scan planner.
def test_reserved_ports_do_not_block_the_owners_own_full_scan():
    settings = build_settings("100-163", ["120-125"], skip_listening=False)
    mine = _row("a", 120, 122, row_id=1)
    assert dynamic_blocked([mine], settings, (), exempt=[mine]) == [PortRange(123, 125)]
    plan = plan_allocation(AllocationRequest("a", "tcp", 2), settings, [mine], (), CREATED)
    assert [(r.first, r.last) for r in plan.add] == [(120, 121)]  # shrinks in place


# 9. largest_run: `>` -> `>=`: of equal runs, the lowest is named.
def test_largest_run_names_the_lowest_of_equal_runs():
    assert largest_run([PortRange(1, 3), PortRange(10, 12), PortRange(20, 21)]) == PortRange(1, 3)
    assert largest_run([]) is None


def test_exhaustion_names_the_lowest_of_equal_largest_runs(make_host):
    host = make_host(port_range="40000-40009")  # 10 ports: no static band
    host.allocate("a", 1, port=40003)
    host.allocate("b", 1, port=40007)
    with pytest.raises(PortsError, match=r"largest free run: 3 ports \(40000-40002\)"):
        host.allocate("c", 4)


# 10. resolve_owner: `owner == ""` no longer falling back to MODULE_ID.
def test_empty_owner_falls_back_to_module_id():
    assert resolve_owner("", {"MODULE_ID": "traefik1"}) == "traefik1"
    with pytest.raises(PortsError, match="MODULE_ID"):
        resolve_owner("", {})


# 11. request.py: the default count 1 -> 2.
def test_default_count_is_one():
    assert build_allocation_request("web").count == 1
    assert AllocationRequest("web", "tcp").count == 1
    assert build_allocation_request("web", port=25999).static_range == PortRange(25999, 25999)


# Found by `make mutation` after the list.

# _describe: several listeners are named as ports and runs ("25033-25034, 25036").
def test_static_refusal_names_every_listener_as_ports_and_runs(host):
    host.listening["tcp"] = {25033, 25034, 25036}
    with pytest.raises(PortsError, match=r"a process listens on 25033-25034, 25036;"):
        host.allocate("web", 5, port=25032)


# _who: the holder is named with its range, and ", shared" when it shares.
def test_collision_names_a_shared_holder_as_shared(host):
    host.allocate("lb-a", 1, port=25443, shared=True)
    with pytest.raises(PortsError, match=r"held by lb-a \(25443-25443, shared\); ask with shared to join it"):
        host.allocate("web", 1, port=25443)


# _plan_dynamic: with no free port at all, the largest free run is "none".
def test_exhaustion_with_no_free_port_says_none(make_host):
    host = make_host(port_range="40000-40001")
    host.allocate("a", 2)
    with pytest.raises(PortsError, match=r"largest free run: none$"):
        host.allocate("b", 1)


# plan_deallocation with ports: only the owner's ranges holding one of them.
def test_plan_deallocation_with_ports_frees_only_the_ranges_holding_them():
    rows = [_row("a", 10, 12), _row("a", 20, 20), _row("a", 30, 31)]
    plan = plan_deallocation("a", ("tcp",), rows, [PortRange(11, 11), PortRange(31, 40)])
    assert plan.remove == (rows[0], rows[2])
    assert plan_deallocation("a", ("tcp",), rows, [PortRange(13, 19)]).remove == ()


# build_allocation_request: a bad count or port is named as such.
@pytest.mark.parametrize("name", ["count", "port"])
def test_bad_integer_is_named(name):
    with pytest.raises(PortsError, match=r"^%s '2' is not an integer$" % name):
        build_allocation_request("web", **{name: "2"})


# Allocation.as_dict: what port_info returns per allocation.
def test_allocation_as_dict():
    row = Allocation("web", "udp", 25031, 25032, True, "static", CREATED, 7, "port_allocate")
    assert row.as_dict() == {
        "owner": "web", "proto": "udp", "first": 25031, "last": 25032, "shared": True,
        "kind": "static", "created": CREATED, "origin": "port_allocate",
    }


# build_allocation_request / build_settings: a flag that is not a boolean is named.
@pytest.mark.parametrize("flag", ["shared", "keep_existing"])
def test_bad_flag_is_named(flag):
    with pytest.raises(PortsError, match=r"^%s 'yes' is not a boolean$" % flag):
        build_allocation_request("web", port=25080, **{flag: "yes"})


def test_bad_skip_listening_is_named():
    with pytest.raises(PortsError, match=r"^skip_listening 'yes' is not a boolean$"):
        build_settings(skip_listening="yes")


# _plan_static: `own |= <shared holders' ports>` -> `own = ...`. A grantee
# (shared does not skip the listener check) turning its own exclusive port
# into a shared one: its own service listens there, and is no stranger's.
def test_owner_making_its_listened_port_shared_is_not_refused_for_its_own_listener():
    settings = build_settings()._replace(shared_skips_listening=False)
    mine = _row("web", 25100, 25100, kind="static")
    other_shared = _row("peer", 25200, 25200, kind="static", shared=True)
    request = build_allocation_request("web", port=25100, count=2, shared=True)
    plan = plan_allocation(request, settings, [mine, other_shared], {25100}, CREATED)
    assert [(row.owner, row.first, row.last, row.shared) for row in plan.add] == [("web", 25100, 25101, True)]
    assert plan.remove == (mine,)
    # a listener nobody holds is still refused
    with pytest.raises(PortsError, match=r"listens on 25101 that holds no allocation"):
        plan_allocation(request, settings, [mine, other_shared], {25100, 25101}, CREATED)


# _plan_static: `", ".join(...)` -> `"XX, XX".join(...)`: a static request
# across several reserved ranges names each of them, in order.
def test_static_request_over_several_reserved_ranges_names_them_all():
    settings = build_settings(reserved=["25100-25101", "25104"])._replace(static_reserved=False)
    request = build_allocation_request("web", port=25099, count=8)
    with pytest.raises(PortsError, match=r"^web/tcp ports 25099-25106: reserved on this host "
                                         r"\(25100-25101, 25104-25104\); not for this caller$"):
        plan_allocation(request, settings, [], set(), CREATED)
