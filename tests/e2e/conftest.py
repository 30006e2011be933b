"""Fixtures for the end-to-end suite: the real paddock-edge binary over real TLS, driven
by the official Python `mcp` client (2.x).

Binary: $PADDOCK_EDGE_BIN, else $CARGO_TARGET_DIR/debug/paddock-edge, else
<repo>/target/debug/paddock-edge (build it first: `cargo build -p paddock-edge`).

Subdomain routing form: the test must reach 127.0.0.1 while the client sends SNI and
Host `acme.create.localhost`. glibc does not resolve `*.localhost`, so the suite
installs a tiny resolver override (socket.getaddrinfo maps `*.localhost` to 127.0.0.1)
in the test process: the client still verifies the certificate for the real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client

REPO = pathlib.Path(__file__).resolve().parents[2]

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if isinstance(name, str) and name.endswith(".localhost"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


def edge_bin() -> pathlib.Path:
    if os.environ.get("PADDOCK_EDGE_BIN"):
        return pathlib.Path(os.environ["PADDOCK_EDGE_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "paddock-edge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Edge:
    """A running paddock-edge with its own data dir."""

    def __init__(self, data_dir: pathlib.Path, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.lines: list[str] = []
        full_env = dict(os.environ)
        full_env["PADDOCK_EDGE_GRACE_PERIOD_SECS"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(edge_bin()), "serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_ready()

    def _drain(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def cacert(self) -> str:
        return str(self.data_dir / "tls" / "cert.pem")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cacert)

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("edge exited early:\n" + "\n".join(self.lines))
            try:
                if os.path.exists(self.cacert):
                    with urllib.request.urlopen(
                        f"https://localhost:{self.port}/v1/health/ready", context=self.ssl_context(), timeout=2
                    ) as r:
                        if r.status == 200:
                            return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("edge not ready in 30 s:\n" + "\n".join(self.lines))

    def admin_key(self) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith("admin API key"):
                    return line.rsplit(" ", 1)[1]
            time.sleep(0.02)
        key_file = self.data_dir / "admin.key"
        return key_file.read_text().strip()

    def url(self, endpoint: str, ns: str, form: str = "path", query: str = "") -> str:
        q = f"?{query}" if query else ""
        if form == "path":
            return f"https://localhost:{self.port}/mcp/{endpoint}/{ns}{q}"
        return f"https://{ns}.{endpoint}.localhost:{self.port}/mcp{q}"

    def rest(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        with httpx2.Client(verify=self.ssl_context()) as c:
            r = c.request(method, f"https://localhost:{self.port}{path}", json=body, headers=headers)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def edge(tmp_path_factory) -> Edge:
    e = Edge(tmp_path_factory.mktemp("edge"))
    yield e
    e.stop()


@pytest.fixture(scope="session")
def admin_key(edge) -> str:
    return edge.admin_key()


@contextlib.asynccontextmanager
async def client(edge: Edge, key: str, endpoint: str = "create", ns: str = "acme", form: str = "path", query: str = ""):
    """An official-SDK MCP client connected to one endpoint of one namespace."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, verify=edge.ssl_context(), timeout=30) as hc:
        async with mcp.Client(streamable_http_client(edge.url(endpoint, ns, form, query), http_client=hc)) as c:
            yield c


def ok(result) -> dict:
    """The structured content of a successful tool call."""
    assert not result.is_error, f"tool failed: {result.content[0].text if result.content else result}"
    sc = result.structured_content
    assert json.loads(result.content[0].text) == sc
    return sc


def err(result, code: str) -> dict:
    """Asserts a typed tool error with `code`; returns the structured content."""
    assert result.is_error, f"expected {code}, got success: {result.structured_content}"
    sc = result.structured_content
    assert sc["code"] == code, f"expected {code}, got {sc}"
    assert result.content[0].text.startswith(f"{code}: "), result.content[0].text
    assert sc["message"], sc
    return sc
