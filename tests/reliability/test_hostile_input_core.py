# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hundreds of generated bad inputs to the core API: always a one-line PortsError, never
another exception, and the database already on disk is left exactly as it was."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils import allocator, request
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError

from reliability_support import dir_snapshot

# The owner rule as SPEC.md states it, written out independently of request.py.
OWNER_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")
# Anything that could be a well-formed "LOW-HIGH" or "N" is left out of the bad ranges.
RANGE_LIKE = re.compile(r"\s*[0-9]+\s*(?:-\s*[0-9]+\s*)?")
RANGE = "25000-25999"
SIZE = 1000

FIXED = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

GOOD = {
    "owner": "svc-1",
    "proto": "tcp",
    "count": 1,
    "port": None,
    "shared": False,
    "keep_existing": False,
    "range": RANGE,
    "reserved": [],
    "ports": None,
}

wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=6),
)
huge = st.sampled_from([2 ** 31, 2 ** 63, 2 ** 64 + 1, 10 ** 30, -(2 ** 63)])
nasty_text = st.sampled_from([
    "", " ", "\n", "a\nb", "svc\n", "\x00", "svc\x00", "tcp\n", "\u2028", "٣", "２５０００", "ſvc", "../x", "a/b",
    "svc name", "-svc", ".svc", "_svc", "@svc", ":svc", "ü", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
])

bad_owner = st.one_of(
    wrong_types.filter(lambda v: v is not None),  # None means "take MODULE_ID" in the modules; the core refuses it too
    st.integers(),
    nasty_text.filter(lambda s: not OWNER_OK.fullmatch(s)),
    st.text(alphabet="abc", min_size=129, max_size=400),
    st.text(min_size=1, max_size=40).filter(lambda s: not OWNER_OK.fullmatch(s)),
    st.tuples(st.sampled_from(list("._@:-")), st.text(alphabet="abc", max_size=5)).map("".join),
)
bad_proto = st.one_of(
    wrong_types, st.integers(), huge,
    st.sampled_from(["TCP", "Tcp", "tcp ", " udp", "tcp\n", "sctp", "udp\x00", "all", "tcp,udp", ""]),
    st.text(max_size=8).filter(lambda s: s not in ("tcp", "udp")),
)
bad_dealloc_proto = bad_proto.filter(lambda p: p != "all")
bad_count = st.one_of(
    st.integers(max_value=0), st.integers(min_value=SIZE + 1), huge,
    st.floats(), st.booleans(), st.text(max_size=5), st.sampled_from(["1", "2\n", "٣", None]),
)
bad_port = st.one_of(
    st.integers(max_value=24999), st.integers(min_value=26000), huge,
    st.floats(min_value=25000, max_value=25999), st.booleans(), st.text(max_size=6), st.sampled_from(["25000", [25000]]),
)
inverted = st.tuples(st.integers(2, 65535), st.integers(1, 65534)).filter(lambda t: t[0] > t[1]).map(lambda t: "%d-%d" % t)
out_of_bounds = st.one_of(
    st.integers(65536, 99999).map(lambda n: "25000-%d" % n),
    st.integers(65536, 99999).map(str),
    st.just("0-100"), st.just("0"), st.just("00000-00010"),
    st.integers(max_value=0), st.integers(min_value=65536), huge,
)
malformed = st.one_of(
    st.sampled_from(["25000-", "-25000", "25000--25999", "25000-25999-26000", "25000..25999", "a-b", "25000:25999",
                     "25000 25999", "0x61a8-0x6590", "25e3-26e3", "２５０００-２５９９９", "٢٥٠٠٠-٢٥٩٩٩", "25000-25999\n1",
                     "123456-123457", ""]),
    st.text(max_size=14).filter(lambda s: not RANGE_LIKE.fullmatch(s)),
    st.floats(), st.booleans(), st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
)
bad_range = st.one_of(inverted, out_of_bounds, malformed)
bad_list_item = st.one_of(
    st.none(), st.floats(), st.booleans(), inverted, out_of_bounds, malformed.filter(lambda v: not isinstance(v, (list, bool, float))),
    st.lists(st.integers(25000, 25999), min_size=1, max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), min_size=1, max_size=1),
)
bad_list = st.tuples(st.lists(st.integers(25000, 25999).map(str), max_size=2), bad_list_item).map(lambda t: t[0] + [t[1]])


def _bad_path(kind, base):
    return {
        "empty": "",
        "nul": os.path.join(base, "po\x00rts.db"),
        "directory": base,
        "directory-slash": base + "/",
        "parent-is-file": os.path.join(base, "plain-file", "ports.db"),
        "dev-null": "/dev/null",
        "none": None,
        "int": 5,
        "bytes": os.path.join(base, "b.db").encode(),
        "list": [os.path.join(base, "l.db")],
    }[kind]


PATH_KINDS = ["empty", "nul", "directory", "directory-slash", "parent-is-file", "dev-null", "none", "int", "bytes", "list"]

allocate_cases = st.one_of(
    st.tuples(st.just("owner"), bad_owner),
    st.tuples(st.just("proto"), bad_proto),
    st.tuples(st.just("count"), bad_count),
    st.tuples(st.just("port"), bad_port),
    st.tuples(st.just("shared-without-port"), st.just(True)),
    st.tuples(st.just("count-larger-than-range"), st.integers(2, 20)),
    st.tuples(st.just("static-past-range-end"), st.integers(2, 20)),
    st.tuples(st.just("range"), bad_range),
    st.tuples(st.just("reserved"), bad_list),
    st.tuples(st.just("db_path"), st.sampled_from(PATH_KINDS)),
)
deallocate_cases = st.one_of(
    st.tuples(st.just("owner"), bad_owner),
    st.tuples(st.just("proto"), bad_dealloc_proto),
    st.tuples(st.just("ports"), bad_list),
    st.tuples(st.just("db_path"), st.sampled_from(PATH_KINDS)),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A populated database and the odd paths around it."""
    base = str(tmp_path_factory.mktemp("hostile"))
    db = os.path.join(base, "ports.db")
    store = AllocationStore(db)
    s = request.build_settings(RANGE, None, False)
    for owner, count, port, shared in (("svc-1", 2, None, False), ("svc-2", 3, None, False), ("web", 1, 25003, True)):
        allocator.allocate(store, request.build_allocation_request(owner, "tcp", count, port, shared, False, s), s)
    allocator.allocate(store, request.build_allocation_request("svc-1", "udp", 1, None, False, False, s), s)
    with open(os.path.join(base, "plain-file"), "w") as handle:
        handle.write("x\n")
    return base, db


def _args(field, value, db, base):
    args = dict(GOOD, db_path=db)
    if field == "shared-without-port":
        args["shared"] = True
    elif field == "count-larger-than-range":
        args.update(range="25000-%d" % (25000 + value - 2), count=value)
    elif field == "static-past-range-end":
        args.update(port=25999 - value + 2, count=value)
    elif field == "db_path":
        args["db_path"] = _bad_path(value, base)
    else:
        args[field] = value
    return args


def _call_allocate(args, check_mode):
    s = request.build_settings(args["range"], args["reserved"], False)
    req = request.build_allocation_request(
        args["owner"], args["proto"], args["count"], args["port"], args["shared"], args["keep_existing"], s)
    return allocator.allocate(AllocationStore(args["db_path"]), req, s, check_mode=check_mode)


def _call_deallocate(args, check_mode):
    proto = args["proto"]
    return allocator.deallocate(AllocationStore(args["db_path"]), args["owner"], proto, args["ports"], check_mode)


def _assert_refused(world, call, field, value, check_mode):
    base, db = world
    args = _args(field, value, db, base)
    before = dir_snapshot(base)
    rows_before = load_rows(AllocationStore(db))
    try:
        result = call(args, check_mode)
    except PortsError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    except Exception as exc:  # noqa: BLE001 - the point of the test
        raise AssertionError("%s=%r raised %s: %s (only PortsError may escape the core)" % (field, value, type(exc).__name__, exc))
    else:
        raise AssertionError("%s=%r was accepted: %r" % (field, value, result))
    assert dir_snapshot(base) == before, "%s=%r changed files in %s" % (field, value, base)
    assert load_rows(AllocationStore(db)) == rows_before


@FIXED
@given(case=allocate_cases, check_mode=st.booleans())
def test_allocate_refuses_bad_input(world, case, check_mode):
    _assert_refused(world, _call_allocate, case[0], case[1], check_mode)


@FIXED
@given(case=deallocate_cases, check_mode=st.booleans())
def test_deallocate_refuses_bad_input(world, case, check_mode):
    _assert_refused(world, _call_deallocate, case[0], case[1], check_mode)


@pytest.mark.parametrize("kind", PATH_KINDS)
def test_read_refuses_bad_path(world, kind):
    base, db = world
    before = dir_snapshot(base)
    with pytest.raises(PortsError) as info:
        load_rows(AllocationStore(_bad_path(kind, base)))
    assert "\n" not in str(info.value)
    assert dir_snapshot(base) == before


# -- regressions: each of these once escaped as a non-PortsError exception ----------


@pytest.mark.parametrize("value", [1.5, True, object()], ids=["float", "bool", "object"])
def test_scalar_port_list_is_refused(world, value):
    _assert_refused(world, _call_allocate, "reserved", value, False)


@pytest.mark.parametrize("value", ["no", "false", "0", [], None, 2], ids=["no", "false", "0", "list", "none", "two"])
def test_non_bool_flag_is_refused(world, value):
    base, db = world
    args = dict(GOOD, db_path=db, port=25010, shared=value)
    before = dir_snapshot(base)
    with pytest.raises(PortsError):
        _call_allocate(args, True)
    assert dir_snapshot(base) == before


def test_absurdly_deep_db_path_is_refused(world, tmp_path):
    args = dict(GOOD, db_path=str(tmp_path / ("d/" * 3000)) + "ports.db")
    before = dir_snapshot(str(tmp_path))
    with pytest.raises(PortsError):
        _call_allocate(args, False)
    assert dir_snapshot(str(tmp_path)) == before
