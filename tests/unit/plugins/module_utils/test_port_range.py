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
