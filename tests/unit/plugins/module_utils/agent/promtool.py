# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find promtool for the metrics tests, or take it out of Debian's prometheus package.

Installing the package would start a Prometheus server (Debian starts the
services it installs), so the .deb is only downloaded (``apt-get download``)
and promtool extracted from it (``dpkg-deb -x``) into a cache directory:
nothing is installed and nothing runs. As a command it prints promtool's path
(the Molecule agent scenario calls it on the controller).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

CACHE = os.environ.get("BERTH_PROMTOOL_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "berth.ports", "promtool")


def find_promtool(fetch: bool = True) -> Optional[str]:
    """promtool from PATH, the cache, or (``fetch``) extracted from a downloaded prometheus .deb."""
    found = shutil.which("promtool")
    if found:
        return found
    cached = os.path.join(CACHE, "usr", "bin", "promtool")
    if os.access(cached, os.X_OK):
        return cached
    if not fetch or not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    work = tempfile.mkdtemp(prefix="berth-promtool-")
    try:
        # world-writable so that apt's _apt user may write the download there
        os.chmod(work, 0o777)
        done = subprocess.run(["apt-get", "download", "prometheus"], cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        debs = glob.glob(os.path.join(work, "prometheus_*.deb"))
        if done.returncode != 0 or not debs:
            sys.stderr.write("apt-get download prometheus failed: %s\n" % done.stdout[-1000:])
            return None
        unpacked = os.path.join(work, "root")
        subprocess.run(["dpkg-deb", "-x", debs[0], unpacked], check=True)
        os.makedirs(os.path.join(CACHE, "usr", "bin"), exist_ok=True)
        shutil.copy2(os.path.join(unpacked, "usr", "bin", "promtool"), cached + ".part")
        os.replace(cached + ".part", cached)
        return cached
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    path = find_promtool()
    if path is None:
        sys.stderr.write("promtool: not on PATH and not extractable from Debian's prometheus package\n")
        sys.exit(1)
    print(path)
