"""MCP sessions (`mcp_sessions = true`): the official client over a session, and the
session semantics real clients rely on (Mcp-Session-Id, unknown id → 404, DELETE)."""

import json

import httpx2
import pytest

from conftest import Edge, client, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def sess_edge(tmp_path_factory):
    e = Edge(tmp_path_factory.mktemp("edge-sessions"), env={"PADDOCK_EDGE_MCP_SESSIONS": "true"})
    yield e
    e.stop()


async def test_official_client_over_a_session(sess_edge):
    key = sess_edge.admin_key()
    async with client(sess_edge, key, "create", "sess", "subdomain") as c:
        ok(await c.call_tool("make_namespace", {"name": "sess"}))
        assert len((await c.list_tools()).tools) >= 13
        listed = ok(await c.call_tool("list_namespaces", {}))
        assert "sess" in [n["name"] for n in listed["namespaces"]]


def test_session_id_unknown_id_and_delete(sess_edge):
    key = sess_edge.admin_key()
    url = sess_edge.url("create", "acme")
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    with httpx2.Client(verify=sess_edge.ssl_context(), timeout=20) as c:
        r = c.post(url, headers=h, content=json.dumps(init))
        assert r.status_code == 200, r.text
        sid = r.headers.get("mcp-session-id")
        assert sid, r.headers
        r = c.post(url, headers={**h, "Mcp-Session-Id": "no-such-session"},
                   content=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        assert r.status_code == 404, r.text
        r = c.delete(url, headers={**h, "Mcp-Session-Id": sid})
        assert r.status_code in (200, 202, 204), r.text
        r = c.post(url, headers={**h, "Mcp-Session-Id": sid},
                   content=json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
        assert r.status_code == 404, r.text
