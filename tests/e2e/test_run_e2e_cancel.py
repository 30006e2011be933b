"""MCP cancellation on the stateless run endpoint with a real worker: a
`notifications/cancelled` {requestId} sent in a POST of its own cancels the running
execution of the same caller (account and API key) with that request id — the slot is
killed and the result is `canceled` — and nobody else's: not another account's, not
another key's, not a different id. Driven by raw JSON-RPC POSTs and by the official Python
`mcp` client in its `initialize` generation, which posts the notification itself when a
call is abandoned."""

from __future__ import annotations

import asyncio
import uuid

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client

from conftest import client, completed, list_records, make_functions

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


def register(edge) -> str:
    """A new account (free tier) and its API key."""
    email = f"c{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery staple"
    status, body = edge.rest("POST", "/v1/auth/register",
                             {"email": email, "password": password, "name": "C", "accept_tos": True})
    assert status in (200, 201), body
    status, body = edge.rest("POST", "/v1/auth/login", {"email": email, "password": password})
    assert status == 200, body
    status, body = edge.rest("POST", "/v1/auth/api-keys", {"name": "k", "scopes": ["read", "write", "execute"]},
                             token=body["access_token"])
    assert status in (200, 201), body
    return body["key"]


def second_key(edge, key) -> str:
    """Another API key of the account that owns `key`."""
    with httpx2.Client(verify=edge.ssl_context()) as h:
        r = h.post(f"https://localhost:{edge.port}/v1/auth/token", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    status, body = edge.rest("POST", "/v1/auth/api-keys", {"name": "second", "scopes": ["read", "write", "execute"]},
                             token=r.json()["access_token"])
    assert status in (200, 201), body
    return body["key"]


async def post(h, edge, key, ns, message):
    return await h.post(edge.url("run", ns), json=message, headers={**HEADERS, "Authorization": f"Bearer {key}"})


def call(rid, code):
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"code": code}}}


def cancel(rid):
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid, "reason": "test"}}


async def test_posted_cancel_stops_only_the_callers_own_request(run_stack):
    edge, key = run_stack.edge, run_stack.key
    worker = run_stack.workers[0]
    ns = f"cancel-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, key, ns, [{"name": "hello", "template": "hello-world"}])
    other_account = register(edge)
    other_ns = f"other-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, other_account, other_ns, [{"name": "hello", "template": "hello-world"}])
    other_key = second_key(edge, key)

    async with httpx2.AsyncClient(verify=edge.ssl_context(), timeout=120) as h:
        received = worker.count("execution received")
        # 41 must survive every cancel aimed at it by others; 42 is canceled by its caller.
        survivor = asyncio.create_task(post(h, edge, key, ns, call(41, "import time\ntime.sleep(2)\nresult = 'done'")))
        victim = asyncio.create_task(post(h, edge, key, ns, call(42, "import time\ntime.sleep(120)\nresult = 'never'")))
        await asyncio.to_thread(worker.wait_line, "execution received", received + 1)

        for who, where, rid in [
            (other_account, other_ns, 41),   # another account, its own endpoint, same id
            (other_key, ns, 41),             # another key of the same account
            (key, ns, "41"),                 # the same caller, a different id ("41" is not 41)
            (key, ns, 43),                   # the same caller, an id that is not running
        ]:
            r = await post(h, edge, who, where, cancel(rid))
            assert r.status_code == 202, r.text
        r = await post(h, edge, key, ns, cancel(42))
        assert r.status_code == 202, r.text

        # Bounded only so a regression fails instead of waiting for the 120 s sleep.
        victim_reply = (await asyncio.wait_for(victim, 60)).json()
        survivor_reply = (await survivor).json()

    res = victim_reply["result"]
    assert victim_reply["id"] == 42 and res["isError"] is True, victim_reply
    assert res["structuredContent"]["status"] == "canceled", res
    assert res["structuredContent"]["result"] is None
    res = survivor_reply["result"]
    assert survivor_reply["id"] == 41 and not res.get("isError"), survivor_reply
    assert res["structuredContent"]["status"] == "completed" and res["structuredContent"]["result"] == "done"

    recs = await list_records(edge, key, ns, 2)
    assert sorted(r["status"] for r in recs) == ["canceled", "completed"], recs
    # The slot was killed, not left running: the next execution gets a slot and completes.
    async with client(edge, key, "run", ns) as c:
        assert completed(await c.call_tool("execute", {"code": "result = 7"}))["result"] == 7


async def test_official_client_abandoning_a_call_cancels_it(run_stack):
    edge, key = run_stack.edge, run_stack.key
    worker = run_stack.workers[0]
    ns = f"abandon-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, key, ns, [{"name": "hello", "template": "hello-world"}])
    received = worker.count("execution received")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, verify=edge.ssl_context(),
                                  timeout=120) as hc:
        # The `initialize` generation: abandoning a request POSTs notifications/cancelled.
        async with mcp.Client(streamable_http_client(edge.url("run", ns), http_client=hc), mode="legacy") as c:
            await c.list_tools()
            task = asyncio.create_task(c.call_tool("execute", {"code": "import time\ntime.sleep(120)\nresult = 1"}))
            await asyncio.to_thread(worker.wait_line, "execution received", received)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            recs = await list_records(edge, key, ns, 1, timeout=60)
            assert [r["status"] for r in recs] == ["canceled"], recs
            # The same session goes on working.
            assert completed(await c.call_tool("execute", {"code": "result = 'after'"}))["result"] == "after"


async def test_official_client_closing_its_stream_cancels_the_call(run_stack):
    # The 2026-07-28 generation (the SDK's default) cancels by aborting the request's POST.
    edge, key = run_stack.edge, run_stack.key
    worker = run_stack.workers[0]
    ns = f"hangup-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, key, ns, [{"name": "hello", "template": "hello-world"}])
    received = worker.count("execution received")
    async with client(edge, key, "run", ns) as c:
        await c.list_tools()
        task = asyncio.create_task(c.call_tool("execute", {"code": "import time\ntime.sleep(120)\nresult = 1"}))
        await asyncio.to_thread(worker.wait_line, "execution received", received)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        recs = await list_records(edge, key, ns, 1, timeout=60)
        assert [r["status"] for r in recs] == ["canceled"], recs
        assert completed(await c.call_tool("execute", {"code": "result = 'after'"}))["result"] == "after"
