"""Helpers shared by the core's tests: a throwaway database and terse calls."""

from __future__ import annotations

import pytest

from ansible_collections.berth.ports.tests.unit.plugins.module_utils.berth_host import Host


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path / "ports.db")


@pytest.fixture
def make_host(tmp_path):
    counter = iter(range(1000))

    def make(**kwargs):
        return Host(tmp_path / ("ports-%d.db" % next(counter)), **kwargs)

    return make
