"""berth-ports as root, directly on a database: same values as port_allocate, exit codes, JSON."""

from __future__ import annotations

import io
import json

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent.cli import main
from ansible_collections.berth.ports.plugins.module_utils.allocation_store import AllocationStore
from ansible_collections.berth.ports.plugins.module_utils.allocator import allocate
from ansible_collections.berth.ports.plugins.module_utils.request import build_allocation_request, build_settings


@pytest.fixture
def cli(tmp_path):
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"db_path": str(tmp_path / "ports.db"), "skip_listening": False}))

    def run(*argv, env=None):
        out, err = io.StringIO(), io.StringIO()
        if env is not None:
            import os
            old = dict(os.environ)
            os.environ.update(env)
        try:
            code = main(list(argv) + ["--direct", "--config", str(config)], out=out, err=err)
        finally:
            if env is not None:
                os.environ.clear()
                os.environ.update(old)
        return code, out.getvalue(), err.getvalue()

    return run


def test_allocate_prints_what_port_allocate_reports(cli, tmp_path):
    code, out, _err = cli("allocate", "4", "tcp", "--owner", "web")
    assert code == 0
    settings = build_settings(skip_listening=False)
    twin = allocate(AllocationStore(str(tmp_path / "twin.db")), build_allocation_request("web", "tcp", 4, settings=settings), settings)
    assert out.splitlines() == ["%s=%s" % kv for kv in twin.after.env.items()]
    assert out.splitlines()[0] == "TCP_PORT=25031"


def test_json_module_id_keep_existing_deallocate_list(cli):
    code, out, _err = cli("allocate", "2", "udp", "--json", env={"MODULE_ID": "dns"})
    assert code == 0 and json.loads(out)["owner"] == "dns" and json.loads(out)["ports"] == [25031, 25032]
    code, out, _err = cli("allocate", "1", "udp", "--owner", "dns", "--keep-existing", "--json")
    assert json.loads(out)["ranges"] == ["25031-25032", "25033-25033"]
    code, out, _err = cli("list", "--owner", "dns")
    assert out.splitlines()[:2] == ["dns udp 25031-25032 dynamic", "dns udp 25033-25033 dynamic"]
    code, out, _err = cli("deallocate", "udp", "--owner", "dns")
    assert code == 0 and out.splitlines() == ["25031-25032/udp", "25033-25033/udp"]
    code, out, _err = cli("deallocate", "udp", "--owner", "dns", "--json")
    assert json.loads(out) == {"changed": False, "owner": "dns", "deallocated": []}


def test_exit_codes(cli, tmp_path):
    assert cli("allocate", "5000", "--owner", "x")[0] == 1
    assert cli("allocate", "1", "--owner=-x")[0] == 1
    code, _out, err = cli("allocate", "1")
    assert code == 2 and "name the owner" in err  # root is admin: must say whose ports
    with pytest.raises(SystemExit) as caught:
        main(["allocate", "many"], out=io.StringIO(), err=io.StringIO())
    assert caught.value.code == 2
    code, out, _err = main(["whoami", "--agent", "--socket", str(tmp_path / "none.sock"), "--json"],
                           out=io.StringIO(), err=io.StringIO()), None, None
    assert code == 4


def test_check_grants(tmp_path):
    good = tmp_path / "g.json"
    good.write_text(json.dumps({"version": 1, "grants": [{"user": "svc1", "label": "node:fwadm,portsadm"}]}))
    out = io.StringIO()
    assert main(["check-grants", str(good)], out=out, err=io.StringIO()) == 0
    assert out.getvalue() == "user svc1: node:fwadm,portsadm for owner svc1\n"
    good.write_text(json.dumps({"version": 1, "grants": [{"user": "svc1", "label": "node:portsadm,fwadm"}]}))
    err = io.StringIO()
    assert main(["check-grants", str(good)], out=io.StringIO(), err=err) == 2
    assert "node:portsadm,fwadm" in err.getvalue()
