# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lint the collection's docs and build its docsite with antsibull-docs; fail on any warning.

    build_docsite.py COLLECTIONS_DIR DEST_DIR

COLLECTIONS_DIR holds ansible_collections/berth/ports. Sphinx runs without
network, so references into docs.ansible.com (ansible.builtin's modules,
"common_return_values", ...) cannot resolve here: those warnings, and only
those, are reported but not counted. Every other warning fails the build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

# A reference to a label that lives on docs.ansible.com, not in this collection.
_EXTERNAL_REF = re.compile(r"WARNING: undefined label: '(?!ansible_collections\.berth\.ports\.)[^']+' \[ref\.ref\]$")


def run(argv, **kwargs):
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)


def main(collections_dir: str, dest: str) -> int:
    collection = os.path.join(collections_dir, "ansible_collections", "berth", "ports")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_dir)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    run(
        ["antsibull-docs", "lint-collection-docs", "--plugin-docs", "--check-extra-docs",
         "--validate-collection-refs", "all", "."],
        cwd=collection, env=env,
    )
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest, mode=0o755)
    os.chmod(dest, 0o755)  # sphinx-init wants a directory only its owner may write
    run(["antsibull-docs", "sphinx-init", "--use-current", "--squash-hierarchy", "--fail-on-error",
         "--dest-dir", dest, "berth.ports"], env=env)
    with open(os.path.join(dest, "conf.py"), "a", encoding="utf-8") as conf:
        conf.write("\n# Built offline: no inventories to fetch from docs.ansible.com or python.org.\nintersphinx_mapping = {}\n")
    rst = os.path.join(dest, "rst")
    os.makedirs(rst, mode=0o755, exist_ok=True)
    os.chmod(rst, 0o755)  # the same for the rst directory
    run(["antsibull-docs", "--config-file", os.path.join(dest, "antsibull-docs.cfg"), "collection",
         "--cleanup", "everything", "--fail-on-error", "--use-current", "--squash-hierarchy",
         "--dest-dir", rst, "berth.ports"], env=env)
    warnings_file = os.path.join(dest, "warnings.txt")
    run(["sphinx-build", "-M", "html", rst, os.path.join(dest, "build"), "-c", dest, "-q", "-w", warnings_file],
        env=env)
    with open(warnings_file, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if "WARNING" in line or "ERROR" in line]
    external = [line for line in lines if _EXTERNAL_REF.search(line)]
    ours = [line for line in lines if line not in external]
    print("docsite: %d warning(s) about references to docs.ansible.com (unresolvable offline, not counted)"
          % len(external))
    for line in ours:
        print(line)
    if ours:
        print("docsite: %d warning(s) or error(s); failing" % len(ours))
        return 1
    print("docsite: built in %s/build/html with no warnings of its own" % dest)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
