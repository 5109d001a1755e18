# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror the checkout into DEST (.../ansible_collections/berth/ports).

ansible-test needs its working directory to be a real path ending in
ansible_collections/<namespace>/<name>; a symlink does not do, because
os.getcwd() resolves it. So the harness keeps a copy.

What is copied: in a git checkout, every file git tracks or would track
(``git ls-files --cached --others --exclude-standard``), so .gitignore
decides and venvs, databases, build and test output never leak in.
Outside git, a walk that skips the same usual suspects. Files in DEST that
are no longer in the source are removed, so the copy is exact.

DEST gets an empty git repository of its own (``git init``, nothing
committed). ansible-test lists content through the nearest ``.git`` above
its working directory; without one in DEST it would find the checkout's,
where .build/ is ignored, and see no files at all ("All targets skipped").
"""

import os
import shutil
import subprocess
import sys

SKIP_DIRS = {'.git', '.venv', '.build', '__pycache__', '.pytest_cache', '.hypothesis', '.tox'}
SKIP_PATHS = {os.path.join('tests', 'output'), 'demo'}


def git_files(src):
    try:
        out = subprocess.run(
            ['git', '-C', src, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
            check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in out.decode('utf-8').split('\0') if p]


def walked_files(src):
    files = []
    for root, dirs, names in os.walk(src):
        rel_root = os.path.relpath(root, src)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS
                         and os.path.normpath(os.path.join(rel_root, d)) not in SKIP_PATHS)
        for name in names:
            if name.endswith(('.pyc', '.db')):
                continue
            files.append(os.path.normpath(os.path.join(rel_root, name)))
    return files


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: sync_collection.py SRC DEST')
    src, dest = (os.path.abspath(p) for p in sys.argv[1:])
    if dest == src or dest.startswith(src + os.sep) and not os.path.relpath(dest, src).startswith('.build'):
        sys.exit('sync_collection: DEST must be outside SRC or under SRC/.build')

    files = git_files(src)
    if files is None:
        files = walked_files(src)
    # a tracked file deleted in the work tree is not copied
    files = {f for f in files if os.path.lexists(os.path.join(src, f))}
    files = {f for f in files if not f.startswith('.build' + os.sep)}

    os.makedirs(dest, exist_ok=True)
    copied = 0
    for rel in sorted(files):
        s, d = os.path.join(src, rel), os.path.join(dest, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if os.path.islink(s):
            if os.path.lexists(d):
                os.remove(d)
            os.symlink(os.readlink(s), d)
        else:
            st = os.stat(s)
            try:
                dst = os.stat(d)
                if dst.st_size == st.st_size and int(dst.st_mtime) == int(st.st_mtime) and dst.st_mode == st.st_mode:
                    continue
            except FileNotFoundError:
                pass
            shutil.copy2(s, d)
            copied += 1

    # drop what is no longer in the source (keep .git and ansible-test's tests/output)
    keep = {'.git', os.path.join('tests', 'output')}
    removed = 0
    for root, dirs, names in os.walk(dest, topdown=True):
        rel_root = os.path.relpath(root, dest)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_root, d)) not in keep]
        for name in names:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel not in files:
                os.remove(os.path.join(root, name))
                removed += 1
    for root, dirs, names in os.walk(dest, topdown=False):
        rel_root = os.path.relpath(root, dest)
        if any(rel_root == k or rel_root.startswith(k + os.sep) for k in keep):
            continue
        if root != dest and not os.listdir(root):
            os.rmdir(root)

    if not os.path.isdir(os.path.join(dest, '.git')):
        subprocess.run(['git', 'init', '-q', dest], check=True)

    print('collection copy %s: %d files, %d updated, %d removed' % (dest, len(files), copied, removed))


if __name__ == '__main__':
    main()
