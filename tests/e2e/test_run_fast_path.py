"""The run endpoint's `tools/call` fast path with a real worker: a session-less,
legacy-generation JSON-RPC POST is answered by the edge itself (its debug line
`answered on the fast path` counts them) with the same body rmcp's service gives the same
request, and a client that hangs up during a fast-path call cancels it (the slot is
killed, the execution recorded as canceled). A request the fast path leaves to rmcp (here:
an `Accept` with quality values, which it does not parse) is the comparison."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client

from conftest import (EDGE_TEST_ENV, Edge, RunStack, completed, list_records, make_functions,
                      sandbox_skip_reason)

pytestmark = pytest.mark.anyio

FAST = "answered on the fast path"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
# The same request, left to rmcp: the fast path does not judge quality values.
RMCP = {"Content-Type": "application/json", "Accept": "application/json;q=1, text/event-stream;q=1"}


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


class FastStack(RunStack):
    """A run stack whose edge logs its fast-path answers."""

    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.edge = Edge(tmp_path_factory.mktemp("edge-fast"),
                         {**EDGE_TEST_ENV, "PADDOCK_EDGE_LOG": "info,paddock_edge::mcp::fast=debug"})
        self.key = self.edge.admin_key()
        self.workers = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    s = FastStack(tmp_path_factory)
    try:
        s.worker()
        yield s
    finally:
        s.close()


def fast_count(edge) -> int:
    return sum(FAST in line for line in list(edge.lines))


async def wait_fast(edge, n: int) -> None:
    """The debug line is written right after the reply; wait for it (bounded)."""
    for _ in range(500):
        if fast_count(edge) >= n:
            return
        await asyncio.sleep(0.01)
    assert fast_count(edge) >= n, "no fast-path line:\n" + "\n".join(edge.lines[-20:])


def call(rid, name, args):
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": args}}


async def post(h, stack, ns, body, headers=HEADERS, query=""):
    url = stack.edge.url("run", ns, query=query)
    return await h.post(url, content=json.dumps(body), headers={**headers, "Authorization": f"Bearer {stack.key}"})


async def test_legacy_calls_take_the_fast_path_with_rmcps_bytes(stack):
    edge = stack.edge
    ns = f"fast-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    async with httpx2.AsyncClient(verify=edge.ssl_context(), timeout=60) as h:
        # A successful execution: same shape and values both ways (ids and timings differ).
        before = fast_count(edge)
        fast = await post(h, stack, ns, call(1, "execute", {"code": "result = 1 + 1"}))
        await wait_fast(edge, before + 1)
        slow = await post(h, stack, ns, call(1, "execute", {"code": "result = 1 + 1"}), RMCP)
        assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
        assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        f, s = fast.json(), slow.json()
        for r in (f, s):
            sc = r["result"]["structuredContent"]
            assert sc["status"] == "completed" and sc["result"] == 2, r
            assert r["result"].get("isError") is not True and "resultType" not in r["result"], r
        assert list(f["result"]) == list(s["result"])
        assert list(f["result"]["structuredContent"]) == list(s["result"]["structuredContent"])

        # Deterministic answers are byte-identical: argument errors, unknown tools, a
        # failed execution's shape, tool mode's schema errors.
        cases = [
            ("", call(2, "execute", {})),
            ("", call("x\"é", "execute", {"code": "x", "language": "cobol"})),
            ("", call(3, "no_such_tool", {})),
            ("mode=tools", call(4, "tools.nope", {})),
            ("mode=tools", call(5, "nodot", {})),
        ]
        for query, body in cases:
            before = fast_count(edge)
            fast = await post(h, stack, ns, body, query=query)
            await wait_fast(edge, before + 1)
            slow = await post(h, stack, ns, body, RMCP, query=query)
            assert fast.status_code == slow.status_code == 200
            assert fast.content == slow.content, (fast.text, slow.text)
        assert json.loads(fast.content)["result"]["structuredContent"]["code"] == "INVALID_TOOL_NAME"

        # Tool mode runs the function on the fast path.
        before = fast_count(edge)
        r = await post(h, stack, ns, call(6, "tools.hello", {"name": "Fast"}), query="mode=tools")
        await wait_fast(edge, before + 1)
        sc = r.json()["result"]["structuredContent"]
        assert sc["status"] == "completed" and "Fast" in json.dumps(sc["result"]), sc


async def test_official_client_in_the_initialize_generation_takes_the_fast_path(stack):
    edge = stack.edge
    ns = f"legacy-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {stack.key}"}, verify=edge.ssl_context(),
                                  timeout=60) as hc:
        async with mcp.Client(streamable_http_client(edge.url("run", ns), http_client=hc), mode="legacy") as c:
            before = fast_count(edge)
            r = await c.call_tool("execute", {"code": "from functions import hello\nresult = hello(name='SDK')"})
            assert "SDK" in json.dumps(completed(r)["result"])
            await wait_fast(edge, before + 1)


async def test_client_hanging_up_cancels_a_fast_path_call(stack):
    edge, worker = stack.edge, stack.workers[0]
    ns = f"hangup-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    received = worker.count("execution received")
    h = httpx2.AsyncClient(verify=edge.ssl_context(), timeout=120)
    task = asyncio.create_task(post(h, stack, ns, call(9, "execute", {"code": "import time\ntime.sleep(120)\nresult = 1"})))
    await asyncio.to_thread(worker.wait_line, "execution received", received)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await h.aclose()  # the connection closes: the edge cancels the call
    recs = await list_records(edge, stack.key, ns, 1, timeout=60)
    assert [r["status"] for r in recs] == ["canceled"], recs
    async with httpx2.AsyncClient(verify=edge.ssl_context(), timeout=60) as h2:
        before = fast_count(edge)
        r = await post(h2, stack, ns, call(10, "execute", {"code": "result = 'after'"}))
        await wait_fast(edge, before + 1)
    assert r.json()["result"]["structuredContent"]["result"] == "after"
