# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The berth.ports.port_map_html filter, called from a template as map.yml calls it."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleError, AnsibleFilterError

from ansible_collections.berth.ports.plugins.filter import port_map_html as filter_source
from ansible_collections.berth.ports.tests.unit.plugins.filter.filter_renderer import template_renderer
from ansible_collections.berth.ports.tests.unit.plugins.plugin_utils.port_map_fleet import allocation, survey

SURVEYS = {
    "web1": survey([allocation("web", 25031, 25034)]),
    "web2": survey([allocation("web", 25031, 25034)]),
    "web3": survey([allocation("web", 25100)],
                   [{"type": "unallocated", "proto": "tcp", "port": 25500, "pid": 1, "unit": "stray.service", "owner": None}]),
    "down": {},
}


@pytest.fixture(scope="module")
def render():
    return template_renderer(filter_source)


def test_page(render):
    page = render("surveys | berth.ports.port_map_html(range='25000-25999', title='Fleet', generated='now')",
                  surveys=SURVEYS)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Fleet</title>" in page and "generated now" in page
    assert page.count('<div class="row') == 2  # web1 and web2 collapse
    assert 'data-count="2"' in page and "down: no port_info survey" in page
    assert "web/tcp" in page and "STRAY" in page


def test_other_range(render):
    page = render("surveys | berth.ports.port_map_html(range='25000-25099')", surveys=SURVEYS)
    assert 'viewBox="0 0 100 12"' in page


def test_bad_input_is_a_filter_error(render):
    with pytest.raises((AnsibleFilterError, AnsibleError), match="berth.ports.port_map_html: .*inverted"):
        render("surveys | berth.ports.port_map_html", surveys={"a": survey([allocation("web", 25040, 25031)])})
