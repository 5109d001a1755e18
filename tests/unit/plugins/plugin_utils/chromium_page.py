# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open a port map page in headless Chromium: the rendered DOM, the layout facts
its script records on ``<html data-layout>``, and a screenshot.

Used by test_port_map_browser.py and, as a command, by the Molecule fleet
scenario on the controller::

    python chromium_page.py PAGE.html --screenshot out.png --expect-hosts 4 \\
        --expect-drift 1 --expect-strays 1 --max-load-ms 1000

Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``), started
with the flags that work on a machine without a network or a display.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, NamedTuple, Optional

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 90

_LAYOUT_RE = re.compile(r"""<html[^>]*\sdata-layout="([^"]*)\"""")


class Rendered(NamedTuple):
    dom: str
    layout: Dict[str, Any]
    seconds: float  # wall time of the whole Chromium run


def find_chromium() -> Optional[str]:
    wanted = os.environ.get("BERTH_CHROMIUM")
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _flags(profile: str) -> List[str]:
    flags = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             "--mute-audio", "--user-data-dir=%s" % profile]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    return flags


def _run(chromium: str, args: List[str]) -> "subprocess.CompletedProcess[str]":
    profile = tempfile.mkdtemp(prefix="berth-chromium-")
    try:
        # A session of its own, so that a timeout ends Chromium's helpers too.
        proc = subprocess.Popen([chromium] + _flags(profile) + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise RuntimeError("chromium did not finish in %d s: %s" % (TIMEOUT, err[-2000:]))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _url(page: str) -> str:
    return "file://" + os.path.abspath(page)


def dump_dom(chromium: str, page: str, width: int = 1280, height: int = 900) -> Rendered:
    """The DOM after the load event, and the layout facts the page recorded then."""
    start = time.monotonic()
    done = _run(chromium, ["--window-size=%d,%d" % (width, height), "--dump-dom", _url(page)])
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError("chromium --dump-dom exited %d: %s" % (done.returncode, done.stderr[-2000:]))
    match = _LAYOUT_RE.search(done.stdout)
    if not match:
        raise RuntimeError("the page recorded no data-layout (did its script run?); stderr: %s" % done.stderr[-2000:])
    return Rendered(done.stdout, json.loads(html.unescape(match.group(1))), seconds)


def screenshot(chromium: str, page: str, out: str, width: int = 1280, height: int = 900) -> None:
    if os.path.exists(out):
        os.unlink(out)
    done = _run(chromium, ["--window-size=%d,%d" % (width, height), "--screenshot=%s" % os.path.abspath(out), _url(page)])
    if done.returncode != 0 or not os.path.exists(out):
        raise RuntimeError("chromium --screenshot exited %d, no %s: %s" % (done.returncode, out, done.stderr[-2000:]))
    with open(out, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            raise RuntimeError("%s is not a PNG" % out)


def check(layout: Dict[str, Any], hosts: Optional[int] = None, rows: Optional[int] = None, drift: Optional[int] = None,
          strays: Optional[int] = None, max_load_ms: Optional[float] = None) -> List[str]:
    """What is wrong with the rendered page, as sentences; empty when all is well."""
    wrong = []
    for name, expected in (("hosts", hosts), ("rows", rows), ("drift", drift), ("strays", strays)):
        if expected is not None and layout.get(name) != expected:
            wrong.append("%s: expected %s, rendered %s" % (name, expected, layout.get(name)))
    if layout.get("strips") != 2 * layout.get("rows", -1):
        wrong.append("expected two strips (tcp, udp) per row, got %s for %s rows" % (layout.get("strips"), layout.get("rows")))
    if layout.get("stripOverflow", 1) > 0:
        wrong.append("a strip overflows its box by %s px" % layout.get("stripOverflow"))
    if layout.get("pageOverflow", 1) > 0:
        wrong.append("the page scrolls sideways by %s px" % layout.get("pageOverflow"))
    if max_load_ms is not None and layout.get("loadMs", max_load_ms + 1) > max_load_ms:
        wrong.append("loaded in %s ms, more than %s ms" % (layout.get("loadMs"), max_load_ms))
    return wrong


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Check a berth.ports map page in headless Chromium.")
    parser.add_argument("page")
    parser.add_argument("--screenshot")
    parser.add_argument("--expect-hosts", type=int)
    parser.add_argument("--expect-rows", type=int)
    parser.add_argument("--expect-drift", type=int, help="drift marks (orange bars) drawn")
    parser.add_argument("--expect-strays", type=int, help="stray listener ticks drawn")
    parser.add_argument("--max-load-ms", type=float, default=1000.0)
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        sys.stderr.write("chromium not found (apt-get install chromium)\n")
        return 2
    rendered = dump_dom(chromium, args.page)
    wrong = check(rendered.layout, args.expect_hosts, args.expect_rows, args.expect_drift, args.expect_strays,
                  args.max_load_ms)
    if args.screenshot:
        screenshot(chromium, args.page, args.screenshot)
    print(json.dumps(dict(rendered.layout, chromiumSeconds=round(rendered.seconds, 2), problems=wrong), sort_keys=True))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
