# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port map in a real browser (issue 11): headless Chromium opens the page drawn
from a 500-host fleet, its script records layout facts, a screenshot is taken.

Needs Debian's ``chromium`` (.ci/run installs it). Without it the test is
skipped with a warning, except under CI=true, where it fails.
The screenshot goes to tests/output/port-map/port-map.png (BERTH_MAP_SCREENSHOT
sets another path; docs/port-map.png is a copy of one).
"""

from __future__ import annotations

import html
import os
import re
import warnings

import pytest

from ansible_collections.berth.ports.plugins.plugin_utils.port_map import shape_port_map
from ansible_collections.berth.ports.plugins.plugin_utils.port_map_html import render_port_map
from ansible_collections.berth.ports.tests.unit.plugins.plugin_utils import chromium_page
from ansible_collections.berth.ports.tests.unit.plugins.plugin_utils.port_map_fleet import fleet

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
LOAD_BUDGET_MS = 1000
# The machine may be busy (CI on a shared 2-core box): the best of a few loads counts.
ATTEMPTS = 3


@pytest.fixture(scope="module")
def chromium():
    found = chromium_page.find_chromium()
    if found is None:
        message = ("chromium is not installed: the port map browser test did NOT run "
                   "(apt-get install chromium; .ci/run installs it)")
        if os.environ.get("CI") == "true":
            pytest.fail(message + " - required under CI=true")
        warnings.warn(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    shaped = shape_port_map(fleet(500))
    path = tmp_path_factory.mktemp("map") / "berth-ports-map.html"
    path.write_text(render_port_map(shaped, title="berth.ports map: 500 hosts", generated="2026-11-01T12:00:00Z"),
                    encoding="utf-8")
    return shaped, str(path)


@pytest.fixture(scope="module")
def rendered(chromium, page):
    best = None
    for unused in range(ATTEMPTS):
        result = chromium_page.dump_dom(chromium, page[1])
        if best is None or result.layout["loadMs"] < best.layout["loadMs"]:
            best = result
        if best.layout["loadMs"] < LOAD_BUDGET_MS / 2:
            break
    print("port map, 500 hosts: %s (Chromium run %.1f s)" % (best.layout, best.seconds))
    return best


def test_rows_hosts_and_collapsed_counts(page, rendered):
    shaped, unused = page
    layout = rendered.layout
    assert layout["rows"] == len(shaped.rows) and layout["hosts"] == 499 == shaped.hosts
    assert layout["strips"] == 2 * len(shaped.rows)
    counts = [int(n) for n in re.findall(r'<div class="row[^"]*" id="r\d+" data-count="(\d+)"', rendered.dom)]
    assert counts == [row.count for row in shaped.rows]
    assert max(counts) > 100 and counts.count(1) >= 8  # identical hosts collapsed, drifting ones alone
    assert "\u00d7%d</span>" % max(counts) in rendered.dom


def test_drift_strays_and_doubles_are_marked(page, rendered):
    shaped, unused = page
    drift_segments = sum(1 for row in shaped.rows for s in row.segments if s.drift)
    assert rendered.layout["drift"] == drift_segments > 0
    assert rendered.layout["strays"] == 1
    assert rendered.dom.count('<li class="drift-item">') == 1
    assert len(re.findall(r'<rect class="double"', rendered.dom)) > 0


def test_hovering_a_cell_names_port_proto_owner_and_since(rendered):
    titles = [html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", rendered.dom)]
    assert "ports 25031-25034/tcp \u00b7 web \u00b7 dynamic \u00b7 since 2026-01-01T09:30:00Z" in "\n".join(titles)
    assert any(t.startswith("port 25080/tcp \u00b7 ceph-rgw \u00b7 static \u00b7 since ") for t in titles)
    assert any(t.startswith("port 25700/tcp \u00b7 STRAY: unit stray-listener.service") for t in titles)


def test_nothing_overflows(rendered):
    assert rendered.layout["stripOverflow"] <= 0, "a strip is wider than its box"
    assert rendered.layout["pageOverflow"] <= 0, "the page scrolls sideways"


def test_loads_in_under_a_second(rendered):
    assert rendered.layout["loadMs"] < LOAD_BUDGET_MS, rendered.layout


def test_sortable_table_holds_the_same_facts(page, rendered):
    shaped, unused = page
    distinct = {s.holding for row in shaped.rows for s in row.segments} | {m for row in shaped.rows for m in row.marks}
    assert rendered.layout["tableRows"] == len(distinct)
    assert rendered.dom.count('<th data-type=') == 9


def test_screenshot(chromium, page):
    out = os.environ.get("BERTH_MAP_SCREENSHOT") or os.path.join(ROOT, "tests", "output", "port-map", "port-map.png")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    chromium_page.screenshot(chromium, page[1], out, width=1280, height=800)
    assert os.path.getsize(out) > 10000
