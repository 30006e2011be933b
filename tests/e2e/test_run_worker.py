"""The run endpoint with a real worker: a fresh edge over TLS, a real paddock-worker that
dials it (`serve --edge unix:<edge>/workers.sock --join-token-file <edge>/join.token`)
with real nsjail slots, driven by the official Python `mcp` client. The seed's common
pattern (make_namespace → make_service → make_function from hello-world → execute
`from functions import hello`), tool mode, and the execution records."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import Edge, Worker, client, ok, sandbox_skip_reason

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    edge = Edge(tmp_path_factory.mktemp("edge-run"))
    worker = Worker(edge, tmp_path_factory.mktemp("worker-run"))
    try:
        yield edge, worker
    finally:
        worker.stop()
        edge.stop()


async def execute_when_ready(edge, key, ns, code, deadline_s=90):
    """`execute` once the worker has joined (NO_WORKERS until then)."""
    deadline = time.monotonic() + deadline_s
    async with client(edge, key, "run", ns) as c:
        while True:
            r = await c.call_tool("execute", {"code": code})
            sc = r.structured_content or {}
            if sc.get("code") != "NO_WORKERS" or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.1)


async def test_seed_pattern_and_tool_mode_with_a_real_worker(stack):
    edge, worker = stack
    key = edge.admin_key()
    ns = "seed"
    async with client(edge, key, "create", ns) as c:
        ok(await c.call_tool("make_namespace", {"name": ns}))
        ok(await c.call_tool("make_service", {"name": "tools"}))
        ok(await c.call_tool("make_function", {"service": "tools", "name": "hello", "backend": "code_sandbox",
                                               "template": "hello-world"}))
    r = await execute_when_ready(edge, key, ns, 'from functions import hello; result = hello(name="World")')
    sc = r.structured_content
    assert not r.is_error, (sc.get("error"), worker.lines[-20:])
    assert sc["status"] == "completed", sc
    assert sc["result"] == {"greeting": "Hello, World!"}, sc
    assert sc["executionId"].startswith("ex_")
    assert [call["name"] for call in sc["calls"]] == ["tools.hello"], sc
    assert "Hello, World!" in r.content[0].text

    async with client(edge, key, "run", ns, "path", "mode=tools") as c:
        assert [t.name for t in (await c.list_tools()).tools] == ["tools.hello"]
        r = await c.call_tool("tools.hello", {"name": "Tools"})
    assert not r.is_error, r.structured_content
    assert r.structured_content["result"] == {"greeting": "Hello, Tools!"}

    async with client(edge, key, "run", ns) as c:
        r = await c.call_tool("execute", {"code": "raise ValueError('nope')"})
    assert r.is_error and r.structured_content["status"] == "failed"
    assert r.structured_content["error"]["type"] == "ValueError"

    async with client(edge, key, "create", ns) as c:
        deadline = time.monotonic() + 10
        recs = ok(await c.call_tool("list_executions", {"status": "completed"}))
        while recs["count"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            recs = ok(await c.call_tool("list_executions", {"status": "completed"}))
        assert recs["count"] >= 2, recs
        assert recs["executions"][0]["function"] == "tools.hello"
        failed = ok(await c.call_tool("list_executions", {"status": "failed"}))
        assert failed["count"] == 1 and failed["executions"][0]["error_type"] == "ValueError"
