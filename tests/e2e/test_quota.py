"""Limits with the official Python `mcp` client and a real worker: the concurrency limit of
a free tier set to 2 answers 429 CONCURRENCY_LIMITED (usage/limit/tier, Retry-After) while
two executions sleep in real nsjail slots (stateless JSON replies, and SSE replies of MCP
sessions), and admits again once they finish; the
monthly quota of a free tier set to 2 refuses the third execute through the SDK, and
`get_usage` / `GET /v1/usage` show the numbers."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx2
import pytest

from conftest import Edge, Worker, client, ok, sandbox_skip_reason

pytestmark = pytest.mark.anyio

SLEEP_CODE = "import time\ntime.sleep(4)\nresult = 'slept'"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def free_account(edge: Edge) -> tuple[str, str]:
    """Registers a free-tier account over REST; returns (API key, JWT access token)."""
    email = f"q{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery staple"
    status, body = edge.rest("POST", "/v1/auth/register", {"email": email, "password": password, "name": "Q", "accept_tos": True})
    assert status in (200, 201), body
    status, body = edge.rest("POST", "/v1/auth/login", {"email": email, "password": password})
    assert status == 200, body
    jwt = body["access_token"]
    status, body = edge.rest("POST", "/v1/auth/api-keys", {"name": "k"}, token=jwt)
    assert status in (200, 201), body
    return body["key"], jwt


def raw_execute(edge: Edge, key: str, ns: str, code: str) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "execute", "arguments": {"code": code}}}
    with httpx2.Client(verify=edge.ssl_context(), timeout=60) as h:
        return h.post(edge.url("run", ns), json=body, headers={
            "Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18"})


def usage(edge: Edge, key: str) -> dict:
    status, body = edge.rest("GET", "/v1/usage", token=key)
    assert status == 200, body
    return body


def test_monthly_quota_through_the_official_client(tmp_path):
    edge = Edge(tmp_path / "edge", env={"PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS": "2"})
    try:
        key, jwt = free_account(edge)

        async def go():
            async with client(edge, key, "create", "qa") as c:
                ok(await c.call_tool("make_namespace", {"name": "qa"}))
                names = [t.name for t in (await c.list_tools()).tools]
                assert "get_usage" in names
            async with client(edge, key, "run", "qa") as c:
                for _ in range(2):
                    r = await c.call_tool("execute", {"code": "result = 1"})
                    # No worker here: admitted (counted), then NO_WORKERS.
                    assert r.is_error and r.structured_content["code"] == "NO_WORKERS", r
            async with client(edge, key, "create", "qa") as c:
                return ok(await c.call_tool("get_usage", {}))

        u = asyncio.run(go())
        assert (u["executions"], u["limit"], u["remaining"], u["tier"]) == (2, 2, 0, "free")
        assert usage(edge, key) == u == usage(edge, jwt)
        r = raw_execute(edge, key, "qa", "result = 1")
        assert r.status_code == 429, r.text
        b = r.json()
        assert (b["code"], b["usage"], b["limit"], b["tier"]) == ("QUOTA_EXCEEDED", 2, 2, "free")
        assert 1 <= int(r.headers["retry-after"]) <= 31 * 86400
        assert "resets" in b["message"]
    finally:
        edge.stop()


@pytest.fixture(scope="module", params=[False, True], ids=["stateless-json", "sessions-sse"])
def worker_stack(request, tmp_path_factory):
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("qprobe"))
    if reason:
        pytest.skip(reason)
    # With sessions the replies are SSE streams: the slots must be held while they stream.
    edge = Edge(tmp_path_factory.mktemp("edge-quota"), env={
        "PADDOCK_EDGE_MCP_SESSIONS": "true" if request.param else "false",
        "PADDOCK_EDGE_LIMITS_FREE_CONCURRENT_EXECUTIONS": "2",
        "PADDOCK_EDGE_LIMITS_FREE_EXECUTIONS_PER_MINUTE": "100000",
        "PADDOCK_EDGE_LIMITS_FREE_EXECUTION_BURST": "10000",
    })
    worker = Worker(edge, tmp_path_factory.mktemp("worker-quota"))
    yield edge, worker
    worker.stop()
    edge.stop()


async def test_concurrency_limit_while_executions_sleep_in_a_real_worker(worker_stack):
    edge, worker = worker_stack
    key, _ = free_account(edge)
    async with client(edge, key, "create", "qc") as c:
        ok(await c.call_tool("make_namespace", {"name": "qc"}))
    # Wait for the worker (NO_WORKERS until it joined).
    deadline = time.monotonic() + 90
    async with client(edge, key, "run", "qc") as c:
        while True:
            r = await c.call_tool("execute", {"code": "result = 1"})
            if (r.structured_content or {}).get("code") != "NO_WORKERS" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert not r.is_error, (r.structured_content, worker.lines[-20:])

    async def sleeper():
        async with client(edge, key, "run", "qc") as c:
            return await c.call_tool("execute", {"code": SLEEP_CODE})

    tasks = [asyncio.create_task(sleeper()) for _ in range(2)]
    # Synchronise on the edge's own view: both executions admitted and in flight.
    deadline = time.monotonic() + 30
    while usage(edge, key)["concurrency"]["in_flight"] < 2:
        assert time.monotonic() < deadline, "the two executions never were in flight together"
        assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
        await asyncio.sleep(0.02)
    r = await asyncio.to_thread(raw_execute, edge, key, "qc", "result = 3")
    assert r.status_code == 429, r.text
    b = r.json()
    assert (b["code"], b["usage"], b["limit"], b["tier"]) == ("CONCURRENCY_LIMITED", 2, 2, "free")
    assert r.headers["retry-after"] == "1"
    done = await asyncio.gather(*tasks)
    for d in done:
        assert not d.is_error, d.structured_content
        assert d.structured_content["result"] == "slept"
    # The slots are released with the replies: admitted again, and the refused one did not count.
    assert usage(edge, key)["concurrency"]["in_flight"] == 0
    async with client(edge, key, "run", "qc") as c:
        r = await c.call_tool("execute", {"code": "result = 4"})
    assert not r.is_error and r.structured_content["result"] == 4
    u = usage(edge, key)
    assert u["executions"] >= 4 and u["concurrency"]["limit"] == 2
