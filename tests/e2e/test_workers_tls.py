"""The worker link over TCP with TLS between the real binaries, driven by the official
Python `mcp` client: `paddock-edge serve` with `PADDOCK_EDGE_WORKERS_LISTEN` serves its
generated certificate to workers; `paddock-worker serve --edge tls:127.0.0.1:PORT --edge-ca
<edge>/tls/cert.pem` joins and runs `execute` (the default server name is the IP, which the
development certificate carries); a worker with a wrong --edge-server-name is refused with an
error naming the flag and never joins."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pytest

from conftest import (EDGE_TEST_ENV, WORKER_TEST_ENV, Edge, _sandbox_env, client, completed, free_port,
                      make_functions, sandbox_skip_reason, worker_bin)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


class TlsWorker:
    def __init__(self, edge: Edge, port: int, data_dir, *extra: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(worker_bin()), "serve", "--edge", f"tls:127.0.0.1:{port}", "--edge-ca", edge.cacert,
             "--join-token-file", str(edge.data_dir / "join.token"), "--data-dir", str(data_dir), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_sandbox_env(WORKER_TEST_ENV),
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the worker:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def tls_edge(tmp_path_factory):
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    port = free_port()
    edge = Edge(tmp_path_factory.mktemp("edge-tls"), {**EDGE_TEST_ENV, "PADDOCK_EDGE_WORKERS_LISTEN": f"127.0.0.1:{port}"})
    try:
        yield edge, port
    finally:
        edge.stop()


async def test_a_worker_joins_over_tls_and_runs(tls_edge, tmp_path_factory):
    edge, port = tls_edge
    assert any("listening for workers (tcp, tls)" in line for line in edge.lines), edge.lines[-20:]
    w = TlsWorker(edge, port, tmp_path_factory.mktemp("worker-tls"))
    try:
        w.wait_line("joined the edge")
        ns = f"tls-{uuid.uuid4().hex[:8]}"
        await make_functions(edge, edge.admin_key(), ns, [{"name": "hello", "template": "hello-world"}])
        async with client(edge, edge.admin_key(), "run", ns) as c:
            r = await c.call_tool("execute", {"code": 'from functions import hello\nresult = hello(name="TLS")'})
        assert completed(r)["result"] == {"greeting": "Hello, TLS!"}
    finally:
        w.stop()


async def test_a_wrong_server_name_is_refused_and_named(tls_edge, tmp_path_factory):
    edge, port = tls_edge
    w = TlsWorker(edge, port, tmp_path_factory.mktemp("worker-wrong"), "--edge-server-name", "wrong.example")
    try:
        w.wait_line("cannot join the edge over TLS")
        text = "\n".join(w.lines)
        assert "--edge-server-name" in text and "wrong.example" in text, text[-2000:]
        assert "joined the edge" not in text
    finally:
        w.stop()
