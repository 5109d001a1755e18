"""The wire format: what is accepted, what is refused, and how."""

from __future__ import annotations

import pytest

from ansible_collections.berth.ports.plugins.module_utils.agent.protocol import (
    AgentError,
    decode_request,
    decode_response,
    encode_request,
    error_response,
    ok_response,
)


def test_round_trip():
    request = {"op": "allocate", "owner": None, "proto": "udp", "count": 4, "keep_existing": True}
    assert decode_request(encode_request(request)[:-1]) == request
    assert decode_response(ok_response({"ports": [1]})) == {"ports": [1]}
    with pytest.raises(AgentError) as caught:
        decode_response(error_response("forbidden", "no\nway"))
    assert caught.value.code == "forbidden" and str(caught.value) == "no way"


@pytest.mark.parametrize("line", [
    b"\xff", b"", b"null", b"[]", b'"op"', b'{"op": "drop"}', b'{"count": 1}', b'{"op": "whoami", "owner": "x"}',
    b'{"op": "allocate", "count": "4"}', b'{"op": "allocate", "count": 1.5}', b'{"op": "allocate", "keep_existing": 1}',
    b'{"op": "allocate", "count": Infinity}', b"[" * 100000, b'{"op": "list", "proto": ["tcp"]}',
    b'{"op": "allocate", "count": ' + b"1" * 10000 + b"}",
])
def test_bad_requests(line):
    with pytest.raises(AgentError) as caught:
        decode_request(line)
    assert caught.value.code == "bad_request"


def test_encode_refuses_oversized():
    with pytest.raises(AgentError) as caught:
        encode_request({"op": "list", "owner": "x" * 70000})
    assert caught.value.code == "too_large"


@pytest.mark.parametrize("line", [b"junk", b"{}", b'{"ok": true}', b'{"ok": "yes"}'])
def test_bad_responses(line):
    with pytest.raises(AgentError) as caught:
        decode_response(line)
    assert caught.value.code == "internal"
