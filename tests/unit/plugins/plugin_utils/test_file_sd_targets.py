# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus file_sd files from endpoint groups (issue 19): selection, shape and byte-stable text."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.endpoints import endpoints_from_results
from ansible_collections.berth.ports.plugins.plugin_utils.file_sd_targets import file_sd_targets, target


def results(*services):
    return [{"owner": owner, "ports": {"tcp": tcp, "udp": udp}} for owner, tcp, udp in services]


HOSTVARS = {
    "app1": {"ansible_host": "10.0.0.11", "service_ports_results": results(
        ("node-exporter", [25031], []), ("web", [25032], []), ("dns", [], [25031]))},
    "app2": {"ansible_host": "fd00::12", "service_ports_results": results(
        ("node-exporter", [25040, 25041], []), ("web", [25032], []))},
}
GROUPS = endpoints_from_results(HOSTVARS)


def test_one_file_per_selected_owner_one_group_per_host():
    (only,) = file_sd_targets(GROUPS, owners=["node-exporter"])
    assert (only["owner"], only["file"]) == ("node-exporter", "berth-node-exporter.json")
    assert json.loads(only["content"]) == [
        {"targets": ["10.0.0.11:25031"], "labels": {"berth_owner": "node-exporter", "berth_proto": "tcp", "berth_host": "app1"}},
        {"targets": ["[fd00::12]:25040"], "labels": {"berth_owner": "node-exporter", "berth_proto": "tcp", "berth_host": "app2"}},
    ]
    assert only["content"].endswith("]\n")


def test_pattern_matches_whole_names_and_combines_with_owners():
    assert [f["owner"] for f in file_sd_targets(GROUPS, pattern="node-.*")] == ["node-exporter"]
    assert file_sd_targets(GROUPS, pattern="node") == []  # whole names only
    assert [f["file"] for f in file_sd_targets(GROUPS, owners=["web"], pattern=".*-exporter", prefix="p.")] == [
        "p.node-exporter.json", "p.web.json"]


def test_udp_groups_and_unheld_owners_get_no_file():
    assert file_sd_targets(GROUPS, owners=["dns", "absent"]) == []


def test_extra_labels_and_their_rules():
    (only,) = file_sd_targets(GROUPS, owners=["web"], labels={"env": "prod", "tier": 2})
    assert json.loads(only["content"])[0]["labels"] == {
        "env": "prod", "tier": "2", "berth_owner": "web", "berth_proto": "tcp", "berth_host": "app1"}
    for bad, message in [({"berth_owner": "x"}, "set by berth.ports itself"), ({"__meta": "x"}, "not a Prometheus label"),
                         ({"a-b": "x"}, "not a Prometheus label"), ({"env": ["x"]}, "not a string"), ("env=prod", "must be a dict")]:
        with pytest.raises(PortsError, match=message):
            file_sd_targets(GROUPS, owners=["web"], labels=bad)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "name the owners to scrape"),
    ({"owners": "web"}, "owners must be a list"),
    ({"pattern": "("}, "is not a regular expression"),
    ({"owners": ["web"], "prefix": "../"}, "prefix"),
    ({"owners": ["web"], "prefix": ""}, "prefix"),
])
def test_bad_options_fail_in_one_line(kwargs, message):
    with pytest.raises(PortsError, match=message) as caught:
        file_sd_targets(GROUPS, **kwargs)
    assert "\n" not in str(caught.value)


def test_an_owner_that_is_not_a_file_name_is_refused():
    with pytest.raises(PortsError, match="no usable owner"):
        file_sd_targets([{"owner": "../etc/passwd", "proto": "tcp", "endpoints": []}], pattern=".*")


def test_ipv6_targets_are_bracketed_once():
    assert target("::1", 25031) == "[::1]:25031"
    assert target("[::1]", 25031) == "[::1]:25031"
    assert target("app1.example", 25031) == "app1.example:25031"


HOSTS = st.dictionaries(
    st.sampled_from(["h1", "h2", "h3", "mon"]),
    st.lists(st.tuples(st.sampled_from(["node-exporter", "web", "api"]), st.integers(1, 65000)),
             unique_by=lambda t: t[0], max_size=3),
    max_size=4)


@settings(max_examples=100, deadline=None)
@given(HOSTS, st.randoms(use_true_random=False))
def test_byte_stable_whatever_the_order_and_every_target_once(hosts, rnd):
    hostvars = {h: {"service_ports_results": results(*[(o, [p], []) for o, p in rows])} for h, rows in hosts.items()}
    files = file_sd_targets(endpoints_from_results(hostvars), pattern=".*")
    items = list(hostvars.items())
    rnd.shuffle(items)
    assert file_sd_targets(endpoints_from_results(dict(items)), pattern=".*") == files
    written = sorted((f["owner"], g["labels"]["berth_host"], t) for f in files for g in json.loads(f["content"]) for t in g["targets"])
    assert written == sorted((o, h, "%s:%d" % (h, p)) for h, rows in hosts.items() for o, p in rows)


def test_same_input_same_bytes_in_a_fixed_example():
    items = list(HOSTVARS.items())
    random.Random(7).shuffle(items)
    first = file_sd_targets(GROUPS, pattern=".*")
    assert file_sd_targets(endpoints_from_results(dict(items)), pattern=".*") == first
    assert [f["content"].encode() for f in first] == [f["content"].encode() for f in file_sd_targets(GROUPS, pattern=".*")]
