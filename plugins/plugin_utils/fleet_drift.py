# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift (issue 11, issue 17): an (owner, proto) whose ports differ between the hosts that hold it.

Without the fleet registry, an owner drifts when its hosts hold it at
different ranges; given the registry's ranges (``expected``), an owner the
registry names drifts where a host holds other ranges than the registry's,
whatever most hosts hold. The ``fleet_drift`` filter (report.yml's
``owners_differ``) returns :func:`owners_that_drift`; the port map marks the
same owners. Nothing here imports Ansible.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.plugin_utils.fleet_surveys import SurveyedHost, read_surveys


class Drift(NamedTuple):
    owner: str
    proto: str
    variants: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (ranges "A-B,C-D", hosts), the registry's or most hosts' first
    expected: Optional[str] = None  # the registry's ranges, when it names the owner

    def hosts(self) -> Dict[str, str]:
        """Host -> the ranges it holds, for every host that holds the owner's ports of the proto."""
        return {host: ranges for ranges, names in self.variants for host in names}


def find_drift(hosts: Sequence[SurveyedHost], expected: Optional[Mapping[Tuple[str, str], str]] = None) -> Tuple[Drift, ...]:
    """(owner, proto) whose ranges differ between the hosts that hold them, or from ``expected``
    (the registry's ranges, "A-B") for the owners it names."""
    expected = expected or {}
    per_key = {}  # type: Dict[Tuple[str, str], Dict[str, List[str]]]
    for host in hosts:
        mine = {}  # type: Dict[Tuple[str, str], List[str]]
        for holding, unused_created in host.holdings:
            mine.setdefault((holding.owner, holding.proto), []).append(str(holding.range))
        for key, ranges in mine.items():
            per_key.setdefault(key, {})[host.name] = [",".join(sorted(set(ranges), key=lambda r: int(r.split("-")[0])))]
    found = []
    for (owner, proto), by_host in sorted(per_key.items()):
        variants = {}  # type: Dict[str, List[str]]
        for host_name, (ranges,) in by_host.items():
            variants.setdefault(ranges, []).append(host_name)
        reference = expected.get((owner, proto))
        if reference is None and len(variants) > 1 or reference is not None and set(variants) != {reference}:
            ordered = sorted(variants.items(), key=lambda item: (item[0] != reference, -len(item[1]), item[0]))
            found.append(Drift(owner, proto, tuple((ranges, tuple(sorted(names))) for ranges, names in ordered), reference))
    return tuple(found)


def owners_that_drift(surveys: Mapping[str, Any], expected: Optional[Mapping[Tuple[str, str], str]] = None) -> List[Dict[str, Any]]:
    """report.yml's ``owners_differ``: per drifting (owner, proto), every holding host's ranges
    and the registry's (None when it does not name the owner)."""
    hosts, unused_unread = read_surveys(surveys)
    return [{"owner": d.owner, "proto": d.proto, "registry": d.expected, "hosts": d.hosts()} for d in find_drift(hosts, expected)]
