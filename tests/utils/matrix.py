# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ansible-test on every supported ansible-core: the support matrix.

``make sanity``, ``make units`` and ``make integration`` test the ansible-core
of .venv (tests/requirements.txt). This script tests the others and the
managed-host Pythons, each ansible-core in a venv of its own
(``BUILD/core-X.Y``) made from a controller Python that release supports:

* CORES, e.g. ``2.20.10@3.12``: the release and its controller Python;
* ``--sanity 2.20,2.21`` and ``--units 2.20,2.21``: ``ansible-test sanity``
  and ``units`` on those cores, with their controller Python;
* ``--integration 2.19:3.8,3.13``: the integration targets on that core, once
  per managed-host Python, the controller staying the core's own Python
  (``--controller origin:... --target controller:python=3.8@/path``), so the
  modules really run under 3.8.

Interpreters are looked up on PATH (``pythonX.Y``) and in pyenv's versions
(``$PYENV_ROOT`` or ``~/.pyenv``); only ones that run and are not venvs count.
A cell whose Python is not on this machine is SKIPPED, loudly, in the log
and in the summary; with ``--strict`` a skipped cell fails the run.

Prints a summary table (cell, result, seconds); exits 1 when a cell failed.

Usage: matrix.py --collection COLL --build BUILD [--strict]
                 [--sanity CORES] [--units CORES] [--integration SPEC ...]
                 [--pip-extra REQ ...] CORE@PY [CORE@PY ...]
"""

import argparse
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import time

# python_bin.py sits beside this script (sys.path[0] when run as a script):
# one test of "a real interpreter, not a venv" for the harness.
from python_bin import real_interpreter  # pylint: disable=import-error


def log(msg):
    sys.stdout.write('%s\n' % msg)
    sys.stdout.flush()


def banner(msg):
    log('\n==== %s ====' % msg)


FOUND = {}


def find_python(version):
    """Return a real pythonX.Y on this machine, or None."""
    if version not in FOUND:
        root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
        dirs = [d for d in os.environ.get('PATH', '').split(os.pathsep) if d]
        dirs += sorted(glob.glob(os.path.join(root, 'versions', version + '.*', 'bin')), reverse=True)
        dirs += ['/usr/local/bin', '/usr/bin']
        found = None
        for directory in dirs:
            candidate = os.path.join(directory, 'python' + version)
            if os.access(candidate, os.X_OK):
                found = real_interpreter(candidate)
                if found:
                    break
        FOUND[version] = found
    return FOUND[version]


class Core:
    """One ansible-core release, its controller Python and its venv."""

    def __init__(self, spec, build):
        try:
            self.release, self.python = spec.split('@')
        except ValueError:
            sys.exit('matrix: core %r is not RELEASE@X.Y (e.g. 2.20.10@3.12)' % spec)
        self.name = '.'.join(self.release.split('.')[:2])
        self.venv = os.path.join(build, 'core-' + self.name)
        self.bin = os.path.join(self.venv, 'bin')
        self.ready = None  # None: not tried, True/False after prepare()
        self.why = ''
        self.lock = None

    def prepare(self, pip_extra):
        """Build the venv (once per pin set) and the get-pip stand-in; True when usable."""
        if self.ready is not None:
            return self.ready
        interpreter = find_python(self.python)
        if interpreter is None:
            self.ready, self.why = False, 'no python%s on this machine' % self.python
            return False
        pins = ['ansible-core==' + self.release] + list(pip_extra)
        # Another matrix run may use this venv: it is used under a shared
        # lock and rebuilt only under an exclusive one.
        os.makedirs(os.path.dirname(self.venv), exist_ok=True)
        self.lock = open(self.venv + '.lock', 'w')  # pylint: disable=consider-using-with
        stamp = os.path.join(self.venv, '.matrix-installed')
        want = '\n'.join([interpreter] + pins) + '\n'
        for mode in (fcntl.LOCK_SH, fcntl.LOCK_EX):
            fcntl.flock(self.lock, mode)
            try:
                with open(stamp) as handle:
                    if handle.read() == want:
                        break
            except OSError:
                pass
            if mode == fcntl.LOCK_SH:
                fcntl.flock(self.lock, fcntl.LOCK_UN)
                continue
            banner('matrix: venv %s (ansible-core %s, Python %s)' % (self.venv, self.release, self.python))
            shutil.rmtree(self.venv, ignore_errors=True)
            subprocess.check_call([interpreter, '-m', 'venv', self.venv])
            subprocess.check_call([os.path.join(self.bin, 'python'), '-m', 'pip', 'install', '-q',
                                   '--disable-pip-version-check'] + pins)
            with open(stamp, 'w') as handle:
                handle.write(want)
            fcntl.flock(self.lock, fcntl.LOCK_SH)
        # ansible-test --venv bootstraps pip with a get-pip.py it cannot
        # download here; each release may want another pip version.
        subprocess.check_call([os.path.join(self.bin, 'python'),
                               os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            'install_get_pip_standin.py')])
        self.ready = True
        return True

    def env(self, collections):
        """Environment for ansible-test: this core first, runnable pythonX.Y only."""
        env = dict(os.environ)
        env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_FORCE_COLOR='0',
                   ANSIBLE_NOCOLOR='1', PY_COLORS='0', VIRTUAL_ENV=self.venv)
        env.pop('PYTHONPATH', None)
        helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'python_bin.py')
        out = subprocess.run([os.path.join(self.bin, 'python'), helper,
                              os.path.join(self.venv, 'python-bin'), self.bin],
                             stdout=subprocess.PIPE, env=env, check=True)
        env['PATH'] = out.stdout.decode().strip()
        return env


def parse_cores(text):
    return [c for c in (text or '').replace(',', ' ').split() if c]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--collection', required=True, help='.../ansible_collections/berth/ports copy')
    parser.add_argument('--build', required=True, help='where the core-X.Y venvs go')
    parser.add_argument('--sanity', default='', help='cores (X.Y) to run ansible-test sanity on')
    parser.add_argument('--units', default='', help='cores (X.Y) to run ansible-test units on')
    parser.add_argument('--integration', action='append', default=[],
                        help='CORE:PY,PY,... integration targets on CORE against those managed-host Pythons')
    parser.add_argument('--pip-extra', action='append', default=[],
                        help='extra requirement for every core venv (the lookup target needs jmespath)')
    parser.add_argument('--strict', action='store_true', help='a skipped cell fails the run')
    parser.add_argument('--ansible-test-args', default='', help='extra arguments for every ansible-test call')
    parser.add_argument('cores', nargs='+', metavar='RELEASE@X.Y')
    args = parser.parse_args()

    cores = {}
    for spec in args.cores:
        core = Core(spec, os.path.abspath(args.build))
        cores[core.name] = core
    collections = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(args.collection))))
    extra = args.ansible_test_args.split()

    cells = []  # (name, core, argv after 'ansible-test')
    for step in ('sanity', 'units'):
        for name in parse_cores(getattr(args, step)):
            if name not in cores:
                sys.exit('matrix: --%s names core %s, which is not one of %s' % (step, name, ', '.join(cores)))
            core = cores[name]
            cells.append(('%s %s py%s' % (step, name, core.python), core,
                          [step, '--venv', '--python', core.python]))
    for spec in args.integration:
        name, pythons = (spec.split(':', 1) + [''])[:2]
        if name not in cores:
            sys.exit('matrix: --integration names core %s, which is not one of %s' % (name, ', '.join(cores)))
        for target in parse_cores(pythons):
            cells.append(('integration %s py%s -> py%s' % (name, cores[name].python, target), cores[name],
                          ['integration', '--allow-destructive', '--target-python', target]))

    results = []
    for label, core, argv in cells:
        start = time.time()
        if not core.prepare(args.pip_extra):
            banner('matrix: %s SKIPPED: %s' % (label, core.why))
            results.append((label, 'SKIPPED (%s)' % core.why, 0))
            continue
        if '--target-python' in argv:
            target = argv[argv.index('--target-python') + 1]
            interpreter = find_python(target)
            if interpreter is None:
                why = 'no python%s on this machine' % target
                banner('matrix: %s SKIPPED: %s' % (label, why))
                results.append((label, 'SKIPPED (%s)' % why, 0))
                continue
            argv = argv[:argv.index('--target-python')] + [
                '--controller', 'origin:python=%s@%s' % (core.python, os.path.join(core.bin, 'python')),
                '--target', 'controller:python=%s@%s' % (target, interpreter)]
        command = [os.path.join(core.bin, 'ansible-test')] + argv + ['--color', 'no'] + extra
        banner('matrix: %s: %s' % (label, ' '.join(command)))
        status = subprocess.call(command, cwd=args.collection, env=core.env(collections))
        elapsed = time.time() - start
        result = 'ok' if status == 0 else 'FAILED (exit %d)' % status
        log('---- matrix %s: %s in %ds' % (label, result, elapsed))
        results.append((label, result, elapsed))

    banner('matrix summary')
    width = max([len(row[0]) for row in results] + [10])
    for label, result, elapsed in results:
        log('%-*s  %-40s %5ds' % (width, label, result, elapsed))
    log('total %ds' % sum(row[2] for row in results))
    failed = [r for r in results if r[1].startswith('FAILED')]
    skipped = [r for r in results if r[1].startswith('SKIPPED')]
    if skipped:
        log('\n!!!! %d matrix cell(s) SKIPPED: their Python is not on this machine, so the README\'s'
            ' "Tested with" table was NOT verified for them here !!!!' % len(skipped))
    if failed or (skipped and args.strict):
        sys.exit(1)


if __name__ == '__main__':
    main()
