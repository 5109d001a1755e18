# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The berth.ports.endpoints filter, called from a template as a play calls it."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleError

from ansible_collections.berth.ports.plugins.filter import endpoints as filter_source
from ansible_collections.berth.ports.tests.unit.plugins.filter.filter_renderer import template_renderer

HOSTVARS = {
    "app1": {"ansible_host": "10.0.0.11", "service_ports_results": [
        {"unit": "web.service", "owner": "web", "state": "present", "ports": {"tcp": [25031], "udp": []}}]},
    "app2": {"service_ports_results": [
        {"unit": "web.service", "owner": "web", "state": "present", "ports": {"tcp": [25032], "udp": []}}]},
    "lb": {},
}


@pytest.fixture(scope="module")
def render():
    return template_renderer(filter_source)


def test_defaults_read_service_ports_results(render):
    assert render("hv | berth.ports.endpoints", hv=HOSTVARS) == [{"owner": "web", "proto": "tcp", "endpoints": [
        {"host": "app1", "address": "10.0.0.11", "port": 25031, "ports": [25031]},
        {"host": "app2", "address": "app2", "port": 25032, "ports": [25032]}]}]


def test_haproxy_style_selection(render):
    servers = render("(hv | berth.ports.endpoints(hosts=['app2', 'app1']) | selectattr('owner', 'eq', 'web') | first)"
                     ".endpoints | map(attribute='port') | list", hv=HOSTVARS)
    assert servers == [25031, 25032]


def test_registry_from_a_list_of_hosts_and_from_hostvars(render, tmp_path):
    path = tmp_path / "registry.yml"
    path.write_text("fleets:\n  default:\n    web:\n      tcp: 25031\n")
    groups = render("['b', 'a'] | berth.ports.endpoints(registry=path)", path=str(path))
    assert [e["host"] for e in groups[0]["endpoints"]] == ["a", "b"]
    groups = render("hv | berth.ports.endpoints(registry=path, hosts=['app1'])", path=str(path), hv=HOSTVARS)
    assert groups[0]["endpoints"] == [{"host": "app1", "address": "10.0.0.11", "port": 25031, "ports": [25031]}]


def test_errors_are_one_line_filter_errors(render, tmp_path):
    with pytest.raises(AnsibleError, match="berth.ports.endpoints: host lb has no service_ports_results"):
        render("hv | berth.ports.endpoints(hosts=['lb'])", hv=HOSTVARS)
    with pytest.raises(AnsibleError, match="hosts must name the hosts"):
        render("hv | berth.ports.endpoints(registry=path)", hv=HOSTVARS, path=str(tmp_path / "r.yml"))
