"""Grants: NethServer's labels, admin, the file's safety checks and the authorization rule."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent.grants import (
    LABELS,
    ROLE_ADMIN,
    ROLE_PORTSADM,
    GrantsError,
    GrantsTable,
    Identity,
    authorize,
    grants_document,
    parse_grant,
    read_grants_file,
)
from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import AgentError


@pytest.mark.parametrize("label", LABELS)
def test_the_three_nethserver_labels_give_portsadm(label):
    grant = parse_grant({"user": "svc1", "label": label})
    assert grant.role == ROLE_PORTSADM and grant.owner == "svc1" and grant.label == label


@pytest.mark.parametrize("label", ["node:portsadm,fwadm", "node:fwadm", "portsadm", "node:portsadm ", "node:tunadm,fwadm,portsadm",
                                   "cluster:portsadm", "", 7, None])
def test_any_other_label_is_refused(label):
    entry = {"user": "svc1", "label": label} if label is not None else {"user": "svc1"}
    with pytest.raises(GrantsError, match="label|exactly one"):
        parse_grant(entry)


@pytest.mark.parametrize("entry, message", [
    ({"uid": 1001, "label": "node:portsadm"}, "needs owner"),
    ({"user": "a", "uid": 1, "label": "node:portsadm"}, "exactly one of user or uid"),
    ({"label": "node:portsadm", "owner": "x"}, "exactly one of user or uid"),
    ({"user": "a", "role": "admin", "label": "node:portsadm"}, "exactly one of label"),
    ({"user": "a", "role": "admin", "owner": "x"}, "takes no owner"),
    ({"user": "a", "role": "root"}, "not admin"),
    ({"user": "a", "label": "node:portsadm", "owner": "-bad"}, "owner"),
    ({"user": "a", "label": "node:portsadm", "extra": 1}, "unknown keys"),
    ({"uid": True, "role": "admin"}, "not a uid"),
    ({"uid": -1, "role": "admin"}, "not a uid"),
    ({"user": "a:b", "role": "admin"}, "not a user name"),
    ({"user": "a", "label": "node:portsadm", "max_tcp_ports": -1}, "max_tcp_ports -1 is not a number of ports"),
    ({"user": "a", "label": "node:portsadm", "max_udp_ports": True}, "max_udp_ports True is not a number of ports"),
    ({"user": "a", "label": "node:portsadm", "max_tcp_ports": "4"}, "max_tcp_ports '4' is not a number of ports"),
    ({"user": "a", "label": "node:portsadm", "max_tcp_ports": 65536}, "max_tcp_ports 65536"),
    ({"user": "a", "label": "node:portsadm", "max_sctp_ports": 1}, "unknown keys: max_sctp_ports"),
])
def test_malformed_grants(entry, message):
    with pytest.raises(GrantsError, match=message):
        parse_grant(entry)


def test_port_demand_caps_each_proto_on_its_own():
    grant = parse_grant({"user": "svc1", "label": "node:portsadm", "max_tcp_ports": 4})
    assert (grant.max_ports("tcp"), grant.max_ports("udp")) == (4, None)
    assert grant.describe() == "user svc1: node:portsadm for owner svc1 (max_tcp_ports 4)"
    zero = parse_grant({"uid": 7, "label": "node:portsadm", "owner": "m", "max_tcp_ports": 0, "max_udp_ports": 2})
    assert (zero.max_ports("tcp"), zero.max_ports("udp")) == (0, 2)
    # Uncapped unless it says so, admin included; an admin's cap applies to any owner it names.
    assert parse_grant({"user": "ns", "role": "admin"}).max_ports("tcp") is None
    capped_admin = parse_grant({"user": "ns", "role": "admin", "max_udp_ports": 3})
    assert capped_admin.max_ports("udp") == 3 and capped_admin.describe() == "user ns: admin (max_udp_ports 3)"


def test_a_label_grant_without_a_cap_gets_the_default_and_narrow_rights_unless_it_says_so():
    plain = parse_grant({"user": "svc1", "label": "node:portsadm", "max_tcp_ports": 4})
    assert (plain.max_ports("tcp", 16), plain.max_ports("udp", 16), plain.max_ports("udp")) == (4, 16, None)
    assert parse_grant({"user": "ns", "role": "admin"}).max_ports("tcp", 16) is None
    assert (plain.allow_reserved, plain.allow_shared_listeners) == (False, False)
    trusted = parse_grant({"user": "t", "label": "node:portsadm", "allow_reserved": True, "allow_shared_listeners": True})
    assert trusted.allow_reserved and trusted.allow_shared_listeners
    assert trusted.describe() == "user t: node:portsadm for owner t (allow_reserved, allow_shared_listeners)"
    with pytest.raises(GrantsError, match="allow_reserved 'yes' is not true or false"):
        parse_grant({"user": "t", "label": "node:portsadm", "allow_reserved": "yes"})
    with pytest.raises(GrantsError, match="role admin may do that anyway"):
        parse_grant({"user": "ns", "role": "admin", "allow_reserved": True})


def test_admin_and_duplicates():
    assert parse_grant({"uid": 0, "role": "admin"}).role == ROLE_ADMIN
    with pytest.raises(GrantsError, match="one grant per user"):
        grants_document([{"user": "a", "role": "admin"}, {"user": "a", "label": "node:portsadm"}])
    text = grants_document([{"user": "a", "label": "node:portsadm"}])
    assert json.loads(text)["version"] == 1


def write(path, data, mode=0o600):
    path.write_text(json.dumps(data))
    os.chmod(str(path), mode)
    return str(path)


def test_file_checks(tmp_path):
    assert read_grants_file(str(tmp_path / "missing.json")) == ()
    good = {"version": 1, "grants": [{"uid": 5000, "label": "node:portsadm", "owner": "w"}]}
    assert read_grants_file(write(tmp_path / "g.json", good))[0].owner == "w"
    with pytest.raises(GrantsError, match="writable by group or others"):
        read_grants_file(write(tmp_path / "g.json", good, 0o620))
    with pytest.raises(GrantsError, match="not JSON"):
        (tmp_path / "bad.json").write_text("{")
        read_grants_file(str(tmp_path / "bad.json"))
    with pytest.raises(GrantsError, match="version"):
        read_grants_file(write(tmp_path / "g.json", {"grants": []}))
    os.symlink(str(tmp_path / "g.json"), str(tmp_path / "link.json"))
    with pytest.raises(GrantsError, match="cannot open"):
        read_grants_file(str(tmp_path / "link.json"))
    if os.geteuid() == 0:
        os.chown(write(tmp_path / "g.json", good), 5000, 5000)
        with pytest.raises(GrantsError, match="not root"):
            read_grants_file(str(tmp_path / "g.json"))
        assert read_grants_file(str(tmp_path / "g.json"), require_root_owned=False)


def test_table_identifies_by_uid_and_user_name(tmp_path):
    path = write(tmp_path / "g.json", {"version": 1, "grants": [
        {"uid": 5000, "label": "node:portsadm", "owner": "w"}, {"user": "root", "role": "admin"}]})
    table = GrantsTable(path, require_root_owned=False)
    assert table.identify(5000, 5000, 1).grant.owner == "w"
    assert table.identify(5001, 5001, 1).grant is None
    assert table.identify(0, 0, 1).grant.role == ROLE_ADMIN  # root always


def test_authorize():
    portsadm = Identity(5000, 5000, 1, None, parse_grant({"uid": 5000, "label": "node:portsadm", "owner": "w"}))
    admin = Identity(5001, 5001, 1, "agent", parse_grant({"user": "agent", "role": "admin"}))
    nobody = Identity(5002, 5002, 1, None, None)
    assert authorize(portsadm, None, "allocate") == "w"
    assert authorize(portsadm, "w", "allocate") == "w"
    assert authorize(admin, "anyone", "allocate") == "anyone"
    for who, owner, code in ((portsadm, "other", "forbidden"), (nobody, None, "forbidden"), (nobody, "w", "forbidden"),
                             (admin, None, "bad_request")):
        with pytest.raises(AgentError) as caught:
            authorize(who, owner, "allocate")
        assert caught.value.code == code
