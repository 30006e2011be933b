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

import asyncio
import contextlib
import json
import os
import pathlib
import shutil
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


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (the daemons drain and exit), SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        stop_process(self.proc)


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


# --- Real workers (run endpoint end to end) -------------------------------------------
#
# `RunStack`: a fresh edge plus real `paddock-worker serve` processes that dial it over
# `<edge>/workers.sock` with the join token, each with real nsjail slots. Tests using it
# are skipped (with the reason) where the worker is not built or the sandbox cannot run.

NSJAIL_DIR = pathlib.Path("/opt/paddock/bin")

# Small pools keep the worker's start-up (and CI's 2 cores) cheap: the admin account is on
# the enterprise tier, whose pools these tests use; the free tier serves registered accounts.
WORKER_TEST_ENV = {
    "PADDOCK_WORKER_DEFAULT_POOL_TARGET": "1",
    "PADDOCK_WORKER_POOL_FREE_PYTHON": "1",
    "PADDOCK_WORKER_POOL_FREE_TYPESCRIPT": "1",
    "PADDOCK_WORKER_POOL_ENTERPRISE_PYTHON": "2",
    "PADDOCK_WORKER_POOL_ENTERPRISE_TYPESCRIPT": "2",
    # `execution received` (debug) tells a test that an execution reached the worker.
    "PADDOCK_WORKER_LOG": "info,paddock_worker::link=debug",
    "RUST_LOG": "info,paddock_worker::link=debug",
}

# The admin account (enterprise tier) drives these tests harder than a person would: the
# 200-change loop alone makes ~200 create-tool changes in seconds, over the tier's
# management burst.
EDGE_TEST_ENV = {
    "PADDOCK_EDGE_LIMITS_ENTERPRISE_MANAGEMENT_BURST": "2000",
    "PADDOCK_EDGE_LIMITS_ENTERPRISE_MANAGEMENT_PER_MINUTE": "20000",
}


def worker_bin() -> pathlib.Path | None:
    if os.environ.get("PADDOCK_WORKER_BIN"):
        return pathlib.Path(os.environ["PADDOCK_WORKER_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    p = target / "debug" / "paddock-worker"
    return p if p.exists() else None


def _sandbox_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{NSJAIL_DIR}:{env.get('PATH', '')}"
    env.update(extra or {})
    return env


_SANDBOX_CHECK: dict[str, str | None] = {}


def sandbox_skip_reason(scratch: pathlib.Path) -> str | None:
    """Why real workers cannot run here (None when they can); checked once per session."""
    if "reason" in _SANDBOX_CHECK:
        return _SANDBOX_CHECK["reason"]
    binary = worker_bin()
    reason = None
    if binary is None or not binary.exists():
        reason = f"paddock-worker not built ({binary or 'cargo build -p paddock-worker'})"
    elif shutil.which("nsjail", path=f"{NSJAIL_DIR}:{os.environ.get('PATH', '')}") is None:
        reason = "nsjail missing: run deploy/install-deps.sh"
    else:
        help_text = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True).stdout
        if "--join-token-file" not in help_text:
            reason = "this paddock-worker cannot dial an edge"
        else:
            probe = subprocess.run(
                [str(binary), "exec", "--code", "result = 1", "--data-dir", str(scratch)],
                capture_output=True, text=True, timeout=120, env=_sandbox_env(),
            )
            if probe.returncode != 0:
                reason = f"the sandbox does not run here (paddock-worker exec): {probe.stdout[-400:]}"
    _SANDBOX_CHECK["reason"] = reason
    return reason


class Worker:
    """A running `paddock-worker serve` joined (or joining) to an edge."""

    def __init__(self, edge: Edge, data_dir: pathlib.Path, env: dict[str, str] | None = None,
                 edge_addr: str | None = None, extra: tuple[str, ...] = ()):
        """`edge_addr`: what `--edge` dials (default the edge's `workers.sock`); `extra`:
        more `serve` arguments (`--edge-ca`, `--edge-server-name`, …)."""
        binary = worker_bin()
        assert binary is not None
        self.edge = edge
        self.data_dir = data_dir
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--edge", edge_addr or f"unix:{edge.data_dir / 'workers.sock'}",
             "--join-token-file", str(edge.data_dir / "join.token"), "--data-dir", str(data_dir), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_sandbox_env({**WORKER_TEST_ENV, **(env or {})}),
        )
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def worker_id(self) -> str:
        """The id the worker joins with (`worker-<pid>`), as execution records show it."""
        return f"worker-{self.proc.pid}"

    def _drain(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_line(self, text: str, after: int = 0, timeout: float = 60) -> None:
        """Waits until at least `after + 1` log lines contain `text`."""
        deadline = time.monotonic() + timeout
        while self.count(text) <= after:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited (waiting for {text!r}):\n" + "\n".join(self.lines[-40:]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} from the worker in {timeout} s:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.01)

    def wait_joined(self, timeout: float = 60) -> None:
        self.wait_line("joined the edge", timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


class RunStack:
    """An edge of its own and the workers a test starts on it."""

    def __init__(self, tmp_path_factory, name: str):
        self.tmp = tmp_path_factory
        self.edge = Edge(tmp_path_factory.mktemp(f"edge-{name}"), EDGE_TEST_ENV)
        self.key = self.edge.admin_key()
        self.workers: list[Worker] = []

    def worker(self, data_dir: pathlib.Path | None = None, env: dict[str, str] | None = None,
               wait: bool = True) -> Worker:
        w = Worker(self.edge, data_dir or self.tmp.mktemp("worker"), env)
        self.workers.append(w)
        if wait:
            w.wait_joined()
        return w

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.edge.stop()


@pytest.fixture(scope="module")
def run_stack(request, tmp_path_factory):
    """A module's own edge with one real worker joined (`run_stack.workers[0]`)."""
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    s = RunStack(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1][-24:])
    try:
        s.worker()
        yield s
    finally:
        s.close()


async def make_functions(edge: Edge, key: str, ns: str, functions: list[dict], service: str = "tools") -> None:
    """make_namespace + make_service + make_function for each of `functions`."""
    async with client(edge, key, "create", ns) as c:
        ok(await c.call_tool("make_namespace", {"name": ns}))
        ok(await c.call_tool("make_service", {"name": service}))
        for f in functions:
            ok(await c.call_tool("make_function", {"service": service, "backend": "code_sandbox", **f}))


async def list_records(edge: Edge, key: str, ns: str, count: int, timeout: float = 10, **filters) -> list[dict]:
    """The newest execution records of `ns`, once at least `count` are written (they are
    written off the hot path)."""
    deadline = time.monotonic() + timeout
    async with client(edge, key, "create", ns) as c:
        while True:
            recs = ok(await c.call_tool("list_executions", {"limit": 100, **filters}))
            if recs["count"] >= count or time.monotonic() > deadline:
                return recs["executions"]
            await asyncio.sleep(0.02)


def completed(result) -> dict:
    """The structured result of an execution that completed (with its error otherwise)."""
    sc = result.structured_content or {}
    assert not result.is_error and sc.get("status") == "completed", sc
    return sc
