"""A test host: one database, its policy and the ports its processes listen on."""

from __future__ import annotations

import hashlib

from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore, load_rows
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings


class Host:
    """One host's state: a database, its policy and the ports its processes listen on."""

    def __init__(self, path, port_range="25000-25999", reserved=(), skip_listening=True):
        self.store = AllocationStore(str(path))
        self.settings = build_settings(port_range, list(reserved), skip_listening)
        self.listening = {"tcp": set(), "udp": set()}

    def allocate(self, owner, count=1, proto="tcp", check_mode=False, max_ports=None, **kwargs):
        request = build_allocation_request(owner, proto, count, settings=self.settings, **kwargs)
        return allocate(self.store, request, self.settings, check_mode, probe=lambda p: set(self.listening[p]), max_ports=max_ports)

    def ranges(self, owner, proto="tcp"):
        return [str(row.range) for row in load_rows(self.store, proto) if row.owner == owner]

    def rows(self):
        return list(load_rows(self.store))


def digest(path):
    """sha256 of a file's bytes: proof that a refused call left it untouched."""
    with open(str(path), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
