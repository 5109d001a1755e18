# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may ask the agent for what: the grants file and the authorization rule.

The grants file (default ``/etc/berth/grants.json``, root-owned, not writable
by group or others, written by the ``berth.ports.ports_agent`` role)::

    {"version": 1, "grants": [
      {"user": "svc1", "label": "node:portsadm", "owner": "svc1", "max_tcp_ports": 4},
      {"uid": 1002, "label": "node:fwadm,portsadm", "owner": "mod2"},
      {"user": "ns-agent", "role": "admin"}
    ]}

* ``user`` (a name, matched against the caller's uid through the passwd
  database at request time) or ``uid`` (a number): exactly one.
* ``label``: NethServer 8's authorization label, exactly one of LABELS; it
  gives role ``portsadm``: the caller manages owner ``owner`` only (``owner``
  defaults to ``user``).
* ``role: admin`` (instead of ``label``): the cluster agent; it may manage any
  owner. uid 0 is always admin: it can write the database anyway.
* ``max_tcp_ports`` / ``max_udp_ports`` (optional, integers >= 0): NethServer
  8's port demand. The most ports of that proto the owner may hold after a
  request through the agent, its kept (``keep_existing``) ranges counted; a
  request past it is refused as ``max_ports_exceeded`` and nothing changes.
  Absent on a ``label`` grant means the daemon's default cap
  (``--default-max-ports``, DEFAULT_MAX_PORTS); absent on an admin grant means
  no cap, present it caps every owner the admin acts on.
* ``allow_reserved`` (optional, default false): a ``label`` grant's static
  request may take a port of the host's ``reserved`` list (as a playbook can).
* ``allow_shared_listeners`` (optional, default false): a ``label`` grant's
  ``shared`` static request may take a port that a process listens on without
  any allocation (Nomad's SO_REUSEPORT case with a peer outside berth).
  Without it, ``shared`` joins only ports that shared holders hold.

One grant per user or uid. A caller with no grant is refused.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import threading
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import CODE_BAD_REQUEST, CODE_FORBIDDEN, AgentError
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import MAX_PORT
from ansible_collections.berth.ports.plugins.module_utils.request import validate_owner

ROLE_PORTSADM = "portsadm"
ROLE_ADMIN = "admin"

# NethServer 8 accepts exactly these authorization labels for port allocation
# (node:portsadm, optionally after fwadm or tunadm); the order is part of it.
LABELS = ("node:portsadm", "node:fwadm,portsadm", "node:tunadm,portsadm")

GRANTS_VERSION = 1
# The grant keys that cap an owner's holding, by proto.
LIMIT_KEYS = {"tcp": "max_tcp_ports", "udp": "max_udp_ports"}
# A label grant without its proto's key may hold this many ports of it, so that
# no single grantee can take the whole block (the role sets it per host).
DEFAULT_MAX_PORTS = 16
# What a label grant may do beyond the default, by key (admin grants may anyway).
ALLOW_KEYS = ("allow_reserved", "allow_shared_listeners")
_MAX_GRANTS_BYTES = 1024 * 1024


class GrantsError(PortsError):
    """The grants file is unusable (unsafe, malformed); every non-root caller is refused."""


class Grant(NamedTuple):
    role: str  # ROLE_PORTSADM or ROLE_ADMIN
    owner: Optional[str]  # the one owner a portsadm grant manages; None for admin
    user: Optional[str] = None
    uid: Optional[int] = None
    label: Optional[str] = None
    max_tcp_ports: Optional[int] = None
    max_udp_ports: Optional[int] = None
    allow_reserved: bool = False
    allow_shared_listeners: bool = False

    def max_ports(self, proto: str, default: Optional[int] = None) -> Optional[int]:
        """The cap on the owner's ``proto`` ports: the grant's own, else ``default`` for a
        label grant; None (no cap) for an admin grant without the key."""
        own = self.max_tcp_ports if proto == "tcp" else self.max_udp_ports if proto == "udp" else None
        if own is None and self.role != ROLE_ADMIN:
            return default
        return own

    def describe(self) -> str:
        who = "user %s" % self.user if self.user is not None else "uid %d" % (self.uid or 0)
        what = "admin" if self.role == ROLE_ADMIN else "%s for owner %s" % (self.label, self.owner)
        caps = ["%s %s" % (LIMIT_KEYS[proto], cap) for proto, cap in (("tcp", self.max_tcp_ports), ("udp", self.max_udp_ports))
                if cap is not None]
        caps += [key for key in ALLOW_KEYS if getattr(self, key)]
        return "%s: %s%s" % (who, what, " (%s)" % ", ".join(caps) if caps else "")


class Identity(NamedTuple):
    """The caller as the kernel reports it (SO_PEERCRED) and the grant that applies."""

    uid: int
    gid: int
    pid: int
    user: Optional[str]
    grant: Optional[Grant]

    def describe(self) -> str:
        name = " (%s)" % self.user if self.user else ""
        return "uid %d%s" % (self.uid, name)


ROOT_GRANT = Grant(ROLE_ADMIN, None, user="root", uid=0)


def parse_grant(entry: Any, where: str = "grant") -> Grant:
    """One grant as written in the file or the role's inventory; GrantsError when malformed."""
    if not isinstance(entry, dict):
        raise GrantsError("%s is not a mapping" % where)
    unknown = sorted(set(entry) - {"user", "uid", "label", "role", "owner"} - set(LIMIT_KEYS.values()) - set(ALLOW_KEYS))
    if unknown:
        raise GrantsError("%s has unknown keys: %s" % (where, ", ".join(str(k) for k in unknown)))
    user, uid = entry.get("user"), entry.get("uid")
    if (user is None) == (uid is None):
        raise GrantsError("%s needs exactly one of user or uid" % where)
    if user is not None and (not isinstance(user, str) or not user or "\n" in user or ":" in user):
        raise GrantsError("%s: user %r is not a user name" % (where, user))
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int) or uid < 0 or uid > 0xFFFFFFFE):
        raise GrantsError("%s: uid %r is not a uid" % (where, uid))
    label, role = entry.get("label"), entry.get("role")
    if (label is None) == (role is None):
        raise GrantsError("%s needs exactly one of label (%s) or role: admin" % (where, " | ".join(LABELS)))
    who = "user %s" % user if user is not None else "uid %s" % uid
    caps = {}  # type: Dict[str, Optional[int]]
    for key in LIMIT_KEYS.values():
        cap = entry.get(key)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0 or cap > MAX_PORT):
            raise GrantsError("%s (%s): %s %r is not a number of ports (0-%d)" % (where, who, key, cap, MAX_PORT))
        caps[key] = cap
    allowed = {}  # type: Dict[str, bool]
    for key in ALLOW_KEYS:
        flag = entry.get(key, False)
        if not isinstance(flag, bool):
            raise GrantsError("%s (%s): %s %r is not true or false" % (where, who, key, flag))
        allowed[key] = flag
    if role is not None:
        if role != ROLE_ADMIN:
            raise GrantsError("%s (%s): role %r is not admin (use label for portsadm)" % (where, who, role))
        if entry.get("owner") is not None:
            raise GrantsError("%s (%s): role admin manages every owner and takes no owner" % (where, who))
        if any(allowed.values()):
            raise GrantsError("%s (%s): role admin may do that anyway and takes no %s" % (where, who, " or ".join(ALLOW_KEYS)))
        return Grant(ROLE_ADMIN, None, user=user, uid=uid, **caps)
    if label not in LABELS:
        raise GrantsError("%s (%s): label %r is not one of %s" % (where, who, label, ", ".join(LABELS)))
    owner = entry.get("owner")
    if owner is None:
        if user is None:
            raise GrantsError("%s (%s): a uid grant needs owner" % (where, who))
        owner = user
    try:
        owner = validate_owner(owner)
    except PortsError as exc:
        raise GrantsError("%s (%s): %s" % (where, who, exc))
    return Grant(ROLE_PORTSADM, owner, user=user, uid=uid, label=label, **caps, **allowed)


def parse_grants(data: Any) -> Tuple[Grant, ...]:
    """The whole file's content (already JSON-decoded)."""
    if not isinstance(data, dict) or data.get("version") != GRANTS_VERSION or not isinstance(data.get("grants"), list):
        raise GrantsError('grants are not {"version": %d, "grants": [...]}' % GRANTS_VERSION)
    grants = [parse_grant(entry, "grant %d" % (i + 1)) for i, entry in enumerate(data["grants"])]
    seen = {}  # type: Dict[Tuple[str, object], int]
    for i, grant in enumerate(grants):
        key = ("user", grant.user) if grant.user is not None else ("uid", grant.uid)
        if key in seen:
            raise GrantsError("grant %d repeats %s %s of grant %d: one grant per user" % (i + 1, key[0], key[1], seen[key] + 1))
        seen[key] = i
    return tuple(grants)


def grants_document(grants: List[Dict[str, Any]]) -> str:
    """The file content for ``grants`` after checking them (the role writes this)."""
    parse_grants({"version": GRANTS_VERSION, "grants": grants})
    return json.dumps({"version": GRANTS_VERSION, "grants": grants}, indent=2, sort_keys=True) + "\n"


def read_grants_file(path: str, require_root_owned: bool = True) -> Tuple[Grant, ...]:
    """The grants in ``path``; none when it does not exist; GrantsError when unsafe or malformed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise GrantsError("grants file %s: cannot open it: %s" % (path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GrantsError("grants file %s is not a regular file" % path)
        if require_root_owned and st.st_uid != 0:
            raise GrantsError("grants file %s is owned by uid %d, not root; refusing it" % (path, st.st_uid))
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise GrantsError("grants file %s is writable by group or others (mode %o); refusing it" % (path, st.st_mode & 0o7777))
        if st.st_size > _MAX_GRANTS_BYTES:
            raise GrantsError("grants file %s is larger than %d bytes" % (path, _MAX_GRANTS_BYTES))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(_MAX_GRANTS_BYTES + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise GrantsError("grants file %s is not JSON: %s" % (path, str(exc)[:80]))
    try:
        return parse_grants(data)
    except GrantsError as exc:
        raise GrantsError("grants file %s: %s" % (path, exc))


def _user_name(uid: int) -> Optional[str]:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


class GrantsTable:
    """The grants file, re-read whenever it changes (or on reload(), e.g. from SIGHUP)."""

    def __init__(self, path: str, require_root_owned: bool = True) -> None:
        self.path = path
        self.require_root_owned = require_root_owned
        self._lock = threading.Lock()
        self._stamp = None  # type: Optional[tuple]
        self._grants = ()  # type: Tuple[Grant, ...]
        self._error = None  # type: Optional[GrantsError]

    def reload(self) -> None:
        with self._lock:
            self._stamp = None

    def grants(self) -> Tuple[Grant, ...]:
        """The current grants; GrantsError while the file is unusable (fail closed)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode, st.st_uid)  # type: Optional[tuple]
        except FileNotFoundError:
            stamp = ("missing",)
        except OSError:
            stamp = None  # unreadable: let read_grants_file say why, every time
        with self._lock:
            if stamp is None or stamp != self._stamp:
                try:
                    self._grants, self._error = read_grants_file(self.path, self.require_root_owned), None
                except GrantsError as exc:
                    self._grants, self._error = (), exc
                self._stamp = stamp
            if self._error is not None:
                raise self._error
            return self._grants

    def identify(self, uid: int, gid: int, pid: int) -> Identity:
        """The caller and its grant (None when it has none)."""
        user = _user_name(uid)
        if uid == 0:
            return Identity(uid, gid, pid, user, ROOT_GRANT)
        for grant in self.grants():
            if grant.uid == uid or (grant.user is not None and grant.user == user):
                return Identity(uid, gid, pid, user, grant)
        return Identity(uid, gid, pid, user, None)


def authorize(identity: Identity, owner: Optional[str], op: str) -> str:
    """The owner ``identity`` may act on for ``op`` (its own when ``owner`` is None), or AgentError(forbidden)."""
    grant = identity.grant
    if grant is None:
        raise AgentError(
            "%s has no berth.ports grant; refused to %s ports (ask an admin to grant %s)"
            % (identity.describe(), op, " or ".join(LABELS)),
            CODE_FORBIDDEN,
        )
    if grant.role == ROLE_ADMIN:
        if owner is None:
            raise AgentError("%s is admin: name the owner to %s (--owner or MODULE_ID)" % (identity.describe(), op), CODE_BAD_REQUEST)
        return owner
    if owner is None or owner == grant.owner:
        return str(grant.owner)
    raise AgentError(
        "%s has %s for owner %s only; refused to %s ports of owner %s" % (identity.describe(), grant.label, grant.owner, op, owner),
        CODE_FORBIDDEN,
    )
