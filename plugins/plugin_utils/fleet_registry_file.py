# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry's file (issue 17): its format, read, validated and written as text.

Controller-only, like every fleet_registry_* file: nothing here imports
Ansible and nothing runs on a managed host.

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
"""

from __future__ import annotations

from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import yaml

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, parse_range
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, validate_owner, validate_proto

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


def port_spec(ports: PortRange) -> str:
    """How the file writes a range: "25080" for one port, "25090-25099" for more."""
    return str(ports.first) if ports.size == 1 else str(ports)


def registry_label(source: str, fleet: str) -> str:
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
                raise PortsError("%s: owner %s has no ports; give it tcp or udp ports, or remove it" % (registry_label(source, fleet), owner))
            for raw_proto, raw_spec in protos.items():
                try:
                    proto = validate_proto(raw_proto)
                except PortsError as exc:
                    raise PortsError("%s: owner %s: %s" % (registry_label(source, fleet), owner, exc)) from exc
                try:
                    ports = parse_range(raw_spec)
                except PortsError as exc:
                    raise PortsError(
                        "%s: owner %s/%s: %s (write \"PORT\" or \"LOW-HIGH\")" % (registry_label(source, fleet), owner, proto, exc)
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
                    % (registry_label(source, fleet), pair[0][0], port_spec(pair[0][1]), proto,
                       pair[1][0], port_spec(pair[1][1]), proto, port_spec(common), proto)
                )
            if widest is None or ports.last > widest.last:
                widest, widest_owner = ports, owner


def check_settings(registry: Registry, settings: Settings, fleet: Optional[str] = None) -> None:
    """Refuse entries outside the range or inside reserved: of ``fleet``, or of every fleet when None."""
    names = sorted(registry.fleets) if fleet is None else [fleet]
    for name in names:
        for (owner, proto), ports in sorted(registry.fleet(name).items()):
            where = "%s: owner %s/%s ports %s" % (registry_label(registry.source, name), owner, proto, port_spec(ports))
            if not settings.bounds.covers(ports):
                raise PortsError("%s are outside the range %s" % (where, settings.bounds))
            for reserved in settings.reserved:
                if reserved.overlaps(ports):
                    raise PortsError("%s are inside reserved %s" % (where, port_spec(reserved)))


def read_registry_text(path: str) -> str:
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
    registry = parse_registry_text(read_registry_text(path), path)
    if settings is not None:
        check_settings(registry, settings, fleet)
    return registry


def dump_registry(registry: Registry) -> str:
    """The registry as file text: the header, then a stable sorted layout."""
    fleets = {}  # type: Dict[str, Dict[str, Dict[str, str]]]
    for fleet, entries in registry.fleets.items():
        owners = fleets.setdefault(fleet, {})
        for (owner, proto), ports in entries.items():
            owners.setdefault(owner, {})[proto] = port_spec(ports)
    body = yaml.safe_dump({"fleets": fleets}, default_flow_style=False, sort_keys=True, width=1000, allow_unicode=False)
    return "%sversion: %d\n%s" % (HEADER, VERSION, body)


def entry_hint(fleet: str, owner: str, proto: str, ports: PortRange) -> str:
    """One line of YAML, in flow style, that gives ``owner`` its ports when merged into the file."""
    text = yaml.safe_dump({"fleets": {fleet: {owner: {proto: port_spec(ports)}}}}, default_flow_style=True, width=1000)
    return text.strip()


def expected_ranges(path: Optional[str], fleet: str = DEFAULT_FLEET) -> Dict[Key, str]:
    """The fleet's registry ranges per (owner, proto) as port_info writes ranges ("A-B"), for
    measuring drift against; empty without a path or a file."""
    if not path:
        return {}
    fleet = validate_fleet(fleet)
    return {key: str(ports) for key, ports in sorted(load_registry(path).fleet(fleet).items())}
