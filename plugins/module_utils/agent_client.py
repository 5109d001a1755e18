# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public path of the agent's client library (implemented in ``agent/client.py``).

Services on a host with the ``ports_agent`` role import the client from
here, as the role's README shows; the agent's own files live in the
``agent`` sub-package since issue 18, and this file keeps that path working::

    from ansible_collections.berth.ports.plugins.module_utils.agent_client import allocate_ports

The role installs this file with the daemon's (roles/ports_agent/vars/main.yml).
"""

from __future__ import annotations

from ansible_collections.berth.ports.plugins.module_utils.agent.client import (
    AgentClient,
    DirectAgent,
    allocate_ports,
    deallocate_ports,
    list_ports,
)

__all__ = ["AgentClient", "DirectAgent", "allocate_ports", "deallocate_ports", "list_ports"]
