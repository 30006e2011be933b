"""Code mode in both languages with a real worker, driven by the official Python `mcp`
client over TLS: the seed pattern's TypeScript equivalent (`require("./functions")`), and
calls across languages — Python code calling a TypeScript function, TypeScript code
calling a Python function, and a function that itself calls one in the other language —
each recorded as a call of the execution."""

from __future__ import annotations

import uuid

import pytest

from conftest import client, completed, list_records, make_functions

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


TS_CALLS_PY = """\
const f = require("./functions");
export default async function (input: { name: string }) {
  const g = await f.py_hello({ name: input.name });
  return { via: "ts", greeting: g.greeting };
}
"""

PY_CALLS_TS = """\
from functions import ts_hello

def main(input_data):
    return {"via": "py", "greeting": ts_hello(name=input_data["name"])["greeting"]}
"""


@pytest.fixture(scope="module")
async def ns(run_stack):
    name = f"lang-{uuid.uuid4().hex[:8]}"
    await make_functions(run_stack.edge, run_stack.key, name, [
        {"name": "py-hello", "template": "hello-world"},
        {"name": "ts-hello", "template": "hello-world-ts"},
        {"name": "ts-calls-py", "language": "typescript", "code": TS_CALLS_PY,
         "description": "TypeScript that greets through py-hello"},
        {"name": "py-calls-ts", "language": "python", "code": PY_CALLS_TS,
         "description": "Python that greets through ts-hello"},
    ])
    return name


async def execute(stack, ns, code, language="python", **extra):
    async with client(stack.edge, stack.key, "run", ns) as c:
        return await c.call_tool("execute", {"code": code, "language": language, **extra})


async def test_typescript_seed_pattern(run_stack, ns):
    code = """\
const functions = require("./functions");
const { ts_hello } = functions;
export default async function () {
  return { doc: functions.__doc__, hello: await ts_hello({ name: "World" }) };
}
"""
    r = await execute(run_stack, ns, code, "typescript")
    sc = completed(r)
    assert sc["result"]["hello"] == {"greeting": "Hello, World!"}, sc
    doc = sc["result"]["doc"]
    for fn in ("py_hello", "ts_hello", "ts_calls_py", "py_calls_ts"):
        assert f"{fn}(" in doc, doc
    assert [c["name"] for c in sc["calls"]] == ["tools.ts-hello"], sc["calls"]
    assert "Hello, World!" in r.content[0].text


async def test_typescript_stdout_input_and_errors(run_stack, ns):
    code = 'export default function (input: { n: number }) { console.log("n is", input.n); return input.n * 2 }'
    sc = completed(await execute(run_stack, ns, code, "typescript", input={"n": 21}))
    assert sc["result"] == 42 and sc["stdout"] == "n is 21\n", sc
    r = await execute(run_stack, ns, 'export default function () { throw new RangeError("too far") }', "typescript")
    assert r.is_error and r.structured_content["status"] == "failed", r.structured_content
    assert r.structured_content["error"]["type"] == "RangeError"
    assert "too far" in r.structured_content["error"]["message"]


async def test_python_code_calls_a_typescript_function(run_stack, ns):
    sc = completed(await execute(run_stack, ns, 'from functions import ts_hello\nresult = ts_hello(name="Py")'))
    assert sc["result"] == {"greeting": "Hello, Py!"}, sc
    assert [c["name"] for c in sc["calls"]] == ["tools.ts-hello"], sc["calls"]


async def test_typescript_code_calls_a_python_function(run_stack, ns):
    code = """\
const { py_hello } = require("./functions");
export default async function () { return await py_hello({ name: "Ts" }); }
"""
    sc = completed(await execute(run_stack, ns, code, "typescript"))
    assert sc["result"] == {"greeting": "Hello, Ts!"}, sc
    assert [c["name"] for c in sc["calls"]] == ["tools.py-hello"], sc["calls"]


async def test_functions_calling_across_languages_from_both_sides(run_stack, ns):
    # Python code → a TypeScript function → a Python function, and the mirror image.
    sc = completed(await execute(run_stack, ns, 'from functions import ts_calls_py\nresult = ts_calls_py(name="A")'))
    assert sc["result"] == {"via": "ts", "greeting": "Hello, A!"}, sc
    code = """\
const { py_calls_ts } = require("./functions");
export default async function () { return await py_calls_ts({ name: "B" }); }
"""
    sc = completed(await execute(run_stack, ns, code, "typescript"))
    assert sc["result"] == {"via": "py", "greeting": "Hello, B!"}, sc
    assert sc["calls"][0]["name"] == "tools.py-calls-ts", sc["calls"]
    recs = await list_records(run_stack.edge, run_stack.key, ns, 2, status="completed")
    assert {r["language"] for r in recs} == {"python", "typescript"}, recs


async def test_tool_mode_runs_each_language(run_stack, ns):
    async with client(run_stack.edge, run_stack.key, "run", ns, "path", "mode=tools") as c:
        names = sorted(t.name for t in (await c.list_tools()).tools)
        assert names == ["tools.py-calls-ts", "tools.py-hello", "tools.ts-calls-py", "tools.ts-hello"]
        assert completed(await c.call_tool("tools.ts-hello", {"name": "T"}))["result"] == {"greeting": "Hello, T!"}
        sc = completed(await c.call_tool("tools.ts-calls-py", {"name": "C"}))
        assert sc["result"] == {"via": "ts", "greeting": "Hello, C!"}, sc
