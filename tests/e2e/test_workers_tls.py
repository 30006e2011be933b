"""The worker link over TCP with TLS between the real binaries, driven by the official
Python `mcp` client: `paddock-edge serve` with `PADDOCK_EDGE_WORKERS_LISTEN` serves its
generated certificate to workers; `paddock-worker serve --edge tls:127.0.0.1:PORT --edge-ca
<edge>/tls/cert.pem` joins and runs `execute` (the default server name is the IP, which the
development certificate carries); a worker with a wrong --edge-server-name is refused with an
error naming the flag and never joins."""

from __future__ import annotations

import uuid

import pytest

from conftest import (EDGE_TEST_ENV, Edge, Worker, client, completed, free_port, make_functions,
                      sandbox_skip_reason)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


def tls_worker(edge: Edge, port: int, data_dir, *extra: str) -> Worker:
    """A worker dialing the edge's TLS listener on `port`, trusting its certificate."""
    return Worker(edge, data_dir, edge_addr=f"tls:127.0.0.1:{port}", extra=("--edge-ca", edge.cacert, *extra))


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
    w = tls_worker(edge, port, tmp_path_factory.mktemp("worker-tls"))
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
    w = tls_worker(edge, port, tmp_path_factory.mktemp("worker-wrong"), "--edge-server-name", "wrong.example")
    try:
        w.wait_line("cannot join the edge over TLS")
        text = "\n".join(w.lines)
        assert "--edge-server-name" in text and "wrong.example" in text, text[-2000:]
        assert "joined the edge" not in text
    finally:
        w.stop()
