# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Give ansible-test a PATH on which every pythonX.Y it finds really runs.

Without --python, ``ansible-test sanity --venv`` tests every supported
Python version it finds on PATH as ``pythonX.Y``. On a pyenv machine the
shims directory answers for every version pyenv knows, including ones that
are not active, and those shims exit 127 -- a hard failure. So:

* each supported version is looked for on PATH and in ``$(pyenv root)``'s
  versions, and kept only when the interpreter runs and is not a venv;
* BINDIR gets one ``pythonX.Y`` symlink per kept version;
* PATH directories holding a ``pythonX.Y`` that does not run are dropped.

Prints the new PATH (BINDIR first) on stdout and a summary on stderr;
versions that are not here are simply not tested.

Usage: python_bin.py BINDIR [PREPEND_DIR ...]
"""

import glob
import os
import subprocess
import sys

PROBE = 'import sys; print(sys.prefix == sys.base_prefix and sys.executable or "")'


def supported_versions():
    from ansible_test._util.target.common.constants import CONTROLLER_PYTHON_VERSIONS, REMOTE_ONLY_PYTHON_VERSIONS

    return list(REMOTE_ONLY_PYTHON_VERSIONS) + list(CONTROLLER_PYTHON_VERSIONS)


def real_interpreter(path):
    """Return the interpreter's own path when it runs and is no venv, else None."""
    try:
        out = subprocess.run([path, '-c', PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    exe = out.stdout.decode().strip()
    return os.path.realpath(exe) if out.returncode == 0 and exe else None


def pyenv_dirs():
    root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    return sorted(glob.glob(os.path.join(root, 'versions', '*', 'bin')))


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: python_bin.py BINDIR [PREPEND_DIR ...]')
    bindir = os.path.abspath(sys.argv[1])
    prepend = [os.path.abspath(p) for p in sys.argv[2:]]
    path_dirs = [d for d in os.environ.get('PATH', '').split(os.pathsep) if d]

    found, broken_dirs = {}, set()
    for version in supported_versions():
        name = 'python' + version
        for directory in path_dirs + pyenv_dirs():
            candidate = os.path.join(directory, name)
            if not os.access(candidate, os.X_OK):
                continue
            exe = real_interpreter(candidate)
            if exe is None:
                if directory in path_dirs and directory not in prepend:
                    broken_dirs.add(directory)
                continue
            found.setdefault(version, exe)

    os.makedirs(bindir, exist_ok=True)
    for entry in os.listdir(bindir):
        os.remove(os.path.join(bindir, entry))
    for version, exe in found.items():
        os.symlink(exe, os.path.join(bindir, 'python' + version))

    sys.stderr.write('ansible-test pythons: %s\n' % (', '.join(
        '%s (%s)' % (v, found[v]) for v in found) or 'none'))
    missing = [v for v in supported_versions() if v not in found]
    if missing:
        sys.stderr.write('not on this machine, not tested: %s\n' % ', '.join(missing))
    if broken_dirs:
        sys.stderr.write('left off PATH (pythonX.Y there does not run): %s\n' % ', '.join(sorted(broken_dirs)))

    new_path = [bindir] + prepend + [d for d in path_dirs if d not in broken_dirs and d not in prepend and d != bindir]
    print(os.pathsep.join(new_path))


if __name__ == '__main__':
    main()
