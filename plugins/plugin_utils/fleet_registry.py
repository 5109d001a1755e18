# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry (issue 17): one YAML file on the controller that remembers each fleet's ports.

Controller-only: nothing here imports Ansible and nothing runs on a managed
host. An action plugin or filter wraps it; pytest tests it directly.

The file
--------

::

    # (a comment header, rewritten on every write)
    version: 1
    fleets:
      default:                 # fleet name (service_ports_fleet_name)
        ceph-rgw:              # owner, the rule of request.validate_owner
          tcp: '25080'         # one port ...
        metrics:
          tcp: 25090-25099     # ... or one LOW-HIGH range, per proto (tcp, udp)
      staging: {}

- ``version`` may be left out of a hand-written file (it means 1); any other
  version is refused.
- A single port may be written as an integer (``tcp: 25080``); owner and
  fleet names must be strings (quote one that YAML would read as a number
  or a boolean, such as ``'123'`` or ``'yes'``).
- Unknown keys, duplicate keys, a proto other than tcp/udp, a port outside
  1-65535, an inverted range, a list where one range is expected: refused.
- Within one fleet, one port of a proto belongs to one owner: two owners
  whose ranges overlap are refused, naming both and the ports.
- Given the run's Settings, every entry of the fleet in use must lie inside
  the range and outside ``reserved`` (other fleets of the file may run
  under other ranges, so they are only checked when no fleet is named).

Every refusal is a one-line PortsError that names the file.

Writing sorts fleets, owners and protos and always produces the same bytes
for the same content, so rewriting an unchanged registry changes nothing and
a change reviews as a small diff in git. Comments of a hand-written file are
not kept when the registry is rewritten (only when an owner is added or
changed); the header says so.

The choice
----------

:func:`choose_ports` applies rules 1 and 2 of the issue: an owner in the
registry keeps exactly its ports; a demand that grows keeps its first port
when the larger range is free, a demand that shrinks keeps its first port;
a new owner gets the lowest run free on every surveyed host and held by no
other owner of the fleet in the registry, searched in the allocator's
first-fit order (upper band first, then the whole range). Frozen, it refuses
anything that would change the registry.

The write
---------

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
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import yaml

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import first_fit, largest_run
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.fleet_choice import (
    FALLBACKS,
    Claim,
    HostView,
    dynamic_demands,
    majority_ports,
    read_fleet,
    settle_fleet_ports,
    static_claims,
)
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs, merge, parse_range
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, build_settings, validate_owner, validate_proto

VERSION = 1
DEFAULT_FLEET = "default"

HEADER = (
    "# berth.ports fleet registry: the ports every owner holds on all hosts of a fleet.\n"
    "# fleets -> fleet name -> owner -> proto (tcp, udp) -> \"PORT\" or \"LOW-HIGH\".\n"
    "# Within a fleet one port belongs to one owner. Edit by hand and review in git;\n"
    "# berth.ports rewrites this file sorted (dropping comments) when it adds or changes an owner.\n"
)

Key = Tuple[str, str]  # (owner, proto)
Fleet = Dict[Key, PortRange]


class Registry(NamedTuple):
    """A parsed registry: fleet name -> (owner, proto) -> ports, and the file it came from.

    Treat it as immutable: :meth:`with_fleet` returns a new one.
    """

    fleets: Mapping[str, Mapping[Key, PortRange]]
    source: str = "(no file)"

    def fleet(self, name: str) -> Fleet:
        """A copy of one fleet's entries; empty when the fleet is not in the registry."""
        return dict(self.fleets.get(name, {}))

    def with_fleet(self, name: str, entries: Mapping[Key, PortRange]) -> "Registry":
        fleets = {fleet: dict(held) for fleet, held in self.fleets.items()}
        fleets[name] = dict(entries)
        return Registry(fleets, self.source)


class Taken(NamedTuple):
    """Ports of a proto that ``owner`` holds on some surveyed host: they block every other owner."""

    owner: str
    range: PortRange


# A survey item: a Taken (an allocation, which does not block its own owner)
# or a bare PortRange (a listener, reserved or anything else: blocks everyone).
Surveyed = Union[Taken, PortRange]


class RegistryWrite(NamedTuple):
    """What :func:`update_registry` did: the text before and after, and whether they differ."""

    before: str
    after: str
    changed: bool


# ------------------------------------------------------------------ reading


class _Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """yaml.SafeLoader that refuses duplicate keys instead of keeping the last one silently.

    A hand edit that lists an owner twice would otherwise lose one entry
    without a word.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen = {}  # type: Dict[object, int]
            for key_node, unused_value in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    first_line = seen.get(key)
                except TypeError:  # unhashable: SafeLoader words that error itself
                    continue
                if first_line is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, "duplicate key %r (first at line %d)" % (key, first_line), key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _spec(ports: PortRange) -> str:
    """How the file writes a range: "25080" for one port, "25090-25099" for more."""
    return str(ports.first) if ports.size == 1 else str(ports)


def _label(source: str, fleet: str) -> str:
    return "registry %s, fleet %s" % (source, fleet)


def _mapping(value: object, what: str, source: str) -> Mapping[object, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PortsError("registry %s: %s is not a mapping: %r" % (source, what, value))
    return value


def validate_fleet(fleet: object) -> str:
    """A fleet name follows the owner rule: letters, digits and ._@:-, starting with a letter or digit."""
    try:
        return validate_owner(fleet)
    except PortsError:
        raise PortsError("fleet name %r is not 1-128 characters of letters, digits and ._@:- starting with a letter or digit" % (fleet,)) from None


def _name(value: object, what: str, source: str) -> str:
    if not isinstance(value, str):
        raise PortsError(
            "registry %s: %s %r is not a string; quote it in the file (YAML reads it as %s)"
            % (source, what, value, type(value).__name__)
        )
    try:
        return validate_owner(value)
    except PortsError:
        raise PortsError(
            "registry %s: %s %r is not 1-128 characters of letters, digits and ._@:- starting with a letter or digit" % (source, what, value)
        ) from None


def parse_registry(data: object, source: str) -> Registry:
    """Validate the YAML data of a registry file and build a Registry; see the module docstring.

    Checks everything that does not depend on the run's range: shape, names,
    protos, port specs and overlaps within each fleet.
    """
    top = _mapping(data, "the top level", source)
    unknown = sorted(str(key) for key in top if key not in ("version", "fleets"))
    if unknown:
        raise PortsError("registry %s: unknown top-level key %s; expected version and fleets" % (source, ", ".join(unknown)))
    version = top.get("version", VERSION)
    if isinstance(version, bool) or version != VERSION:
        raise PortsError("registry %s: version %r is not supported; this berth.ports reads version %d" % (source, version, VERSION))
    fleets = {}  # type: Dict[str, Fleet]
    for raw_fleet, raw_owners in _mapping(top.get("fleets"), "fleets", source).items():
        fleet = _name(raw_fleet, "fleet name", source)
        entries = {}  # type: Fleet
        for raw_owner, raw_protos in _mapping(raw_owners, "fleet %s" % fleet, source).items():
            owner = _name(raw_owner, "fleet %s: owner" % fleet, source)
            protos = _mapping(raw_protos, "fleet %s: owner %s" % (fleet, owner), source)
            if not protos:
                raise PortsError("%s: owner %s has no ports; give it tcp or udp ports, or remove it" % (_label(source, fleet), owner))
            for raw_proto, raw_spec in protos.items():
                try:
                    proto = validate_proto(raw_proto)
                except PortsError as exc:
                    raise PortsError("%s: owner %s: %s" % (_label(source, fleet), owner, exc)) from exc
                try:
                    ports = parse_range(raw_spec)
                except PortsError as exc:
                    raise PortsError(
                        "%s: owner %s/%s: %s (write \"PORT\" or \"LOW-HIGH\")" % (_label(source, fleet), owner, proto, exc)
                    ) from exc
                entries[(owner, proto)] = ports
        check_overlaps(entries, fleet, source)
        fleets[fleet] = entries
    return Registry(fleets, source)


def check_overlaps(entries: Mapping[Key, PortRange], fleet: str, source: str) -> None:
    """Refuse two owners of one fleet holding a common port of one proto, naming both."""
    for proto in ("tcp", "udp"):
        held = sorted((ports, owner) for (owner, kind), ports in entries.items() if kind == proto)
        # Sorted by first port, a range overlaps an earlier one if and only if
        # it overlaps the one reaching highest so far.
        widest = None  # type: Optional[PortRange]
        widest_owner = ""
        for ports, owner in held:
            if widest is not None and widest.overlaps(ports):
                common = PortRange(max(widest.first, ports.first), min(widest.last, ports.last))
                pair = sorted([(widest_owner, widest), (owner, ports)])
                raise PortsError(
                    "%s: owners %s (%s/%s) and %s (%s/%s) overlap on %s/%s; one port belongs to one owner of a fleet"
                    % (_label(source, fleet), pair[0][0], _spec(pair[0][1]), proto, pair[1][0], _spec(pair[1][1]), proto, _spec(common), proto)
                )
            if widest is None or ports.last > widest.last:
                widest, widest_owner = ports, owner


def check_settings(registry: Registry, settings: Settings, fleet: Optional[str] = None) -> None:
    """Refuse entries outside the range or inside reserved: of ``fleet``, or of every fleet when None."""
    names = sorted(registry.fleets) if fleet is None else [fleet]
    for name in names:
        for (owner, proto), ports in sorted(registry.fleet(name).items()):
            where = "%s: owner %s/%s ports %s" % (_label(registry.source, name), owner, proto, _spec(ports))
            if not settings.bounds.covers(ports):
                raise PortsError("%s are outside the range %s" % (where, settings.bounds))
            for reserved in settings.reserved:
                if reserved.overlaps(ports):
                    raise PortsError("%s are inside reserved %s" % (where, _spec(reserved)))


def _read_text(path: str) -> str:
    """The file's text; "" when it does not exist (an empty registry)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise PortsError("registry %s cannot be read: %s" % (path, exc.strerror or exc)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PortsError("registry %s is not UTF-8 text: %s" % (path, exc)) from exc


def parse_registry_text(text: str, source: str) -> Registry:
    """Parse and validate a registry file's text (settings aside); empty text is an empty registry."""
    try:
        data = yaml.load(text, Loader=_Loader)  # nosec: a SafeLoader that also refuses duplicate keys
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PortsError("registry %s is not valid YAML%s: %s" % (source, where, problem)) from exc
    return parse_registry(data, source)


def load_registry(path: str, settings: Optional[Settings] = None, fleet: Optional[str] = None) -> Registry:
    """Read and validate the registry at ``path``; a missing file is an empty registry.

    With ``settings``, the entries of ``fleet`` (every fleet when None) must
    also lie inside the range and outside reserved.
    """
    registry = parse_registry_text(_read_text(path), path)
    if settings is not None:
        check_settings(registry, settings, fleet)
    return registry


# ------------------------------------------------------------------ writing


def dump_registry(registry: Registry) -> str:
    """The registry as file text: the header, then a stable sorted layout."""
    fleets = {}  # type: Dict[str, Dict[str, Dict[str, str]]]
    for fleet, entries in registry.fleets.items():
        owners = fleets.setdefault(fleet, {})
        for (owner, proto), ports in entries.items():
            owners.setdefault(owner, {})[proto] = _spec(ports)
    body = yaml.safe_dump({"fleets": fleets}, default_flow_style=False, sort_keys=True, width=1000, allow_unicode=False)
    return "%sversion: %d\n%s" % (HEADER, VERSION, body)


def entry_hint(fleet: str, owner: str, proto: str, ports: PortRange) -> str:
    """One line of YAML, in flow style, that gives ``owner`` its ports when merged into the file."""
    text = yaml.safe_dump({"fleets": {fleet: {owner: {proto: _spec(ports)}}}}, default_flow_style=True, width=1000)
    return text.strip()


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
    before = _read_text(path)
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


# ------------------------------------------------------------------ the choice


def _demands(demands: Mapping[Key, int], bounds: PortRange) -> Dict[Key, int]:
    checked = {}  # type: Dict[Key, int]
    for key, count in demands.items():
        if not isinstance(key, tuple) or len(key) != 2:
            raise PortsError("demand key %r is not an (owner, proto) pair" % (key,))
        owner, proto = validate_owner(key[0]), validate_proto(key[1])
        if isinstance(count, bool) or not isinstance(count, int):
            raise PortsError("count %r for owner %s/%s is not an integer" % (count, owner, proto))
        if count < 0:
            raise PortsError("count %d for owner %s/%s must not be negative" % (count, owner, proto))
        if count > bounds.size:
            raise PortsError("count %d for owner %s/%s is larger than the range %s (%d ports)" % (count, owner, proto, bounds, bounds.size))
        if count:
            checked[(owner, proto)] = count
    return checked


class _Blocks(NamedTuple):
    """One proto's survey, merged: what blocks everyone, and per owner what blocks the others."""

    anyone: List[PortRange]
    by_owner: Dict[str, List[PortRange]]

    def against(self, owner: str) -> List[PortRange]:
        blocked = list(self.anyone)
        for holder, ranges in self.by_owner.items():
            if holder != owner:
                blocked.extend(ranges)
        return blocked


def _survey_blocks(taken: Mapping[str, Iterable[Surveyed]]) -> Dict[str, _Blocks]:
    blocks = {}  # type: Dict[str, _Blocks]
    for raw_proto, items in taken.items():
        proto = validate_proto(raw_proto)
        anyone = []  # type: List[PortRange]
        by_owner = {}  # type: Dict[str, List[PortRange]]
        for item in items:
            if isinstance(item, Taken):
                by_owner.setdefault(item.owner, []).append(PortRange(*item.range))
            elif isinstance(item, PortRange):
                anyone.append(item)
            else:
                raise PortsError("surveyed %s ports: %r is neither a PortRange nor a Taken" % (proto, item))
        blocks[proto] = _Blocks(merge(anyone), {owner: merge(ranges) for owner, ranges in by_owner.items()})
    return blocks


def choose_ports(
    registry: Registry,
    fleet: str,
    demands: Mapping[Key, int],
    taken: Mapping[str, Iterable[Surveyed]],
    settings: Settings,
    frozen: bool = False,
) -> Tuple[Registry, Dict[Key, PortRange]]:
    """The registry after this run's choice, and the ports of every (owner, proto) demanded.

    ``demands`` maps (owner, proto) to the number of ports the run asks for
    (0: no choice, the registry entry is left as it is). ``taken`` maps a
    proto to what the surveyed hosts hold: :class:`Taken` items (another
    owner's allocation) and bare PortRange items (listeners, anything that
    blocks every owner). ``settings.reserved`` always blocks.

    - An owner in the registry with the same count gets exactly its ports.
    - A count that shrinks keeps the first port.
    - A count that grows keeps the first port when the larger range is in the
      range, outside reserved, free on every surveyed host and held by no other
      owner of the fleet; otherwise it is chosen like a new owner.
    - A new owner gets the lowest run, upper band first then the whole range,
      free on every host and held by no other owner of the fleet.

    Owners are settled in sorted order: kept and shrunk ones first, then grown,
    then new, so the result never depends on the order of a dict. Entries of
    owners not demanded stay as they are. ``frozen`` refuses any change to the
    registry with a message that says which entry to add.
    """
    fleet = validate_fleet(fleet)
    check_settings(registry, settings, fleet)
    bounds = settings.bounds
    wanted = _demands(demands, bounds)
    blocks = _survey_blocks(taken)
    held = registry.fleet(fleet)
    reserved = merge(settings.reserved)

    chosen = {}  # type: Dict[Key, PortRange]
    grown = []  # type: List[Key]
    new = []  # type: List[Key]
    for key in sorted(wanted):
        count = wanted[key]
        current = held.get(key)
        if current is None:
            new.append(key)
        elif count <= current.size:
            chosen[key] = PortRange(current.first, current.first + count - 1)
            held[key] = chosen[key]
        else:
            grown.append(key)

    def blocked_for(key: Key) -> List[PortRange]:
        owner, proto = key
        others = [ports for (holder, kind), ports in held.items() if kind == proto and holder != owner]
        survey = blocks[proto].against(owner) if proto in blocks else []
        return merge(reserved + survey + others)

    def pick(key: Key) -> PortRange:
        blocked = blocked_for(key)
        run = first_fit(bounds, blocked, wanted[key])
        if run is None:
            best = largest_run(free_runs(bounds, blocked))
            raise PortsError(
                "%s: no run of %d free %s ports for owner %s in %s, free on every surveyed host and held by no other owner "
                "of the fleet; the largest such run is %s"
                % (_label(registry.source, fleet), wanted[key], key[1], key[0], bounds, "%d ports (%s)" % (best.size, best) if best else "none")
            )
        return run

    for key in grown:
        current = held[key]
        in_place = PortRange(current.first, current.first + wanted[key] - 1)
        if bounds.covers(in_place) and not any(in_place.overlaps(busy) for busy in blocked_for(key)):
            chosen[key] = in_place
        else:
            del held[key]  # its old ports do not block its own new run
            chosen[key] = pick(key)
        held[key] = chosen[key]
    for key in new:
        chosen[key] = pick(key)
        held[key] = chosen[key]

    before = registry.fleet(fleet)
    if held == before:
        return registry, chosen
    if frozen:
        _refuse_frozen(registry, fleet, before, chosen)
    return registry.with_fleet(fleet, held), chosen


def _refuse_frozen(registry: Registry, fleet: str, before: Mapping[Key, PortRange], chosen: Mapping[Key, PortRange]) -> None:
    for key in sorted(chosen):
        owner, proto = key
        ports = chosen[key]
        old = before.get(key)
        if old == ports:
            continue
        hint = entry_hint(fleet, owner, proto, ports)
        if old is None:
            raise PortsError(
                "%s: owner %s/%s is not in the registry, which is frozen and never written; "
                "add it by hand and commit it, e.g. %s" % (_label(registry.source, fleet), owner, proto, hint)
            )
        raise PortsError(
            "%s: owner %s/%s asks for %d ports but the registry holds %s, and it is frozen and never written; "
            "change the entry by hand and commit it, e.g. %s"
            % (_label(registry.source, fleet), owner, proto, ports.size, _spec(old), hint)
        )
    raise PortsError("%s: internal error: a frozen registry would change" % _label(registry.source, fleet))


# ------------------------------------------------------------------ one run of the role


class RegistryRun(NamedTuple):
    """What a run of the fleet gets from the registry."""

    hosts: Dict[str, Dict[str, Any]]  # per host, what berth.ports.fleet_ports returns
    ports: Dict[Key, PortRange]  # the fleet's ports of every dynamic (owner, proto) of the run
    write: RegistryWrite


def _surveyed(views: Sequence[HostView], claims: Mapping[str, Sequence[Claim]]) -> Dict[str, List[Surveyed]]:
    """What the run's hosts hold, per proto: rows and static asks by owner, listeners for everyone."""
    taken = {"tcp": [], "udp": []}  # type: Dict[str, List[Surveyed]]
    for view in views:
        for row in view.rows:
            taken[row.proto].append(Taken(row.owner, row.range))
        for claim in claims[view.name]:
            taken[claim.proto].append(Taken(claim.owner, claim.range))
        for seen in view.listeners:
            taken[seen.proto].append(PortRange(seen.port, seen.port))
    return taken


def _adopt_existing(
    registry: Registry, fleet: str, demands: Mapping[Key, int], majority: Mapping[Key, int], settings: Settings
) -> Registry:
    """The registry with owners that hosts already hold but the registry does not name, at the
    port the most hosts hold, where that fits the range and no other owner of the fleet holds it.

    A fleet that adopts the registry keeps its ports; an owner whose port does
    not fit is chosen like a new one.
    """
    held = registry.fleet(fleet)
    reserved = merge(settings.reserved)
    for key in sorted(majority):
        if key in held or key not in demands:
            continue
        ports = PortRange(majority[key], majority[key] + demands[key] - 1)
        others = [busy for (owner, proto), busy in held.items() if proto == key[1] and owner != key[0]]
        if settings.bounds.covers(ports) and not any(ports.overlaps(busy) for busy in reserved + others):
            held[key] = ports
    return registry if held == registry.fleet(fleet) else registry.with_fleet(fleet, held)


def registry_fleet_ports(
    hosts: Mapping[str, Mapping[str, Any]],
    path: str,
    fleet: str = DEFAULT_FLEET,
    port_range: str = "25000-25999",
    reserved: Sequence[object] = (),
    fallback: str = "fail",
    frozen: bool = False,
    check_mode: bool = False,
) -> RegistryRun:
    """The fleet's ports for the hosts of this run, as the registry at ``path`` holds them.

    ``hosts`` is what berth.ports.fleet_ports takes: host -> {demand, survey}.
    Owners of the registry get its ports (rules 1 and 2 of :func:`choose_ports`);
    owners the hosts hold but the registry does not name are adopted at the
    port the most hosts hold; the rest are chosen. The registry is written,
    under its lock, before any host is changed; frozen, it is only read, and
    an owner it does not name fails. Each host then takes the fleet's ports
    or meets a conflict (``fallback`` fail) or a local port (``local``).
    """
    if fallback not in FALLBACKS:
        raise PortsError("fallback %r is not one of %s" % (fallback, ", ".join(FALLBACKS)))
    fleet = validate_fleet(fleet)
    settings = build_settings(port_range, () if reserved is None else reserved)
    views = read_fleet(hosts, settings)
    demands = dynamic_demands(views)
    claims = static_claims(views)
    taken = _surveyed(views, claims)
    majority = majority_ports(views, sorted(demands), settings.bounds)
    chosen = {}  # type: Dict[Key, PortRange]

    def change(registry: Registry) -> Registry:
        start = registry if frozen else _adopt_existing(registry, fleet, demands, majority, settings)
        after, picked = choose_ports(start, fleet, demands, taken, settings, frozen=frozen)
        chosen.clear()
        chosen.update(picked)
        return after

    if frozen:
        text = _read_text(path)
        change(parse_registry_text(text, path))
        write = RegistryWrite(text, text, False)
    else:
        write = update_registry(path, fleet, change, check_mode=check_mode, settings=settings)
    ports = {key: chosen[key].first for key in demands}  # type: Dict[Key, Optional[int]]
    settled = settle_fleet_ports(views, ports, sorted(demands), settings.bounds, fallback, claims=claims)
    return RegistryRun(settled, chosen, write)


def expected_ranges(path: Optional[str], fleet: str = DEFAULT_FLEET) -> Dict[Key, str]:
    """The fleet's registry ranges per (owner, proto) as port_info writes ranges ("A-B"), for
    measuring drift against; empty without a path or a file."""
    if not path:
        return {}
    fleet = validate_fleet(fleet)
    return {key: str(ports) for key, ports in sorted(load_registry(path).fleet(fleet).items())}
