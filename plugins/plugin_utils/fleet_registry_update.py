# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry's update (issue 17): re-read, changed and written under its lock.

:func:`update_registry` takes an exclusive ``flock`` on ``<file>.lock``,
reads the file again inside the lock, applies the caller's change, and
writes through a temporary file in the same directory, fsync and
``os.replace``: a reader sees the old file or the new one, never a part. A
file that fails validation is never overwritten. In check mode nothing is
written, not even the lock file.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import Callable, NamedTuple, Optional

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.request import Settings
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import (
    Registry,
    check_settings,
    dump_registry,
    parse_registry_text,
    read_registry_text,
    validate_fleet,
)


class RegistryWrite(NamedTuple):
    """What :func:`update_registry` did: the text before and after, and whether they differ."""

    before: str
    after: str
    changed: bool


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its directory and os.replace."""
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    attempt = 0
    while True:
        temp = os.path.join(directory, ".%s.%d.%d.tmp" % (base, os.getpid(), attempt))
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            break
        except FileExistsError:
            attempt += 1
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def update_registry(
    path: str,
    fleet: str,
    change_fn: Callable[[Registry], Registry],
    check_mode: bool = False,
    settings: Optional[Settings] = None,
) -> RegistryWrite:
    """Re-read the registry under an exclusive lock, apply ``change_fn`` and write the result if it changed.

    ``change_fn`` gets the registry as it is inside the lock and returns the
    new one; compute the choice in it (``choose_ports``) so that it sees
    every owner another run added meanwhile. ``fleet`` (with ``settings``)
    is the fleet whose entries must lie in the range and outside reserved.
    The result, before and after, is validated; a file that does not pass is
    never overwritten. In check mode nothing is locked or written. The lock
    file ``<path>.lock`` is created beside the registry and left there (remove
    a lock file and two runs may lock different files); a frozen run, which
    never writes, should call :func:`load_registry` instead, so it needs no
    write access to the directory.
    Returns the text before ("" for a missing file), the text after, and
    whether they differ.
    """
    fleet = validate_fleet(fleet)
    path = os.path.realpath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise PortsError("registry %s: directory %s does not exist" % (path, directory))
    if check_mode:
        return _update(path, fleet, change_fn, settings, write=False)
    lock_path = path + ".lock"
    try:
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise PortsError("registry %s: cannot open lock file %s: %s" % (path, lock_path, exc.strerror or exc)) from exc
    try:
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                break
            except OSError as exc:  # interrupted by a signal: wait again
                if exc.errno != errno.EINTR:
                    raise PortsError("registry %s: cannot lock %s: %s" % (path, lock_path, exc.strerror or exc)) from exc
        return _update(path, fleet, change_fn, settings, write=True)
    finally:
        os.close(lock_fd)  # closing releases the lock


def _update(
    path: str,
    fleet: str,
    change_fn: Callable[[Registry], Registry],
    settings: Optional[Settings],
    write: bool,
) -> RegistryWrite:
    before = read_registry_text(path)
    registry = parse_registry_text(before, path)
    if settings is not None:
        check_settings(registry, settings, fleet)
    changed_registry = change_fn(registry)
    after = dump_registry(changed_registry)
    # What would be written must read back as what change_fn returned, and pass.
    reread = parse_registry_text(after, path)
    if reread.fleets != changed_registry.fleets:
        raise PortsError("registry %s: internal error: the new registry does not read back as written" % path)
    if settings is not None:
        check_settings(reread, settings, fleet)
    if registry == changed_registry._replace(source=registry.source) or after == before:
        # Unchanged: the file stays as it is, hand-written comments and all
        # (and a missing file is not created for an empty registry).
        return RegistryWrite(before, before, False)
    if write:
        try:
            _write_atomically(path, after)
        except OSError as exc:
            raise PortsError("registry %s cannot be written: %s" % (path, exc.strerror or exc)) from exc
    return RegistryWrite(before, after, True)
