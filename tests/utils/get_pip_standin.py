# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py bootstrap script of ansible-test.

``ansible-test --venv`` creates an empty virtual environment and then runs
``~/.ansible/test/cache/get_pip_<version>.py`` inside it, downloading that
script from a host that is not reachable here. This stand-in gives the same
result with what every CPython ships: ``ensurepip`` installs the bundled pip,
then that pip installs the requested packages (e.g. ``pip==24.2``) from the
package index. get-pip.py's own flags (``--no-setuptools``, ``--no-wheel``)
are dropped, since the stand-in never installs those packages anyway.
"""

import subprocess
import sys

GET_PIP_ONLY_FLAGS = frozenset(('--no-setuptools', '--no-wheel'))


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
    if args:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
