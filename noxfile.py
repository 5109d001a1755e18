# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nox sessions of berth.ports: antsibull-nox's (antsibull-nox.toml) and changelog-lint.

`make nox` runs the offline-safe ones (NOX_SESSIONS in the Makefile) with
the harness venv's nox; `nox -l` lists them all. CONTRIBUTING.md, "Harness",
says what runs through nox and what stays in make.
"""

# /// script
# dependencies = ["nox>=2025.02.09", "antsibull-nox"]
# ///

import os
import sys
import sysconfig
from pathlib import Path

import nox

try:
    import antsibull_nox
except ImportError:
    print("You need to install antsibull-nox in the same Python environment as nox.")
    sys.exit(1)

ROOT = Path(__file__).resolve().parent


def _offline_collections() -> None:
    """Let antsibull-nox find galaxy.yml's dependencies without Galaxy.

    antsibull-nox looks for the collections berth.ports needs (ansible.posix)
    among installed ones (`ansible-galaxy collection list`) before it would
    download them. Galaxy cannot be reached here; the `ansible` package in
    nox's own environment (the harness .venv) holds ansible.posix, so its
    site-packages goes on the collections path the sessions see.
    """
    site = Path(sysconfig.get_path("purelib"))
    if not (site / "ansible_collections").is_dir():
        return
    paths = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    if str(site) not in paths:
        paths.append(str(site))
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(paths)


_offline_collections()
antsibull_nox.load_antsibull_nox_toml()


def _pin(name: str) -> str:
    """The version of NAME pinned in tests/requirements.txt, as a requirement."""
    for line in (ROOT / "tests" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.strip()
    return name


@nox.session(name="changelog-lint", default=True)
def changelog_lint(session: nox.Session) -> None:
    """antsibull-changelog lint: the fragments and changelogs/changelog.yaml."""
    session.install(_pin("antsibull-changelog"))
    session.run("antsibull-changelog", "lint")


if __name__ == "__main__":
    nox.main()
