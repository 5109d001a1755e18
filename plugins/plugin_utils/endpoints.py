# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endpoints (issue 19): where each owner's ports are, on which host, at which address.

Controller-only, no Ansible import: the filter ``berth.ports.endpoints``
wraps it, pytest tests it directly.

What the fleet holds comes from one of two places:

- each host's results, as hostvars carry them: the role's
  ``service_ports_results`` (a list, one item per service, with ``owner``
  and ``ports: {tcp: [...], udp: [...]}``) or a registered
  ``berth.ports.port_info`` result (a dict with ``allocations``, rows of
  ``owner``, ``proto``, ``first``, ``last``);
- the fleet registry (issue 17) and a list of hosts: every host of the list
  is taken to hold every owner of the fleet at the registry's ports, which
  is what the registry promises, so a play on the load balancer alone lists
  every backend without gathering anything from them.

Each allocation becomes one endpoint ``{host, address, port, ports}`` in the
group of its ``(owner, proto)``. Groups are sorted by owner then proto,
endpoints by host then port: the same fleet always gives the same list,
whatever the order of hostvars, so a template rendered from it changes only
when a port does.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.errors import PortsError
from ansible_collections.berth.ports.plugins.plugin_utils.rendered_values import as_port, survey_allocation
from ansible_collections.berth.ports.plugins.module_utils.request import validate_proto
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_registry_file import DEFAULT_FLEET, load_registry, validate_fleet

DEFAULT_RESULTS_VAR = "service_ports_results"
DEFAULT_ADDRESS_VAR = "ansible_host"


class Endpoint(NamedTuple):
    """One allocation of an owner and proto on one host: its first port and every port of the range."""

    host: str
    address: str
    port: int
    ports: Tuple[int, ...]


class Held(NamedTuple):
    """One allocation as read from a host's result, before it is grouped."""

    owner: str
    proto: str
    first: int
    last: int


def address_of(host: str, host_vars: Mapping[str, Any], address_var: str) -> str:
    """``host_vars[address_var]`` when it is a non-empty string, otherwise the inventory name.

    Not a number or a list: an address that Jinja rendered into something
    else is a mistake that would otherwise end up in haproxy.cfg.
    """
    value = host_vars.get(address_var) if address_var else None
    if value is None or value == "":
        return host
    if not isinstance(value, str):
        raise PortsError("host %s: %s %r is not a string" % (host, address_var, value))
    return value.strip() or host


def _service_results(host: str, results: Sequence[Any], results_var: str) -> List[Held]:
    """The allocations in the role's service_ports_results: one per service and proto with ports."""
    held = []  # type: List[Held]
    for index, service in enumerate(results):
        where = "host %s: %s[%d]" % (host, results_var, index)
        if not isinstance(service, Mapping):
            raise PortsError("%s is not a dict: %r" % (where, service))
        owner = service.get("owner")
        if not isinstance(owner, str) or not owner:
            raise PortsError("%s has no owner" % where)
        ports_by_proto = service.get("ports") or {}
        if not isinstance(ports_by_proto, Mapping):
            raise PortsError("%s: ports of owner %s is not a dict of proto to ports: %r" % (where, owner, ports_by_proto))
        for raw_proto in sorted(ports_by_proto, key=str):
            try:
                proto = validate_proto(raw_proto)
            except PortsError as exc:
                raise PortsError("%s: owner %s: %s" % (where, owner, exc)) from exc
            ports = ports_by_proto[raw_proto] or []
            if isinstance(ports, (str, bytes)) or not isinstance(ports, Iterable):
                raise PortsError("%s: %s ports of owner %s are not a list: %r" % (where, proto, owner, ports))
            numbers = [as_port(port, "%s: %s port of owner %s" % (where, proto, owner)) for port in ports]
            if not numbers:
                continue  # a demand of 0, or state absent: nothing held
            first, last = numbers[0], numbers[-1]
            if numbers != list(range(first, last + 1)):
                raise PortsError("%s: %s ports of owner %s are not one contiguous range: %r" % (where, proto, owner, numbers))
            held.append(Held(owner, proto, first, last))
    return held


def _survey_results(host: str, result: Mapping[str, Any], results_var: str) -> List[Held]:
    """The allocations of a registered berth.ports.port_info result."""
    where = "host %s: %s" % (host, results_var)
    if result.get("failed"):
        raise PortsError("%s is a failed result: %s" % (where, result.get("msg", "no message")))
    rows = result.get("allocations")
    if not isinstance(rows, list):
        raise PortsError("%s has no list of allocations; register the result of berth.ports.port_info" % where)
    held = []  # type: List[Held]
    for raw in rows:
        row = survey_allocation(raw, where)
        held.append(Held(row.owner, row.proto, row.first, row.last))
    return held


def held_by_host(host: str, result: Any, results_var: str) -> List[Held]:
    """A host's allocations from its service_ports_results (a list) or port_info result (a dict)."""
    if isinstance(result, Mapping):
        return _survey_results(host, result, results_var)
    if isinstance(result, (list, tuple)):
        return _service_results(host, result, results_var)
    raise PortsError(
        "host %s: %s %r is neither service_ports_results (a list) nor a port_info result (a dict)" % (host, results_var, result)
    )


def group_endpoints(found: Iterable[Tuple[str, str, Held]]) -> List[Dict[str, Any]]:
    """Groups ``{owner, proto, endpoints}`` from ``(host, address, allocation)``, sorted; see the module docstring."""
    groups = {}  # type: Dict[Tuple[str, str], List[Endpoint]]
    for host, address, held in found:
        ports = tuple(range(held.first, held.last + 1))
        groups.setdefault((held.owner, held.proto), []).append(Endpoint(host, address, held.first, ports))
    return [
        {
            "owner": owner,
            "proto": proto,
            "endpoints": [
                {"host": e.host, "address": e.address, "port": e.port, "ports": list(e.ports)}
                for e in sorted(groups[(owner, proto)], key=lambda e: (e.host, e.port, e.ports, e.address))
            ],
        }
        for owner, proto in sorted(groups)
    ]


def _host_names(hosts: Any, what: str) -> List[str]:
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
        raise PortsError("%s must be a list of host names, got %r" % (what, hosts))
    names = []  # type: List[str]
    for host in hosts:
        if not isinstance(host, str) or not host:
            raise PortsError("%s: %r is not a host name" % (what, host))
        if host not in names:
            names.append(host)
    return names


def _vars_of(hostvars: Mapping[str, Any], host: str) -> Mapping[str, Any]:
    try:
        host_vars = hostvars[host]
    except KeyError:
        raise PortsError("host %s is not in the input (pass hostvars, or a dict with every host of hosts)" % host) from None
    if not isinstance(host_vars, Mapping):
        raise PortsError("host %s: its variables are not a dict: %r" % (host, host_vars))
    return host_vars


def endpoints_from_results(
    hostvars: Mapping[str, Any],
    hosts: Optional[Iterable[str]] = None,
    results_var: str = DEFAULT_RESULTS_VAR,
    address_var: str = DEFAULT_ADDRESS_VAR,
) -> List[Dict[str, Any]]:
    """Endpoint groups from each host's ``results_var`` in ``hostvars`` (host -> that host's variables).

    With ``hosts`` every host named must be in ``hostvars`` and have the
    variable: a backend silently missing from a load balancer is worse than
    a failed run. Without it, the hosts of ``hostvars`` that have the
    variable are read and the others left out.
    """
    if not isinstance(hostvars, Mapping):
        raise PortsError("the input must be hostvars, a dict of host to its variables, got %r" % (hostvars,))
    if not isinstance(results_var, str) or not results_var:
        raise PortsError("results must name a variable, got %r" % (results_var,))
    found = []  # type: List[Tuple[str, str, Held]]
    names = sorted(_host_names(hostvars, "the input's hosts")) if hosts is None else _host_names(hosts, "hosts")
    for host in names:
        host_vars = _vars_of(hostvars, host)
        if results_var not in host_vars:
            if hosts is None:
                continue
            raise PortsError(
                "host %s has no %s; run berth.ports.service_ports (or register berth.ports.port_info) there in this play, "
                "or use the fleet registry" % (host, results_var)
            )
        address = address_of(host, host_vars, address_var)
        found.extend((host, address, held) for held in held_by_host(host, host_vars[results_var], results_var))
    return group_endpoints(found)


def endpoints_from_registry(
    path: str,
    hosts: Iterable[str],
    hostvars: Optional[Mapping[str, Any]] = None,
    fleet: str = DEFAULT_FLEET,
    address_var: str = DEFAULT_ADDRESS_VAR,
) -> List[Dict[str, Any]]:
    """Endpoint groups from the fleet registry at ``path``: every owner of ``fleet`` on every host of ``hosts``.

    Addresses come from ``hostvars`` where given (a host missing from it is an
    error), otherwise they are the host names. A missing registry file is an
    empty registry (no groups), as everywhere else.
    """
    if not isinstance(path, str) or not path:
        raise PortsError("registry must be the path of the fleet registry, got %r" % (path,))
    fleet = validate_fleet(fleet)
    names = _host_names(hosts, "hosts")
    entries = load_registry(path).fleet(fleet)
    addresses = {
        host: address_of(host, _vars_of(hostvars, host), address_var) if hostvars is not None else host for host in names
    }
    found = [
        (host, addresses[host], Held(owner, proto, ports.first, ports.last))
        for (owner, proto), ports in entries.items()
        for host in names
    ]
    return group_endpoints(found)
