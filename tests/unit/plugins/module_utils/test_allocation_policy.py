"""The allocation policy of SPEC.md, rule by rule, against a real database."""

from __future__ import annotations

import pytest

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError


def test_dynamic_takes_the_upper_band_first_fit(host):
    # 25000-25999 has a static band of 31 ports: the first dynamic port is 25031.
    assert host.allocate("web", 4).after.ranges[0] == (25031, 25034)
    assert str(host.allocate("rgw", 2).after.ranges[0]) == "25035-25036"


def test_dynamic_falls_back_to_the_static_band_only_when_upper_is_full(make_host):
    host = make_host(port_range="30000-30031")  # 32 ports: static band 16 (30000-30015)
    assert str(host.allocate("a", 16).after.ranges[0]) == "30016-30031"
    assert str(host.allocate("b", 3).after.ranges[0]) == "30000-30002"


def test_first_fit_reuses_the_lowest_hole(host):
    host.allocate("a", 2)
    host.allocate("b", 2)
    host.allocate("c", 2)
    from ansible_collections.berth.ports.plugins.module_utils.allocator import deallocate

    deallocate(host.store, "b")
    assert str(host.allocate("d", 1).after.ranges[0]) == "25033-25033"
    assert str(host.allocate("e", 3).after.ranges[0]) == "25037-25039"  # hole of 1 left is too small


def test_same_calls_give_same_ports_on_two_hosts(make_host):
    calls = [("a", 3), ("b", 1), ("c", 5), ("a", 1), ("d", 2)]
    results = []
    for _round in range(2):
        h = make_host()
        results.append([str(h.allocate(owner, count).after.ranges[0]) for owner, count in calls])
    assert results[0] == results[1]


def test_idempotent_when_owner_holds_what_is_asked(host):
    first = host.allocate("web", 3)
    again = host.allocate("web", 3)
    assert first.changed and not again.changed
    assert again.after == first.after
    assert len(host.rows()) == 1


def test_grow_and_shrink_in_place_keep_first_port(host):
    host.allocate("web", 2)
    grown = host.allocate("web", 5)
    assert grown.changed and str(grown.after.ranges[0]) == "25031-25035"
    shrunk = host.allocate("web", 1)
    assert shrunk.after.ranges == [(25031, 25031)]
    assert host.ranges("web") == ["25031-25031"]


def test_grow_moves_when_the_next_ports_are_taken(host):
    host.allocate("web", 2)  # 25031-25032
    host.allocate("db", 1)   # 25033
    moved = host.allocate("web", 3)
    assert moved.before.ranges == [(25031, 25032)]
    # web's own old ports are free again inside the same transaction; 25031-25032
    # is too short, so first-fit lands after db.
    assert host.ranges("web") == ["25034-25036"]
    assert host.ranges("db") == ["25033-25033"]


def test_keep_existing_adds_a_range_and_env_describes_the_oldest(host):
    host.allocate("web", 2)
    added = host.allocate("web", 3, keep_existing=True)
    assert [str(r) for r in added.after.ranges] == ["25031-25032", "25033-25035"]
    assert added.after.env == {"TCP_PORT": "25031", "TCP_PORTS_RANGE": "25031-25032", "TCP_PORTS": "25031,25032"}
    assert added.after.ports == [25031, 25032, 25033, 25034, 25035]
    # Without keep_existing and a different count the ranges collapse into one.
    collapsed = host.allocate("web", 4)
    assert host.ranges("web") == ["25031-25034"]
    assert collapsed.before.ports == [25031, 25032, 25033, 25034, 25035]


def test_tcp_and_udp_are_separate_name_spaces(host):
    tcp = host.allocate("dns", 1, proto="tcp")
    udp = host.allocate("dns", 1, proto="udp")
    assert tcp.after.port == udp.after.port == 25031
    assert udp.after.env == {"UDP_PORT": "25031"}


def test_static_request_takes_exactly_the_ports(host):
    result = host.allocate("rgw", 1, port=25080)
    assert result.after.ranges == [(25080, 25080)]
    assert host.rows()[0].kind == "static"
    assert not host.allocate("rgw", 1, port=25080).changed
    # A dynamic request never lands on a static port.
    host.allocate("metrics", 60)
    assert all(not r.contains(25080) for r in host.allocate("metrics", 60).after.ranges)


def test_static_collision_names_the_holder_and_changes_nothing(host):
    host.allocate("rgw", 1, port=25080)
    before = host.rows()
    with pytest.raises(PortsError, match=r"web/tcp ports 25079-25081: held by rgw \(25080-25080\)"):
        host.allocate("web", 3, port=25079)
    assert host.rows() == before


def test_shared_static_ports_need_every_holder_shared(host):
    host.allocate("haproxy-a", 1, port=25443, shared=True)
    assert host.allocate("haproxy-b", 1, port=25443, shared=True).changed
    # A shared holder never lets a non-shared request in ...
    with pytest.raises(PortsError, match="held by haproxy-a"):
        host.allocate("web", 1, port=25443)
    # ... and a non-shared holder never lets a shared request in.
    host.allocate("solo", 1, port=25500)
    with pytest.raises(PortsError, match="held by solo"):
        host.allocate("peer", 1, port=25500, shared=True)
    # Dynamic requests never land on shared ports either.
    host.allocate("fill", 1)
    assert not any(r.range.contains(25443) and r.owner == "fill" for r in host.rows())


def test_shared_flag_change_is_a_change(host):
    host.allocate("a", 1, port=25443, shared=True)
    result = host.allocate("a", 1, port=25443, shared=False)
    assert result.changed
    assert [r.shared for r in host.rows()] == [False]


def test_reserved_ports_are_skipped_dynamically_but_static_may_take_them(make_host):
    host = make_host(reserved=["25031-25040", 25042])
    assert str(host.allocate("a", 1).after.ranges[0]) == "25041-25041"
    assert str(host.allocate("b", 2).after.ranges[0]) == "25043-25044"
    assert host.allocate("c", 1, port=25035).after.ranges == [(25035, 25035)]


def test_listening_ports_are_skipped_and_refused_for_static(host):
    host.listening["tcp"] = {25031, 25033}
    assert str(host.allocate("a", 1).after.ranges[0]) == "25032-25032"
    assert str(host.allocate("b", 2).after.ranges[0]) == "25034-25035"
    with pytest.raises(PortsError, match="a process listens on 25033"):
        host.allocate("c", 1, port=25033)
    assert host.allocate("d", 1, port=25033, shared=True).changed
    # UDP listeners do not block TCP ports and vice versa.
    host.listening["udp"] = {25031}
    assert str(host.allocate("e", 1, proto="udp").after.ranges[0]) == "25032-25032"


def test_a_narrowed_policy_keeps_reserved_and_other_listeners_from_static_requests(make_host):
    """What the agent gives a grantee: no reserved port, and shared joins shared holders only."""
    host = make_host(reserved=["25100-25101"])
    host.settings = host.settings._replace(static_reserved=False, shared_skips_listening=False)
    with pytest.raises(PortsError, match=r"ports 25099-25100: reserved on this host \(25100-25101\)"):
        host.allocate("a", 2, port=25099)
    host.listening["tcp"] = {25200, 25300}
    with pytest.raises(PortsError, match="a process listens on 25200 that holds no allocation"):
        host.allocate("a", 1, port=25200, shared=True)
    with pytest.raises(PortsError, match="a process listens on 25300; ask with shared"):
        host.allocate("a", 1, port=25300)
    assert host.rows() == []
    host.settings = host.settings._replace(shared_skips_listening=True)
    assert host.allocate("peer", 1, port=25200, shared=True).changed  # a trusted caller joins the listener
    host.settings = host.settings._replace(shared_skips_listening=False)
    assert host.allocate("a", 1, port=25200, shared=True).changed  # a shared holder holds it now
    host.listening["tcp"].add(25201)
    with pytest.raises(PortsError, match="listens on 25201 that holds no allocation"):
        host.allocate("b", 2, port=25200, shared=True)


def test_skip_listening_false_ignores_listeners(make_host):
    host = make_host(skip_listening=False)
    host.listening["tcp"] = {25031}
    assert str(host.allocate("a", 1).after.ranges[0]) == "25031-25031"
    assert host.allocate("b", 1, port=25500).changed
    host.listening["tcp"] = {25500}
    assert host.allocate("b", 1, port=25500).changed is False


def test_owner_own_listener_does_not_block_its_own_regrowth(host):
    host.allocate("web", 1)  # 25031
    host.listening["tcp"] = {25031}  # web's own service now listens there
    assert str(host.allocate("web", 2).after.ranges[0]) == "25031-25032"
    host.allocate("rgw", 1, port=25080)
    host.listening["tcp"] = {25080}
    # Re-asking the same static port while its service runs is not a conflict.
    assert host.allocate("rgw", 2, port=25080).changed


def test_exhaustion_reports_largest_run_and_allocates_nothing(make_host):
    host = make_host(port_range="40000-40009")
    host.allocate("a", 4)
    host.allocate("b", 1, port=40006)
    before = host.rows()
    with pytest.raises(PortsError) as info:
        host.allocate("c", 4)
    message = str(info.value)
    assert "no run of 4 free tcp ports for owner c in 40000-40009" in message
    assert "largest free run: 3 ports (40007-40009)" in message
    assert host.rows() == before


def test_static_keep_existing_refuses_overlap_with_own_range(host):
    host.allocate("a", 3, port=25100)
    with pytest.raises(PortsError, match="already holds 25100-25102"):
        host.allocate("a", 1, port=25101, keep_existing=True)
    assert host.allocate("a", 1, port=25200, keep_existing=True).changed
    assert host.ranges("a") == ["25100-25102", "25200-25200"]


def test_check_mode_reports_the_same_ports_and_writes_nothing(host, tmp_path):
    planned = host.allocate("web", 4, check_mode=True)
    assert planned.changed
    assert not (tmp_path / "ports.db").exists()
    applied = host.allocate("web", 4)
    assert applied.after == planned.after
    regrow_planned = host.allocate("web", 6, check_mode=True)
    assert host.ranges("web") == ["25031-25034"]
    assert host.allocate("web", 6).after == regrow_planned.after


def test_static_replaces_dynamic_ranges_without_keep_existing(host):
    host.allocate("web", 2)
    host.allocate("web", 1, port=25500)
    assert host.ranges("web") == ["25500-25500"]


def test_dynamic_requests_step_over_shared_static_ports(make_host):
    host = make_host(port_range="100-163")  # dynamic band starts at 116
    host.allocate("lb-a", 1, port=117, shared=True)
    host.allocate("lb-b", 1, port=117, shared=True)
    assert host.ranges("web") == []
    assert str(host.allocate("web", 3).after.ranges[0]) == "118-120"
    assert str(host.allocate("one", 1).after.ranges[0]) == "116-116"
