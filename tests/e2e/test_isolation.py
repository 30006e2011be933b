"""Tenant isolation: two accounts registered over REST never see or change each other's
namespaces through any create tool, and a namespace-bound key reaches only its namespace.
Also the 401/403 answers at the HTTP layer."""

import uuid

import httpx2
import pytest

from conftest import client, err, ok

pytestmark = pytest.mark.anyio

NS_TOOLS = [
    ("make_service", {"name": "svc"}),
    ("list_services", {}),
    ("delete_service", {"name": "svc"}),
    ("make_function", {"service": "svc", "name": "f", "backend": "code_sandbox", "code": "result = 1"}),
    ("update_function", {"service": "svc", "name": "f", "code": "result = 2"}),
    ("delete_function", {"service": "svc", "name": "f"}),
    ("list_functions", {"service": "svc"}),
    ("describe_function", {"service": "svc", "name": "f"}),
]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def account(edge, scopes=("read", "write", "execute"), namespace=None) -> str:
    """Registers an account and returns an API key with `scopes` (optionally bound)."""
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery staple"
    status, body = edge.rest("POST", "/v1/auth/register", {"email": email, "password": password, "name": "U", "accept_tos": True})
    assert status in (200, 201), body
    status, body = edge.rest("POST", "/v1/auth/login", {"email": email, "password": password})
    assert status == 200, body
    jwt = body["access_token"]
    req = {"name": "k", "scopes": list(scopes)}
    if namespace:
        req["namespace"] = namespace
    status, body = edge.rest("POST", "/v1/auth/api-keys", req, token=jwt)
    assert status in (200, 201), body
    return body["key"]


def rpc(edge, key, endpoint, ns, tool, args):
    """A raw stateless JSON-RPC request (tools/list, or tools/call of `tool`)."""
    if args is None:
        body = {"jsonrpc": "2.0", "id": 1, "method": tool}
    else:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}}
    with httpx2.Client(verify=edge.ssl_context()) as h:
        return h.post(edge.url(endpoint, ns, "subdomain"), json=body,
                      headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"})


@pytest.fixture(scope="module")
def two_accounts(edge):
    return account(edge), account(edge)


async def test_accounts_never_reach_each_others_namespaces(edge, two_accounts):
    alice, bob = two_accounts
    ns = f"alice-{uuid.uuid4().hex[:6]}"
    async with client(edge, alice, "create", ns) as c:
        ok(await c.call_tool("make_namespace", {"name": ns}))
        ok(await c.call_tool("make_service", {"name": "svc"}))
        ok(await c.call_tool("make_function", {"service": "svc", "name": "f", "backend": "code_sandbox", "code": "result = 1"}))
    # Bob's own create endpoint does not list Alice's namespace, nor can he take its name.
    async with client(edge, bob, "create", f"bob-{uuid.uuid4().hex[:6]}", "subdomain") as c:
        listed = ok(await c.call_tool("list_namespaces", {}))
        assert ns not in [n["name"] for n in listed["namespaces"]]
        err(await c.call_tool("make_namespace", {"name": ns}), "ALREADY_EXISTS")
    # Alice's endpoints refuse Bob before any tool runs: 403 NAMESPACE_DENIED, every tool.
    for tool, args in [("tools/list", None)] + NS_TOOLS:
        for endpoint in ("create", "run"):
            r = rpc(edge, bob, endpoint, ns, tool, args)
            assert r.status_code == 403, (tool, endpoint, r.text)
            assert r.json()["code"] == "NAMESPACE_DENIED", r.text
    # Alice's data is untouched.
    async with client(edge, alice, "create", ns) as c:
        d = ok(await c.call_tool("describe_function", {"service": "svc", "name": "f"}))
        assert d["current_version"] == 1


async def test_namespace_bound_key_reaches_only_its_namespace(edge):
    owner = account(edge)
    home, other = f"home-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    for ns in (home, other):
        async with client(edge, owner, "create", ns) as c:
            ok(await c.call_tool("make_namespace", {"name": ns}))
    # A second key of the same account, bound to `home`, over the token exchange.
    with httpx2.Client(verify=edge.ssl_context()) as h:
        r = h.post(f"https://localhost:{edge.port}/v1/auth/token", headers={"x-api-key": owner})
    status, body = r.status_code, r.json()
    assert status == 200, body
    status, body = edge.rest("POST", "/v1/auth/api-keys", {"name": "bound", "scopes": ["read", "write"], "namespace": home}, token=body["access_token"])
    assert status in (200, 201), body
    bound = body["key"]
    async with client(edge, bound, "create", home) as c:
        ok(await c.call_tool("make_service", {"name": "svc"}))
    r = rpc(edge, bound, "create", other, "tools/list", None)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "NAMESPACE_DENIED"
    assert home in r.json()["message"] or other in r.json()["message"]


async def test_read_only_key_gets_scope_denied(edge):
    ro = account(edge, scopes=("read",))
    async with client(edge, ro, "create", f"ro-{uuid.uuid4().hex[:6]}") as c:
        ok(await c.call_tool("list_namespaces", {}))
        sc = err(await c.call_tool("make_namespace", {"name": f"ro-{uuid.uuid4().hex[:6]}"}), "SCOPE_DENIED")
    assert "write" in sc["message"]


def test_http_401_and_403(edge):
    with httpx2.Client(verify=edge.ssl_context()) as h:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = h.post(edge.url("create", "acme"), json=body)
        assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILED"
        r = h.post(edge.url("create", "acme"), json=body, headers={"x-api-key": "pk_wrong"})
        assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILED"
    ro = account(edge, scopes=("read",))
    with httpx2.Client(verify=edge.ssl_context()) as h:
        r = h.post(edge.url("run", "acme"), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"x-api-key": ro, "Accept": "application/json, text/event-stream"})
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "SCOPE_DENIED"
    assert "execute" in r.json()["message"]
