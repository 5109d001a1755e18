# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put get_pip_standin.py where the installed ansible-test looks for its cache.

Run with the interpreter that has ansible-core installed. The pip version
ansible-test bootstraps is read from ansible-test itself, so the stand-in
follows an ansible-core upgrade. An existing cache file (a real get-pip.py
or an earlier stand-in) is replaced only when it differs from the stand-in
and --force is given.
"""

import os
import shutil
import sys


def pip_versions():
    """Return the pip versions this ansible-test bootstraps into a venv."""
    from ansible_test._internal import python_requirements as pr

    class _Python:  # the helper only reads .version
        def __init__(self, version):
            self.version = version

    versions = set()
    for minor in ('3.8', '3.9', '3.10', '3.11', '3.12', '3.13', '3.14'):
        try:
            versions.add(pr.get_venv_packages(_Python(minor))['pip'])
        except Exception:  # pylint: disable=broad-except
            continue
    return sorted(versions)


def main():
    force = '--force' in sys.argv[1:]
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'get_pip_standin.py')
    cache = os.path.expanduser('~/.ansible/test/cache')
    os.makedirs(cache, exist_ok=True)
    versions = pip_versions()
    if not versions:
        sys.exit('install_get_pip_standin: cannot tell which pip ansible-test bootstraps')
    for version in versions:
        target = os.path.join(cache, 'get_pip_%s.py' % version.replace('.', '_'))
        if os.path.exists(target) and not force:
            print('get-pip bootstrap for pip %s already present: %s' % (version, target))
            continue
        shutil.copyfile(source, target)
        print('installed offline get-pip stand-in for pip %s: %s' % (version, target))


if __name__ == '__main__':
    main()
