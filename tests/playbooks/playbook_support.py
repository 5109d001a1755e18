# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the playbook tests share: a stand-in systemctl, so that service_ports'
daemon-reload succeeds on a machine (or container) without systemd."""

from __future__ import annotations

import os
from typing import Dict


def stand_in_systemctl(root: str) -> str:
    """A new ``bin`` folder under ``root`` holding a systemctl that does nothing
    and succeeds (the tests set service_ports_restart off, so daemon-reload is
    all the role asks of it); returns the folder, for the front of PATH."""
    bindir = os.path.join(str(root), "bin")
    os.makedirs(bindir)
    systemctl = os.path.join(bindir, "systemctl")
    with open(systemctl, "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\nexit 0\n")
    os.chmod(systemctl, 0o755)
    return bindir


def playbook_env(root: str) -> Dict[str, str]:
    """The environment for ansible-playbook runs under ``root``: the stand-in
    systemctl first on PATH, plain output, no retry files."""
    bindir = stand_in_systemctl(root)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], ANSIBLE_NOCOLOR="1",
                ANSIBLE_RETRY_FILES_ENABLED="0")
