"""Tool mode (`?mode=tools`, `&tags=`) with a real worker and the official Python `mcp`
client: one tool per function with its schema, calls run the function in a slot, and
arguments that break the schema come back as one typed `INVALID_TOOL_ARGUMENTS` error
listing every violation — before any slot is used: the worker never hears of the call and
no execution is recorded."""

from __future__ import annotations

import uuid

import pytest
from mcp.shared.exceptions import MCPError

from conftest import client, completed, err, list_records, make_functions

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


ADD_SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "b": {"type": "integer", "minimum": 0},
        "label": {"type": "string", "maxLength": 3},
    },
    "required": ["a", "b"],
    "additionalProperties": False,
}

SHOUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1}, "times": {"type": "integer", "maximum": 3}},
    "required": ["text"],
}

SHOUT_TS = """\
export default function (input: { text: string; times?: number }) {
  return (input.text.toUpperCase() + "!").repeat(input.times ?? 1);
}
"""


@pytest.fixture
async def ns(run_stack):
    name = f"tm-{uuid.uuid4().hex[:8]}"
    await make_functions(run_stack.edge, run_stack.key, name, [
        {"name": "add-up", "language": "python", "description": "Adds a and b",
         "code": "def main(input_data):\n    return {'sum': input_data['a'] + input_data['b'], 'label': input_data.get('label')}\n",
         "input_schema": ADD_SCHEMA, "tags": ["math"]},
        {"name": "shout", "language": "typescript", "description": "Upper-cases a text",
         "code": SHOUT_TS, "input_schema": SHOUT_SCHEMA, "tags": ["text"]},
        {"name": "hello", "template": "hello-world", "tags": ["greet", "text"]},
    ])
    return name


async def test_tool_mode_lists_and_runs_functions_by_tag(run_stack, ns):
    edge, key = run_stack.edge, run_stack.key
    async with client(edge, key, "run", ns, "path", "mode=tools") as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == {"tools.add-up", "tools.shout", "tools.hello"}
        assert tools["tools.add-up"].input_schema == ADD_SCHEMA
        assert tools["tools.shout"].description == "Upper-cases a text"
        sc = completed(await c.call_tool("tools.add-up", {"a": 2, "b": 3, "label": "x"}))
        assert sc["result"] == {"sum": 5, "label": "x"}, sc
        assert [call["name"] for call in sc["calls"]] == ["tools.add-up"]
        assert completed(await c.call_tool("tools.shout", {"text": "hi", "times": 2}))["result"] == "HI!HI!"
    async with client(edge, key, "run", ns, "subdomain", "mode=tools&tags=text") as c:
        assert sorted(t.name for t in (await c.list_tools()).tools) == ["tools.hello", "tools.shout"]
        assert completed(await c.call_tool("tools.hello", {"name": "Tag"}))["result"] == {"greeting": "Hello, Tag!"}
        # A function the tags hide is not a tool of this connection (-32602, nothing runs).
        with pytest.raises(MCPError) as e:
            await c.call_tool("tools.add-up", {"a": 1, "b": 1})
        assert e.value.error.code == -32602


async def test_schema_errors_list_every_violation_before_any_slot(run_stack, ns):
    edge, key = run_stack.edge, run_stack.key
    worker = run_stack.workers[0]
    received = worker.count("execution received")
    async with client(edge, key, "run", ns, "path", "mode=tools") as c:
        sc = err(await c.call_tool("tools.add-up", {"a": "one", "b": -1, "label": "long", "extra": True}),
                 "INVALID_TOOL_ARGUMENTS")
        assert sc["tool"] == "tools.add-up"
        by_path = {}
        for v in sc["violations"]:
            by_path.setdefault(v["path"], []).append(v["message"])
        assert sorted(by_path) == ["/", "/a", "/b", "/label"], sc
        assert any("extra" in m for m in by_path["/"]), by_path
        assert "4 violations" in sc["message"], sc["message"]
        for path in ("/a", "/b", "/label"):
            assert path in sc["message"]

        sc = err(await c.call_tool("tools.shout", {"times": 9}), "INVALID_TOOL_ARGUMENTS")
        assert sorted(v["path"] for v in sc["violations"]) == ["/", "/times"], sc
        sc = err(await c.call_tool("tools.shout", {"text": ""}), "INVALID_TOOL_ARGUMENTS")
        assert [v["path"] for v in sc["violations"]] == ["/text"], sc
        err(await c.call_tool("add-up", {"a": 1, "b": 2}), "INVALID_TOOL_NAME")

        # A valid call right after runs. The worker logs and the record writer are FIFO: once
        # this call's line and record are there, any from the refused calls would be too.
        assert completed(await c.call_tool("tools.add-up", {"a": 1, "b": 2}))["result"]["sum"] == 3
    worker.wait_line("execution received", after=received)
    assert worker.count("execution received") == received + 1
    recs = await list_records(edge, key, ns, 1)
    assert len(recs) == 1, recs
    assert recs[0]["function"] == "tools.add-up" and recs[0]["mode"] == "tool" and recs[0]["status"] == "completed"
