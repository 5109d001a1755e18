# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database file on disk, before SQLite sees it: a usable path, the
directory (0700) and file (0600) created safely, only a regular SQLite file
opened, and the ``-verified`` stamp that lets a call skip the full page check.

Every failure is a StoreError naming the file. Descriptors of the database are
closed through store_locks.DESCRIPTORS (the lock rule); the stamp is a file of
its own, closed directly.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.berth.ports.plugins.module_utils.errors import StoreError
from ansible_collections.berth.ports.plugins.module_utils.store_locks import DESCRIPTORS

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Five decimal integers (at most 20 digits each) and their separators fit.
STAMP_WIDTH = 112

# Linux' PATH_MAX; a longer path can only fail, and os.makedirs would recurse
# once per component getting there.
_PATH_MAX = 4096

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def check_path(path: object) -> str:
    """``path`` if it can name a database file at all."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StoreError("db_path %r is not a usable file path" % (path,))
    if len(path) >= _PATH_MAX:
        raise StoreError("db_path %s... is longer than the system allows (%d bytes)" % (path[:40], _PATH_MAX))
    return path


def check_parent(path: str) -> None:
    """Refuse a path under something that is not a directory (reads create nothing)."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise StoreError("db_path %s: parent %s is not a directory" % (path, parent))


def prepare_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(parent):
        return
    try:
        os.makedirs(parent, 0o700)
        os.chmod(parent, 0o700)  # makedirs' mode is filtered by the umask
    except FileExistsError:
        # A file is in the way, or a concurrent first writer just made the
        # directory: only the first is an error.
        if not os.path.isdir(parent):
            raise StoreError("db_path %s: parent %s is not a directory" % (path, parent))
    except OSError as exc:
        raise StoreError("db_path %s: cannot create %s: %s" % (path, parent, exc.strerror))
    except RecursionError:
        raise StoreError("db_path %s: too many missing directories to create" % path)


def create_file(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except FileExistsError:
        return  # ours from an earlier run, or another writer just made it
    except OSError as exc:
        raise StoreError("db_path %s: cannot create it: %s" % (path, exc.strerror))
    try:
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise StoreError("db_path %s: cannot make it 0600: %s" % (path, exc.strerror))
    finally:
        DESCRIPTORS.close(fd)


def open_regular(path: str, follow: bool = False) -> int:
    """A descriptor of the database file, refusing anything but a regular file.

    Checked before opening, so that a FIFO or a device is never opened.
    Writers never follow a symlink; readers do, as SQLite does.
    """
    # No O_CLOEXEC: os.open makes every descriptor non-inheritable (PEP 446).
    flags = os.O_RDONLY | (0 if follow else _NOFOLLOW)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise StoreError("db_path %s is not a regular file; refusing to use it" % path)
        return os.open(path, flags)
    except OSError as exc:
        raise StoreError("db_path %s: cannot open it: %s" % (path, exc.strerror))


def open_checked(path: str, follow: bool = False) -> int:
    fd = open_regular(path, follow)
    try:
        check_header(path, fd)
    except BaseException:
        DESCRIPTORS.close(fd)
        raise
    return fd


def check_header(path: str, fd: int) -> None:
    try:
        header = os.pread(fd, len(_SQLITE_MAGIC), 0)
    except OSError as exc:
        raise StoreError("db_path %s: cannot read it: %s" % (path, exc.strerror))
    # An empty file holds nothing to lose (we or `touch` just made it);
    # anything else must be SQLite before SQLite is let near it.
    if header and header != _SQLITE_MAGIC:
        raise StoreError("db_path %s is not an SQLite database; refusing to touch it" % path)


# -- the stamp: the file as the last berth writer left it ---------------------
#
# A full ``quick_check`` is linear in the file's size, so a call skips it while
# the file is byte for byte as a berth writer last committed it. Beside the
# database, named like SQLite's own -journal file: device, inode, size, mtime
# and ctime. ctime changes on every write to the file and cannot be set back
# by `touch`, so bytes written by anything but SQLite show up here.


def _stamp_path(path: str) -> str:
    return path + "-verified"


def _file_stamp(path: str) -> bytes:
    st = os.stat(path)
    # Fixed width, so each write overwrites the last one completely.
    return ("%d %d %d %d %d" % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)).ljust(STAMP_WIDTH).encode("ascii")


def stamp_matches(path: str) -> bool:
    # Bytes, not text: whatever is in the file must only ever fail to match.
    try:
        fd = os.open(_stamp_path(path), os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        try:
            return os.read(fd, STAMP_WIDTH + 1) == _file_stamp(path)
        finally:
            os.close(fd)
    except OSError:
        return False


def write_stamp(path: str) -> None:
    """Record the file as it is now (after a commit, under the writers' lock).

    Only writers write it (check mode and reads never do). Best effort, and
    overwritten in place: neither renamed nor truncated, because ext4 flushes
    a file truncated to zero when it is closed (its auto_da_alloc), which cost
    0.2 ms, more than the rest of the call but the commit. A torn or stale
    stamp cannot match the file, so the worst outcome is one more full check.
    """
    try:
        fd = os.open(_stamp_path(path), os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o600)
        try:
            os.pwrite(fd, _file_stamp(path), 0)
            if os.fstat(fd).st_size > STAMP_WIDTH:  # longer than any stamp: not ours
                os.ftruncate(fd, STAMP_WIDTH)
        finally:
            os.close(fd)
    except OSError:
        pass
