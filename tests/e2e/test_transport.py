"""Transport: both routing forms with the official client, the run endpoint seam, and the
MCP-over-HTTP pitfalls real clients exposed (raw httpx requests)."""

import json

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from conftest import client, err

pytestmark = pytest.mark.anyio

EXPECTED_TOOLS = {
    "make_namespace", "list_namespaces", "make_service", "list_services", "delete_service",
    "make_function", "update_function", "delete_function", "list_functions", "describe_function",
    "list_packages", "list_templates", "describe_template",
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("form", ["path", "subdomain"])
async def test_both_routing_forms_list_every_create_tool(edge, admin_key, form):
    async with client(edge, admin_key, "create", "acme", form) as c:
        tools = (await c.list_tools()).tools
    names = {t.name for t in tools}
    assert EXPECTED_TOOLS <= names, EXPECTED_TOOLS - names
    for t in tools:
        assert t.description, t.name
        assert t.input_schema.get("type") == "object", t.name
        assert t.output_schema is None, t.name


async def test_run_endpoint_has_no_workers_yet(edge, admin_key):
    async with client(edge, admin_key, "create", "acme") as c:
        await c.call_tool("make_namespace", {"name": "acme"})  # may exist already
    async with client(edge, admin_key, "run", "acme", "subdomain", "mode=tools&tags=a,b") as c:
        assert (await c.list_tools()).tools == []
        r = await c.call_tool("execute_python", {"code": "result = 1"})
    err(r, "NO_WORKERS")


async def test_unknown_tool_is_invalid_params(edge, admin_key):
    async with client(edge, admin_key) as c:
        with pytest.raises(MCPError) as e:
            await c.call_tool("no_such_tool", {})
    assert e.value.error.code == -32602


def raw(edge, key, body, accept="application/json, text/event-stream", method="POST", extra=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": accept}
    headers.update(extra or {})
    with httpx2.Client(verify=edge.ssl_context()) as c:
        return c.request(method, edge.url("create", "acme"), headers=headers,
                         content=json.dumps(body) if body is not None else None)


LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}


@pytest.mark.parametrize("accept", ["application/json, text/event-stream", "text/event-stream, application/json"])
def test_accept_in_either_order_and_no_protocol_header(edge, admin_key, accept):
    r = raw(edge, admin_key, LIST, accept=accept)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["id"] == 7
    assert "mcp-session-id" not in r.headers  # stateless by default


def test_older_protocol_header_is_accepted(edge, admin_key):
    r = raw(edge, admin_key, LIST, extra={"MCP-Protocol-Version": "2025-03-26"})
    assert r.status_code == 200, r.text


def test_initialize_then_calls_without_session(edge, admin_key):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    r = raw(edge, admin_key, init)
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["capabilities"]["tools"] is not None
    assert res["serverInfo"]["name"] == "paddock-edge"


def test_server_discover_is_answered_or_refused_cleanly(edge, admin_key):
    # The Python SDK probes server/discover first and falls back to initialize only on a
    # JSON-RPC error or a 4xx: never a 5xx, a hang or a reset.
    r = raw(edge, admin_key, {"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {}})
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert "result" in r.json() or "error" in r.json()


def test_get_and_delete_without_session_are_405(edge, admin_key):
    assert raw(edge, admin_key, None, accept="text/event-stream", method="GET").status_code == 405
    assert raw(edge, admin_key, None, method="DELETE").status_code == 405


async def test_python_client_speaks_the_discover_generation(edge, admin_key):
    # mcp 2.x probes server/discover (2026-07-28); the TypeScript SDK smoke covers the
    # initialize generation. Both must work against the same endpoint.
    import mcp
    from mcp.client.streamable_http import streamable_http_client

    seen = []

    async def hook(req):
        seen.append((json.loads(req.content or b"{}").get("method"), req.headers.get("mcp-protocol-version")))

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {admin_key}"}, verify=edge.ssl_context(),
                                  event_hooks={"request": [hook]}) as hc:
        async with mcp.Client(streamable_http_client(edge.url("create", "acme"), http_client=hc)) as c:
            assert (await c.list_tools()).tools
    assert seen[0] == ("server/discover", "2026-07-28"), seen
    assert ("tools/list", "2026-07-28") in seen, seen
