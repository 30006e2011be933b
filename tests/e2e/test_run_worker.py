"""The run endpoint with a real worker: a fresh edge over TLS, a real paddock-worker that
dials it (`serve --edge unix:<edge>/workers.sock --join-token-file <edge>/join.token`)
with real nsjail slots, driven by the official Python `mcp` client. The seed's common
pattern (make_namespace → make_service → make_function from hello-world → execute
`from functions import hello`), tool mode, and the execution records."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import subprocess
import threading
import time

import pytest

from conftest import REPO, Edge, client, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"

NSJAIL_DIR = pathlib.Path("/opt/paddock/bin")


def worker_bin() -> pathlib.Path | None:
    if os.environ.get("PADDOCK_WORKER_BIN"):
        return pathlib.Path(os.environ["PADDOCK_WORKER_BIN"])
    for target in [os.environ.get("CARGO_TARGET_DIR"), REPO / "target"]:
        if target:
            p = pathlib.Path(target)
            p = p if p.is_absolute() else REPO / p
            if (p / "debug" / "paddock-worker").exists():
                return p / "debug" / "paddock-worker"
    return None


class Worker:
    def __init__(self, edge: Edge, data_dir: pathlib.Path, binary: pathlib.Path):
        env = dict(os.environ)
        env["PATH"] = f"{NSJAIL_DIR}:{env.get('PATH', '')}"
        env.setdefault("PADDOCK_WORKER_DEFAULT_POOL_TARGET", "1")
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--edge", f"unix:{edge.data_dir / 'workers.sock'}",
             "--join-token-file", str(edge.data_dir / "join.token"), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    binary = worker_bin()
    if binary is None:
        pytest.skip("paddock-worker not built (cargo build -p paddock-worker)")
    if shutil.which("nsjail", path=f"{NSJAIL_DIR}:{os.environ.get('PATH', '')}") is None:
        pytest.skip("nsjail missing: run deploy/install-deps.sh")
    help_text = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True).stdout
    if "--join-token-file" not in help_text:
        pytest.skip("this paddock-worker cannot dial an edge yet")
    probe = subprocess.run(
        [str(binary), "exec", "--code", "result = 1", "--data-dir", str(tmp_path_factory.mktemp("probe"))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{NSJAIL_DIR}:{os.environ.get('PATH', '')}"},
    )
    if probe.returncode != 0:
        pytest.skip(f"the sandbox does not run on this machine (paddock-worker exec): {probe.stdout[-400:]}")
    edge = Edge(tmp_path_factory.mktemp("edge-run"))
    worker = Worker(edge, tmp_path_factory.mktemp("worker-run"), binary)
    yield edge, worker
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
