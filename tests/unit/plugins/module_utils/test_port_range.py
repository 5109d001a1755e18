"""Range parsing, the static band rule and free-run arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import (
    PortRange,
    bands,
    free_runs,
    merge,
    parse_port_list,
    parse_range,
    static_band_size,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("25000-25999", PortRange(25000, 25999)),
        (" 1 - 65535 ", PortRange(1, 65535)),
        ("8080", PortRange(8080, 8080)),
        (8080, PortRange(8080, 8080)),
        ("100-100", PortRange(100, 100)),
    ],
)
def test_parse_range_accepts(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "-", "2-1", "0-10", "1-65536", "abc", "1-2-3", "25000-", "-25000", "1.5-2", None, [], {}, True, 1.0,
     "\u0661-\u0662", "1-2\n3", 0, 70000, -5],
)
def test_parse_range_refuses_with_one_line(text):
    with pytest.raises(PortsError) as info:
        parse_range(text)
    assert "\n" not in str(info.value)


def test_parse_port_list_mixes_ports_and_ranges():
    assert parse_port_list([25550, "25560-25570"]) == [PortRange(25550, 25550), PortRange(25560, 25570)]
    assert parse_port_list("25001") == [PortRange(25001, 25001)]
    with pytest.raises(PortsError, match="reserved"):
        parse_port_list(["9-1"], what="reserved")


@pytest.mark.parametrize(
    "bounds, static",
    [
        # Kubernetes' NodePort examples, as SPEC.md quotes them.
        ("30000-32767", 86),
        ("30000-30127", 16),
        ("30000-34095", 128),
        ("30000-30015", 0),
        ("25000-25999", 31),
        ("1-65535", 128),
        ("1-16", 0),
        ("1-17", 16),
    ],
)
def test_static_band_size_follows_the_nodeport_rule(bounds, static):
    assert static_band_size(parse_range(bounds).size) == static


def test_bands_put_the_upper_band_first():
    assert list(bands(PortRange(30000, 32767))) == [PortRange(30086, 32767), PortRange(30000, 30085)]
    # Under 16 ports there is no static band at all.
    assert list(bands(PortRange(30000, 30015))) == [PortRange(30000, 30015)]
    # 17 ports: a static band of 16 and a dynamic band of one port.
    assert list(bands(PortRange(1, 17))) == [PortRange(17, 17), PortRange(1, 16)]


ranges_in_small_space = st.lists(
    st.tuples(st.integers(1, 200), st.integers(0, 20)).map(lambda t: PortRange(t[0], min(200, t[0] + t[1]))),
    max_size=20,
)


@given(ranges_in_small_space)
def test_merge_covers_exactly_the_same_ports(ranges):
    merged = merge(ranges)
    covered = set(p for r in ranges for p in r.ports())
    assert set(p for r in merged for p in r.ports()) == covered
    for left, right in zip(merged, merged[1:]):
        assert left.last + 1 < right.first  # disjoint and not adjacent


@given(ranges_in_small_space, st.integers(1, 200), st.integers(0, 199))
def test_free_runs_are_the_complement_inside_bounds(taken, low, span):
    bounds = PortRange(low, min(200, low + span))
    runs = free_runs(bounds, taken)
    covered = set(p for r in taken for p in r.ports())
    free = set(p for r in runs for p in r.ports())
    assert free == set(bounds.ports()) - covered
    for run in runs:
        assert bounds.covers(run)
    for left, right in zip(runs, runs[1:]):
        assert left.last + 1 < right.first  # maximal runs


# Behaviour the mutation run (issue 22) found unguarded: boundary ports, the
# text of errors and the deterministic edge cases the properties above only
# reach by chance.

def test_port_range_size_ports_and_text():
    assert PortRange(5, 7).size == 3
    assert PortRange(9, 9).size == 1
    assert PortRange(5, 7).ports() == [5, 6, 7]
    assert PortRange(9, 9).ports() == [9]
    assert str(PortRange(25000, 25999)) == "25000-25999"
    assert str(PortRange(8080, 8080)) == "8080-8080"


@pytest.mark.parametrize(
    "left, right, expected",
    [
        (PortRange(100, 200), PortRange(200, 300), True),  # one shared end port
        (PortRange(100, 200), PortRange(50, 100), True),
        (PortRange(100, 200), PortRange(150, 150), True),
        (PortRange(100, 200), PortRange(100, 200), True),
        (PortRange(100, 200), PortRange(201, 300), False),  # adjacent is not overlapping
        (PortRange(100, 200), PortRange(50, 99), False),
    ],
)
def test_overlaps_counts_shared_end_ports_both_ways(left, right, expected):
    assert left.overlaps(right) is expected
    assert right.overlaps(left) is expected


def test_contains_includes_both_ends_and_nothing_outside():
    span = PortRange(100, 200)
    assert [port for port in (99, 100, 101, 199, 200, 201) if span.contains(port)] == [100, 101, 199, 200]


@pytest.mark.parametrize(
    "inner, expected",
    [
        (PortRange(100, 200), True),
        (PortRange(100, 100), True),
        (PortRange(200, 200), True),
        (PortRange(99, 200), False),
        (PortRange(100, 201), False),
        (PortRange(50, 99), False),
    ],
)
def test_covers_includes_both_ends(inner, expected):
    assert PortRange(100, 200).covers(inner) is expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("2-1", "range '2-1' is inverted: 2 is above 1"),
        ("0-10", "port '0-10' is outside 1-65535"),
        ("1-65536", "port '1-65536' is outside 1-65535"),
        ("70000", "port '70000' is outside 1-65535"),
        (0, "port 0 is outside 1-65535"),
        ("abc", "range 'abc' is not of the form LOW-HIGH"),
        (None, "range None is not a string of the form LOW-HIGH"),
        (True, "range True is not a string of the form LOW-HIGH"),
    ],
)
def test_parse_range_errors_name_the_value_and_the_rule(text, message):
    with pytest.raises(PortsError) as info:
        parse_range(text)
    assert str(info.value) == message


def test_parse_range_accepts_the_bounds_of_the_port_space():
    assert parse_range(1) == PortRange(1, 1)
    assert parse_range(65535) == PortRange(65535, 65535)
    assert parse_range("65535") == PortRange(65535, 65535)
    assert parse_range("1-1") == PortRange(1, 1)


def test_parse_port_list_takes_any_collection_and_one_bare_item():
    assert parse_port_list((25001, "25003-25004")) == [PortRange(25001, 25001), PortRange(25003, 25004)]
    assert parse_port_list({25001}) == [PortRange(25001, 25001)]
    assert parse_port_list(frozenset(["25001-25002"])) == [PortRange(25001, 25002)]
    assert parse_port_list(25001) == [PortRange(25001, 25001)]
    assert parse_port_list([]) == []


@pytest.mark.parametrize(
    "items, what, message",
    [
        (None, "ports", "ports None is not a list of ports and LOW-HIGH ranges"),
        (True, "ports", "ports True is not a list of ports and LOW-HIGH ranges"),
        ({"a": 1}, "reserved", "reserved {'a': 1} is not a list of ports and LOW-HIGH ranges"),
        (["9-1"], "reserved", "reserved: range '9-1' is inverted: 9 is above 1"),
        ([25001, "x"], "ports", "ports: range 'x' is not of the form LOW-HIGH"),
    ],
)
def test_parse_port_list_errors_say_which_option(items, what, message):
    with pytest.raises(PortsError) as info:
        parse_port_list(items, what=what)
    assert str(info.value) == message


def test_parse_port_list_names_ports_by_default():
    with pytest.raises(PortsError) as info:
        parse_port_list(["x"])
    assert str(info.value) == "ports: range 'x' is not of the form LOW-HIGH"


def test_bands_of_a_single_port_is_that_port():
    assert list(bands(PortRange(5, 5))) == [PortRange(5, 5)]


@pytest.mark.parametrize(
    "ranges, expected",
    [
        ([], []),
        ([PortRange(6, 9), PortRange(1, 5)], [PortRange(1, 9)]),  # adjacent: one run, whatever the order
        ([PortRange(1, 5), PortRange(7, 9)], [PortRange(1, 5), PortRange(7, 9)]),  # one free port between
        ([PortRange(1, 10), PortRange(3, 4)], [PortRange(1, 10)]),  # contained
        ([PortRange(1, 10), PortRange(10, 12)], [PortRange(1, 12)]),  # sharing an end
        ([PortRange(3, 3), PortRange(3, 3)], [PortRange(3, 3)]),
    ],
)
def test_merge_examples(ranges, expected):
    assert merge(ranges) == expected


@pytest.mark.parametrize(
    "taken, expected",
    [
        ([], [PortRange(10, 20)]),
        ([PortRange(5, 9)], [PortRange(10, 20)]),  # ends just below the bounds
        ([PortRange(5, 10)], [PortRange(11, 20)]),  # holds the first port
        ([PortRange(20, 25)], [PortRange(10, 19)]),  # holds the last port
        ([PortRange(21, 25)], [PortRange(10, 20)]),  # starts just above the bounds
        ([PortRange(19, 19)], [PortRange(10, 18), PortRange(20, 20)]),  # a one-port run left at the top
        ([PortRange(11, 20)], [PortRange(10, 10)]),  # a one-port run left at the bottom
        ([PortRange(1, 3), PortRange(12, 13), PortRange(30, 40)], [PortRange(10, 11), PortRange(14, 20)]),
        ([PortRange(12, 13), PortRange(15, 15)], [PortRange(10, 11), PortRange(14, 14), PortRange(16, 20)]),
        ([PortRange(1, 30)], []),
        ([PortRange(10, 20)], []),
    ],
)
def test_free_runs_examples(taken, expected):
    assert free_runs(PortRange(10, 20), taken) == expected
