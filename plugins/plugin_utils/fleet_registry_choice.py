# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry's choice (issue 17): the ports of every owner a run asks for.

:func:`choose_ports` applies rules 1 and 2 of the issue: an owner in the
registry keeps exactly its ports; a demand that grows keeps its first port
when the larger range is free, a demand that shrinks keeps its first port;
a new owner gets the lowest run free on every surveyed host and held by no
other owner of the fleet in the registry, searched in the allocator's
first-fit order (upper band first, then the whole range). Frozen, it refuses
anything that would change the registry.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, NamedTuple, Tuple, Union

from ansible_collections.berth.ports.plugins.module_utils.allocation_policy import first_fit, largest_run
from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange, free_runs, merge
from ansible_collections.berth.ports.plugins.module_utils.request import Settings, validate_owner, validate_proto
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import (
    Key,
    Registry,
    check_settings,
    entry_hint,
    port_spec,
    registry_label,
    validate_fleet,
)


class Taken(NamedTuple):
    """Ports of a proto that ``owner`` holds on some surveyed host: they block every other owner."""

    owner: str
    range: PortRange


# A survey item: a Taken (an allocation, which does not block its own owner)
# or a bare PortRange (a listener, reserved or anything else: blocks everyone).
Surveyed = Union[Taken, PortRange]


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
                % (registry_label(registry.source, fleet), wanted[key], key[1], key[0], bounds, "%d ports (%s)" % (best.size, best) if best else "none")
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
                "add it by hand and commit it, e.g. %s" % (registry_label(registry.source, fleet), owner, proto, hint)
            )
        raise PortsError(
            "%s: owner %s/%s asks for %d ports but the registry holds %s, and it is frozen and never written; "
            "change the entry by hand and commit it, e.g. %s"
            % (registry_label(registry.source, fleet), owner, proto, ports.size, port_spec(old), hint)
        )
    raise PortsError("%s: internal error: a frozen registry would change" % registry_label(registry.source, fleet))
