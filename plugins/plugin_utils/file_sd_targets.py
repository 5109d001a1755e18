# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus file-based service discovery files from endpoint groups (issue 19).

Controller-only, no Ansible import: the filter ``berth.ports.file_sd_targets``
wraps it and the role ``ports_prometheus_targets`` writes what it returns.

One file per selected owner, ``<prefix><owner>.json``, holding one target
group per endpoint (Prometheus attaches labels per group, and each target
carries its own ``berth_host``)::

    [
      {
        "labels": {"berth_host": "app1", "berth_owner": "node-exporter", "berth_proto": "tcp"},
        "targets": ["10.0.0.11:25031"]
      }
    ]

Only tcp groups are written: Prometheus scrapes over HTTP. The text is JSON
with sorted keys, groups in the endpoints' order (host, then port) and a
final newline, so the same fleet always gives the same bytes and the role's
copy leaves an unchanged file alone (Prometheus then re-reads nothing).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.rendered_values import as_port

DEFAULT_PREFIX = "berth-"
BERTH_LABELS = ("berth_owner", "berth_proto", "berth_host")
# Prometheus' label name rule; names starting with __ are reserved for its own use.
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
PREFIX_RE = re.compile(r"[A-Za-z0-9._-]*")


def target(address: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets as Prometheus expects."""
    if ":" in address and not address.startswith("["):
        return "[%s]:%d" % (address, port)
    return "%s:%d" % (address, port)


def check_labels(labels: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Extra labels for every group: valid Prometheus names, string values, none of berth's own."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise PortsError("labels must be a dict of label name to value, got %r" % (labels,))
    checked = {}  # type: Dict[str, str]
    for name, value in labels.items():
        if not isinstance(name, str) or not LABEL_NAME_RE.fullmatch(name) or name.startswith("__"):
            raise PortsError("label name %r is not a Prometheus label name (letters, digits, _; not starting with __)" % (name,))
        if name in BERTH_LABELS:
            raise PortsError("label %s is set by berth.ports itself" % name)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise PortsError("label %s: value %r is not a string" % (name, value))
        checked[name] = str(value)
    return checked


def owner_selector(owners: Optional[Sequence[str]], pattern: Optional[str]):
    """A predicate on owner names: listed in ``owners``, or matching the regular expression ``pattern`` whole.

    At least one of the two must be given: writing every owner's ports as
    scrape targets (a database's, a load balancer's) is never what is meant.
    """
    if owners is None:
        owners = []
    if isinstance(owners, (str, bytes)) or not isinstance(owners, Iterable):
        raise PortsError("owners must be a list of owner names, got %r" % (owners,))
    listed = set()
    for owner in owners:
        if not isinstance(owner, str) or not owner:
            raise PortsError("owners: %r is not an owner name" % (owner,))
        listed.add(owner)
    compiled = None
    if pattern:
        if not isinstance(pattern, str):
            raise PortsError("pattern must be a regular expression string, got %r" % (pattern,))
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise PortsError("pattern %r is not a regular expression: %s" % (pattern, exc)) from exc
    if not listed and compiled is None:
        raise PortsError("name the owners to scrape: give owners (a list) or pattern (a regular expression)")
    return lambda owner: owner in listed or (compiled is not None and compiled.fullmatch(owner) is not None)


def _groups_of(group: Mapping[str, Any], labels: Mapping[str, str]) -> List[Dict[str, Any]]:
    owner, proto = group.get("owner"), group.get("proto")
    endpoints = group.get("endpoints")
    if not isinstance(endpoints, list):
        raise PortsError("endpoint group %s/%s has no list of endpoints" % (owner, proto))
    out = []  # type: List[Dict[str, Any]]
    for endpoint in endpoints:
        if not isinstance(endpoint, Mapping):
            raise PortsError("endpoint group %s/%s: endpoint %r is not a dict" % (owner, proto, endpoint))
        host, address = endpoint.get("host"), endpoint.get("address")
        if not isinstance(host, str) or not host or not isinstance(address, str) or not address:
            raise PortsError("endpoint group %s/%s: endpoint %r needs a host and an address" % (owner, proto, dict(endpoint)))
        port = as_port(endpoint.get("port"), "endpoint group %s/%s: host %s: port" % (owner, proto, host))
        merged = dict(labels)
        merged.update({"berth_owner": owner, "berth_proto": proto, "berth_host": host})
        out.append({"targets": [target(address, port)], "labels": merged})
    return out


def file_sd_text(groups: List[Dict[str, Any]]) -> str:
    """The file's bytes as text: stable for the same groups."""
    return json.dumps(groups, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def file_sd_targets(
    endpoint_groups: Iterable[Mapping[str, Any]],
    owners: Optional[Sequence[str]] = None,
    pattern: Optional[str] = None,
    labels: Optional[Mapping[str, Any]] = None,
    prefix: str = DEFAULT_PREFIX,
) -> List[Dict[str, str]]:
    """The files to write, ``[{owner, file, content}]`` sorted by file name, for the selected owners' tcp groups.

    ``endpoint_groups`` is what ``berth.ports.endpoints`` returns. An owner
    selected but absent from the groups gets no file (so the role removes
    its old one); an owner with several groups of one proto cannot happen
    (endpoints gives one per owner and proto) and is refused.
    """
    if not isinstance(prefix, str) or not prefix or not PREFIX_RE.fullmatch(prefix):
        raise PortsError("prefix %r must be a non-empty file name start of letters, digits and ._-" % (prefix,))
    selected = owner_selector(owners, pattern)
    extra = check_labels(labels)
    if isinstance(endpoint_groups, (str, bytes, Mapping)) or not isinstance(endpoint_groups, Iterable):
        raise PortsError("the input must be the list berth.ports.endpoints returns, got %r" % (endpoint_groups,))
    files = {}  # type: Dict[str, Dict[str, str]]
    for group in endpoint_groups:
        if not isinstance(group, Mapping):
            raise PortsError("endpoint group %r is not a dict" % (group,))
        owner = group.get("owner")
        if not isinstance(owner, str) or not owner or "/" in owner or owner in (".", ".."):
            raise PortsError("endpoint group %r has no usable owner" % (dict(group),))
        if group.get("proto") != "tcp" or not selected(owner):
            continue
        name = "%s%s.json" % (prefix, owner)
        if name in files:
            raise PortsError("owner %s has two tcp endpoint groups; pass the list berth.ports.endpoints returns" % owner)
        files[name] = {"owner": owner, "file": name, "content": file_sd_text(_groups_of(group, extra))}
    return [files[name] for name in sorted(files)]
