"""Calls from sandboxed code to a remote MCP server, end to end (issue 6): the real edge
(over TLS, driven by the official Python `mcp` client), a real worker with nsjail slots,
and the third-party `@modelcontextprotocol/server-everything` on loopback over streamable
HTTP. The server is attached with `add_mcp_server` (with a bearer token and a header the
sandbox must never see), then Python and TypeScript code call its `echo` and `get-sum`
tools as `mcp__everything__*` functions: values come back, the catalogue lists them, the
call budget (`max_calls_per_execution` = 2) raises the typed exception on the third call,
every call is in the execution's `calls` with latency and bytes, and neither the token
nor the header appears anywhere the sandbox can read, nor in the worker's replica."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (
    EDGE_TEST_ENV,
    REPO,
    Edge,
    Worker,
    client,
    completed,
    list_records,
    ok,
    sandbox_skip_reason,
    stop_process,
)

pytestmark = pytest.mark.anyio

NODE_DIR = REPO / "tests" / "node"
EVERYTHING = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
SECRET_TOKEN = "tok-" + uuid.uuid4().hex
SECRET_HEADER = "hdr-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


class NodeServer:
    """A Node MCP server on 127.0.0.1 (port chosen by the kernel): server-everything over
    streamable HTTP by default."""

    def __init__(self, args=("--require", "./loopback-only.cjs", str(EVERYTHING), "streamableHttp"),
                 env: dict[str, str] | None = None):
        env = dict(os.environ, PORT="0", **(env or {}))
        self.proc = subprocess.Popen(
            ["node", *args],
            cwd=NODE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.port = None
        ready = threading.Event()

        def drain():
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                if line.startswith("PADDOCK_LISTENING ") and self.port is None:
                    self.port = int(line.split()[1])
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError(f"{args} did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self):
        stop_process(self.proc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    if not EVERYTHING.exists():
        pytest.skip("tests/node/node_modules is not installed (deploy/install-deps.sh)")
    server = NodeServer()
    edge = Edge(tmp_path_factory.mktemp("edge-bridge"), {
        **EDGE_TEST_ENV,
        "PADDOCK_EDGE_ALLOW_PRIVATE_MCP_HOSTS": "127.0.0.1",
        "PADDOCK_EDGE_KEK": os.urandom(32).hex(),
    })
    worker_dir = tmp_path_factory.mktemp("worker-bridge")
    worker = Worker(edge, worker_dir)
    try:
        worker.wait_joined()
        yield {"edge": edge, "key": edge.admin_key(), "server": server, "worker": worker,
               "worker_dir": worker_dir}
    finally:
        worker.stop()
        edge.stop()
        server.stop()


@pytest.fixture(scope="module")
async def ns(stack):
    name = f"br-{uuid.uuid4().hex[:8]}"
    async with client(stack["edge"], stack["key"], "create", name) as c:
        ok(await c.call_tool("make_namespace", {"name": name}))
        added = ok(await c.call_tool("add_mcp_server", {
            "name": "everything", "url": stack["server"].url, "transport": "streamable_http",
            "auth_token": SECRET_TOKEN, "headers": {"X-Paddock-Test": SECRET_HEADER},
        }))
        assert SECRET_TOKEN not in json.dumps(added)
        ok(await c.call_tool("set_mcp_server_setting", {
            "name": "everything", "key": "max_calls_per_execution", "value": 2}))
    return name


async def execute(stack, ns, code, language="python", **extra):
    async with client(stack["edge"], stack["key"], "run", ns) as c:
        return await c.call_tool("execute", {"code": code, "language": language, **extra})


PYTHON = """\
import functions
from functions import mcp__everything__echo, mcp__everything__get_sum

echo = mcp__everything__echo(message="hi from python")
total = mcp__everything__get_sum(a=2, b=3)
meta = dict(functions.last_remote_call)
try:
    mcp__everything__echo(message="third")
    third = "no error"
except functions.RemoteBudgetExceeded as e:
    third = [type(e).__name__, e.code, e.server, isinstance(e, functions.RemoteToolError)]
result = {
    "doc": functions.__doc__,
    "echo": echo,
    "total": total,
    "meta": meta,
    "third": third,
    "search": [r["name"] for r in functions.search("sum")],
    "describe": functions.describe("mcp__everything__echo")["input_schema"],
}
"""


async def test_python_calls_remote_tools_within_the_budget(stack, ns):
    sc = completed(await execute(stack, ns, PYTHON))
    r = sc["result"]
    assert "[RemoteMCP]\n[everything]\n" in r["doc"], r["doc"]
    assert "mcp__everything__echo(message) — Echoes back the input string\n" in r["doc"], r["doc"]
    assert " 0 functions, " in r["doc"] and " remote MCP tools. " in r["doc"], r["doc"]
    assert "mcp__everything__get_sum(a, b) — Returns the sum of two numbers\n" in r["doc"], r["doc"]
    assert "Echo: hi from python" in json.dumps(r["echo"]), r["echo"]
    assert "5" in json.dumps(r["total"]), r["total"]
    assert r["meta"]["name"] == "mcp__everything__get_sum" and r["meta"]["bytes"] > 0, r["meta"]
    assert r["third"] == ["RemoteBudgetExceeded", "CALL_BUDGET_EXCEEDED", "everything", True]
    assert r["search"] == ["mcp__everything__get_sum"]
    assert r["describe"]["required"] == ["message"]
    calls = sc["calls"]
    assert [(c["name"], c["status"]) for c in calls] == [
        ("mcp__everything__echo", "ok"),
        ("mcp__everything__get_sum", "ok"),
        ("mcp__everything__echo", "CALL_BUDGET_EXCEEDED"),
    ], calls
    assert all(c["durationMs"] > 0 and c["bytes"] > 0 for c in calls[:2]), calls
    recs = await list_records(stack["edge"], stack["key"], ns, 1)
    rec = next(x for x in recs if x["execution_id"] == sc["executionId"])
    assert rec["calls"][:2] == ["mcp__everything__echo", "mcp__everything__get_sum"], rec
    details = rec["call_details"]
    assert [(d["name"], d["status"]) for d in details] == [(c["name"], c["status"]) for c in calls], rec
    assert details[0]["duration_ms"] > 0 and details[0]["bytes"] == calls[0]["bytes"], rec


TYPESCRIPT = """\
const f = require("./functions");
export default async function () {
  const pending = f.mcp__everything__echo({ message: "hi from ts" });
  const echo = await pending;
  const total = await f.mcp__everything__get_sum({ a: 20, b: 22 });
  let third = "no error";
  try {
    await f.mcp__everything__get_sum({ a: 1, b: 1 });
  } catch (e) {
    third = [e.name, e.code, e instanceof f.RemoteBudgetExceeded, e instanceof f.RemoteToolError];
  }
  return { promise: pending instanceof Promise, echo, total, third };
}
"""


async def test_typescript_calls_remote_tools_and_the_budget_holds(stack, ns):
    sc = completed(await execute(stack, ns, TYPESCRIPT, "typescript"))
    r = sc["result"]
    assert r["promise"] is True
    assert "Echo: hi from ts" in json.dumps(r["echo"]), r["echo"]
    assert "42" in json.dumps(r["total"]), r["total"]
    assert r["third"] == ["RemoteBudgetExceeded", "CALL_BUDGET_EXCEEDED", True, True]
    assert [c["status"] for c in sc["calls"]] == ["ok", "ok", "CALL_BUDGET_EXCEEDED"], sc["calls"]


async def test_an_uncaught_remote_error_fails_the_execution_with_its_type(stack, ns):
    code = """\
from functions import mcp__everything__echo
for i in range(3):
    mcp__everything__echo(message=str(i))
"""
    res = await execute(stack, ns, code)
    sc = res.structured_content
    assert res.is_error and sc["status"] == "failed", sc
    assert sc["error"]["type"] == "RemoteBudgetExceeded", sc["error"]
    assert "max_calls_per_execution" in sc["error"]["message"], sc["error"]


SNOOP = """\
import json, os
from functions import mcp__everything__echo, mcp__everything__get_sum

seen = {"env": dict(os.environ)}
files = {}
for root in ("/workspace", "/tmp", os.getcwd()):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                with open(p, "rb") as fh:
                    files[p] = fh.read(1 << 20).decode("utf-8", "replace")
            except OSError:
                pass
seen["files"] = files
for p in ("/proc/self/environ", "/proc/self/cmdline", "/proc/1/environ", "/proc/1/cmdline"):
    try:
        with open(p, "rb") as fh:
            seen[p] = fh.read().decode("utf-8", "replace")
    except OSError as e:
        seen[p] = str(e)
seen["echo"] = mcp__everything__echo(message="what are my headers?")
seen["sum"] = mcp__everything__get_sum(a=1, b=1)
result = json.dumps(seen)
"""


async def test_the_token_and_headers_are_nowhere_the_sandbox_or_replica_can_read(stack, ns):
    res = await execute(stack, ns, SNOOP)
    sc = completed(res)
    blob = json.dumps(sc) + res.content[0].text
    assert "functions/_mcp.py" in blob, "the package was on disk and was read"
    for secret in (SECRET_TOKEN, SECRET_HEADER):
        assert secret not in blob
    # The worker's replica (and everything else in its data directory).
    worker_dir: pathlib.Path = stack["worker_dir"]
    checked = 0
    for p in worker_dir.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            checked += 1
            assert SECRET_TOKEN.encode() not in data, p
            assert SECRET_HEADER.encode() not in data, p
    assert checked > 0
    # The worker's logs neither.
    logs = "\n".join(stack["worker"].lines)
    assert SECRET_TOKEN not in logs and SECRET_HEADER not in logs


@pytest.fixture(scope="module")
async def guarded(stack, ns):
    """tests/node/mcp-test-server.mjs: every request needs the bearer token and the header."""
    server = NodeServer(("mcp-test-server.mjs",), {
        "AUTH_TOKEN": SECRET_TOKEN, "REQUIRE_HEADER": f"x-paddock-test:{SECRET_HEADER}"})
    async with client(stack["edge"], stack["key"], "create", ns) as c:
        ok(await c.call_tool("add_mcp_server", {
            "name": "guarded", "url": server.url, "auth_token": SECRET_TOKEN,
            "headers": {"X-Paddock-Test": SECRET_HEADER}}))
        ok(await c.call_tool("set_mcp_server_setting", {"name": "guarded", "key": "timeout_seconds", "value": 1}))
        ok(await c.call_tool("add_mcp_server_rule", {"name": "guarded", "type": "block_tool", "tools": "html"}))
    yield server
    server.stop()


CATCH = """import functions
from functions import mcp__guarded__echo_args, mcp__guarded__fail, mcp__guarded__html, mcp__guarded__slow

def catch(f, **kw):
    try:
        return ["ok", f(**kw)]
    except functions.RemoteToolError as e:
        return [type(e).__name__, e.code, str(e)]

result = {
    "echo": catch(mcp__guarded__echo_args, q="through the edge"),
    "blocked": catch(mcp__guarded__html),
    "failed": catch(mcp__guarded__fail),
    "slow": catch(mcp__guarded__slow, ms=5000),
}
"""


async def test_each_failure_raises_its_typed_exception(stack, ns, guarded):
    sc = completed(await execute(stack, ns, CATCH))
    r = sc["result"]
    # The server wants the token and the header: the edge sent both, the sandbox saw neither.
    assert r["echo"][0] == "ok" and "through the edge" in json.dumps(r["echo"][1]), r["echo"]
    assert r["blocked"][:2] == ["RemoteBlocked", "RULE_BLOCKED"], r["blocked"]
    assert r["failed"][:2] == ["RemoteToolFailed", "MCP_TOOL_ERROR"], r["failed"]
    assert r["slow"][:2] == ["RemoteTimeout", "MCP_SERVER_TIMEOUT"], r["slow"]
    assert [c["status"] for c in sc["calls"]] == [
        "ok", "RULE_BLOCKED", "MCP_TOOL_ERROR", "MCP_SERVER_TIMEOUT"], sc["calls"]
    text = json.dumps(sc)
    assert SECRET_TOKEN not in text and SECRET_HEADER not in text
    # The server going away: RemoteUnavailable (after the edge's retries), no secret in it.
    guarded.stop()
    sc = completed(await execute(stack, ns, """import functions
try:
    functions.mcp__guarded__echo_args(q="anyone?")
    result = "no error"
except functions.RemoteUnavailable as e:
    result = [type(e).__name__, e.code, str(e)]
"""))
    assert sc["result"][:2] == ["RemoteUnavailable", "MCP_SERVER_UNAVAILABLE"], sc["result"]
    assert SECRET_TOKEN not in json.dumps(sc) and SECRET_HEADER not in json.dumps(sc)


TS_ECHO = """\
const f = require("./functions");
export default async function (input: { message: string }) {
  return await f.mcp__everything__echo({ message: input.message });
}
"""


async def test_a_function_in_the_other_language_calls_a_remote_tool(stack, ns):
    """Python calls a TypeScript function that calls the remote tool: the nested execution
    uses its top-level execution's bridge key and budget."""
    async with client(stack["edge"], stack["key"], "create", ns) as c:
        ok(await c.call_tool("make_service", {"name": "tools"}))
        ok(await c.call_tool("make_function", {
            "service": "tools", "name": "ts-echo", "backend": "code_sandbox",
            "language": "typescript", "code": TS_ECHO,
            "input_schema": {"type": "object", "properties": {"message": {"type": "string"}},
                             "required": ["message"]}}))
    sc = completed(await execute(stack, ns, """\
from functions import ts_echo, mcp__everything__echo
first = ts_echo(message="nested")
mcp__everything__echo(message="second, the budget's last")
try:
    ts_echo(message="third")
    third = "no error"
except Exception as e:
    third = [type(e).__name__, str(e)]
result = {"first": first, "third": third}
"""))
    r = sc["result"]
    assert "Echo: nested" in json.dumps(r["first"]), r
    assert r["third"][0] == "FunctionCallError" and "CALL_BUDGET_EXCEEDED" in r["third"][1], r
    names = [(c["name"], c["status"]) for c in sc["calls"]]
    assert ("mcp__everything__echo", "CALL_BUDGET_EXCEEDED") in names, names
    assert [n for n in names if n[0] == "mcp__everything__echo"][:2] == [
        ("mcp__everything__echo", "ok"), ("mcp__everything__echo", "ok")], names
    assert ("tools.ts-echo", "ok") in names, names


async def test_a_disabled_server_is_marked_and_its_calls_fail_typed(stack, ns):
    async with client(stack["edge"], stack["key"], "create", ns) as c:
        ok(await c.call_tool("set_mcp_server_setting", {"name": "everything", "key": "enabled", "value": False}))
    try:
        sc = completed(await execute(stack, ns, """\
import functions
try:
    functions.mcp__everything__echo(message="off?")
    out = "no error"
except functions.RemoteUnavailable as e:
    out = [type(e).__name__, e.code]
result = {"doc": functions.__doc__, "out": out}
"""))
        assert "[everything] (disabled)\n" in sc["result"]["doc"], sc["result"]["doc"]
        assert sc["result"]["out"] == ["RemoteUnavailable", "MCP_SERVER_DISABLED"], sc["result"]
    finally:
        async with client(stack["edge"], stack["key"], "create", ns) as c:
            ok(await c.call_tool("set_mcp_server_setting", {"name": "everything", "key": "enabled", "value": True}))
