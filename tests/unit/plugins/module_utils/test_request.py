"""Validation of what callers ask for, before anything is touched."""

from __future__ import annotations

import pytest

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import (
    AllocationRequest,
    Settings,
    build_allocation_request,
    build_settings,
    resolve_owner,
    validate_owner,
    validate_proto,
)


@pytest.mark.parametrize("owner", ["web", "ceph-rgw", "a", "x" * 128, "svc@host:1", "9lives", "a.b_c-d"])
def test_owner_accepted(owner):
    assert validate_owner(owner) == owner


@pytest.mark.parametrize(
    "owner", ["", "x" * 129, "-web", ".hidden", "_x", "@x", "a b", "a/b", "web\n", "caf\u00e9", None, 5, ["web"]]
)
def test_owner_refused(owner):
    with pytest.raises(PortsError, match="owner"):
        validate_owner(owner)


def test_owner_defaults_to_module_id():
    assert resolve_owner(None, {"MODULE_ID": "traefik1"}) == "traefik1"
    assert resolve_owner("web", {"MODULE_ID": "traefik1"}) == "web"
    with pytest.raises(PortsError, match="MODULE_ID"):
        resolve_owner(None, {})
    with pytest.raises(PortsError, match="owner"):
        resolve_owner(None, {"MODULE_ID": "../etc"})


def test_proto():
    assert validate_proto("udp") == "udp"
    assert validate_proto("all", allow_all=True) == "all"
    for bad in ("all", "TCP", "sctp", None):
        with pytest.raises(PortsError, match="proto"):
            validate_proto(bad)


def test_settings_defaults():
    settings = build_settings()
    assert settings.bounds == PortRange(25000, 25999)
    assert settings.reserved == ()
    assert settings.skip_listening is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 0}, "at least 1"),
        ({"count": -3}, "at least 1"),
        ({"count": 1001}, "larger than the range"),
        ({"count": "2"}, "not an integer"),
        ({"count": True}, "not an integer"),
        ({"port": 24999}, "outside the range"),
        ({"port": 25999, "count": 2}, "outside the range"),
        ({"shared": True}, "needs port"),
        ({"proto": "icmp"}, "proto"),
    ],
)
def test_bad_requests_name_owner_and_problem(kwargs, message):
    with pytest.raises(PortsError, match=message) as info:
        build_allocation_request("web", **dict({"proto": "tcp"}, **kwargs))
    assert "\n" not in str(info.value)


def test_static_request_range():
    request = build_allocation_request("web", port=25080, count=3, shared=True)
    assert request.static_range == PortRange(25080, 25082)
    assert request.shared is True


# Found by `make mutation` (issue 22): what the settings and a request carry.

# build_settings: the range, reserved ports and listener check given are the ones kept.
def test_settings_keep_range_reserved_and_listener_check():
    settings = build_settings("40000-40009", [40001, "40005-40006"], skip_listening=False)
    assert settings == Settings(PortRange(40000, 40009), (PortRange(40001, 40001), PortRange(40005, 40006)), False)


# build_allocation_request: counts and ports are checked against the bounds of
# the settings given, not the default range; a count of the whole range fits.
def test_request_is_checked_against_the_settings_bounds():
    settings = build_settings("40000-40009")
    assert build_allocation_request("web", "udp", 10, settings=settings) == AllocationRequest("web", "udp", 10)
    request = build_allocation_request("web", port=40000, count=10, keep_existing=True, settings=settings)
    assert request == AllocationRequest("web", "tcp", 10, 40000, False, True)
    assert request.static_range == PortRange(40000, 40009)
    with pytest.raises(PortsError, match=r"^count 11 for owner web/tcp is larger than the range 40000-40009 \(10 ports\)$"):
        build_allocation_request("web", count=11, settings=settings)
    with pytest.raises(PortsError, match=r"^ports 25000-25000 for owner web/tcp are outside the range 40000-40009$"):
        build_allocation_request("web", port=25000, settings=settings)


def test_dynamic_request_has_no_static_range():
    request = build_allocation_request("web")
    assert request == AllocationRequest("web", "tcp", 1, None, False, False)
    assert request.static_range is None


# validate_proto: the refusal lists the choices readably ("XX, XX".join survived).
def test_bad_proto_names_the_choices():
    with pytest.raises(PortsError, match=r"^proto 'icmp' is not one of tcp, udp$"):
        validate_proto("icmp")
    with pytest.raises(PortsError, match=r"^proto 'icmp' is not one of tcp, udp, all$"):
        validate_proto("icmp", allow_all=True)


# build_settings: a bad reserved entry is named as reserved (what="XXreservedXX" survived).
def test_bad_reserved_entry_is_named():
    with pytest.raises(PortsError, match=r"^reserved: range 'web' is not of the form LOW-HIGH$"):
        build_settings(reserved=[25010, "web"])
    with pytest.raises(PortsError, match=r"^reserved \{'web': 1\} is not a list of ports and LOW-HIGH ranges$"):
        build_settings(reserved={"web": 1})
