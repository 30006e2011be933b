"""The run endpoint against the real edge over TLS with the official Python `mcp` client,
without a worker: code mode lists one `execute` tool, tool mode lists one tool per
function (schema, tags), arguments are checked before any worker is needed (typed
errors, every schema violation listed), `execute` answers NO_WORKERS, and every
dispatched execution is recorded (list_executions / describe_execution)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from mcp.shared.exceptions import MCPError

from conftest import client, err, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "label": {"type": "string", "maxLength": 3}},
    "required": ["a", "b"],
}


async def seed(edge, key) -> str:
    ns = f"run-{uuid.uuid4().hex[:8]}"
    async with client(edge, key, "create", ns) as c:
        ok(await c.call_tool("make_namespace", {"name": ns}))
        ok(await c.call_tool("make_service", {"name": "tools"}))
        ok(await c.call_tool("make_function", {
            "service": "tools", "name": "hello", "backend": "code_sandbox", "template": "hello-world", "tags": ["greet"],
        }))
        ok(await c.call_tool("make_function", {
            "service": "tools", "name": "add-up", "backend": "code_sandbox", "language": "python",
            "description": "Adds a and b", "code": "def main(input_data):\n    return input_data['a'] + input_data['b']\n",
            "input_schema": SCHEMA, "tags": ["math"],
        }))
    return ns


async def test_code_mode_lists_execute_only(edge, admin_key):
    ns = await seed(edge, admin_key)
    async with client(edge, admin_key, "run", ns) as c:
        tools = (await c.list_tools()).tools
    assert [t.name for t in tools] == ["execute"]
    t = tools[0]
    assert "functions.__doc__" in t.description
    assert t.input_schema["required"] == ["code"]
    assert t.output_schema is None


@pytest.mark.parametrize("form", ["path", "subdomain"])
async def test_tool_mode_lists_functions_with_schemas_and_tags(edge, admin_key, form):
    ns = await seed(edge, admin_key)
    async with client(edge, admin_key, "run", ns, form, "mode=tools") as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == {"tools.hello", "tools.add-up"}
    assert tools["tools.add-up"].input_schema == SCHEMA
    assert tools["tools.add-up"].description == "Adds a and b"
    for t in tools.values():
        assert t.description and t.input_schema.get("type") == "object" and t.output_schema is None
    async with client(edge, admin_key, "run", ns, form, "mode=tools&tags=math") as c:
        assert [t.name for t in (await c.list_tools()).tools] == ["tools.add-up"]


async def test_tool_mode_argument_errors_come_before_any_worker(edge, admin_key):
    ns = await seed(edge, admin_key)
    async with client(edge, admin_key, "run", ns, "path", "mode=tools") as c:
        sc = err(await c.call_tool("tools.add-up", {"a": "one", "label": "toolong"}), "INVALID_TOOL_ARGUMENTS")
        paths = sorted(v["path"] for v in sc["violations"])
        assert paths == ["/", "/a", "/label"], sc
        assert "3 violations" in sc["message"]
        err(await c.call_tool("hello", {}), "INVALID_TOOL_NAME")
        with pytest.raises(MCPError) as e:
            await c.call_tool("tools.nope", {})
        assert e.value.error.code == -32602
        # valid arguments reach the dispatcher, which has no worker here
        err(await c.call_tool("tools.add-up", {"a": 1, "b": 2}), "NO_WORKERS")


async def test_execute_checks_then_answers_no_workers_and_is_recorded(edge, admin_key):
    ns = await seed(edge, admin_key)
    async with client(edge, admin_key, "run", ns) as c:
        err(await c.call_tool("execute", {"code": ""}), "NO_CODE_PROVIDED")
        err(await c.call_tool("execute", {"code": "x" * (100 * 1024 + 1)}), "INPUT_TOO_LARGE")
        err(await c.call_tool("execute", {"code": "1", "language": "ruby"}), "UNSUPPORTED_LANGUAGE")
        err(await c.call_tool("execute", {"code": "1", "timeoutMs": 0}), "INVALID_ARGUMENT")
        err(await c.call_tool("execute", {"code": "from functions import hello; result = hello(name='World')"}), "NO_WORKERS")
        err(await c.call_tool("execute_typescript", {"code": "export default () => 1"}), "NO_WORKERS")
        with pytest.raises(MCPError) as e:
            await c.call_tool("no_such_tool", {})
        assert e.value.error.code == -32602
    async with client(edge, admin_key, "create", ns) as c:
        # the records are written off the hot path: poll with a deadline
        deadline = time.monotonic() + 10
        recs = ok(await c.call_tool("list_executions", {}))
        while recs["count"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            recs = ok(await c.call_tool("list_executions", {}))
        assert recs["count"] == 2, recs
        langs = [r["language"] for r in recs["executions"]]
        assert langs == ["typescript", "python"]
        assert all(r["status"] == "error" and r["error_type"] == "NO_WORKERS" for r in recs["executions"])
        one = recs["executions"][1]
        d = ok(await c.call_tool("describe_execution", {"execution_id": one["execution_id"]}))
        assert d["code_sha256"] == one["code_sha256"] and len(d["code_sha256"]) == 64
        err(await c.call_tool("describe_execution", {"execution_id": "ex_nope"}), "EXECUTION_NOT_FOUND")
