# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process with given arguments and return its JSON result."""

from __future__ import annotations

import json
import socket

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib

    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args=None):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


@pytest.fixture
def run_module(capsys, monkeypatch):
    """``run_module(module, args, check_mode=False, diff=False) -> result``.

    The exit code is checked against ``failed``: 1 for fail_json, 0 for exit_json.
    """
    monkeypatch.delenv("MODULE_ID", raising=False)

    def run(module, args, check_mode=False, diff=False):
        args = dict(args)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        capsys.readouterr()
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exited:
                module.main()
        result = json.loads(capsys.readouterr().out)
        assert (exited.value.code or 0) == (1 if result.get("failed") else 0)
        return result

    return run


@pytest.fixture
def listener():
    """``listener(proto, port)``: bind a real socket on 127.0.0.1, or skip when the port is busy."""
    opened = []

    def bind(proto, port):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            pytest.skip("cannot bind %s/%d for the test: %s" % (proto, port, exc))
        if proto == "tcp":
            sock.listen(1)
        opened.append(sock)
        return sock

    yield bind
    for sock in opened:
        sock.close()


@pytest.fixture
def db(tmp_path):
    """A database path in the test's own directory; nothing is created
    (test_port_allocate overrides it with one whose directory is missing)."""
    return str(tmp_path / "ports.db")
