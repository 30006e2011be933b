"""Remote MCP server management through the real edge binary and the official Python MCP
client: add (against tests/node/mcp-test-server.mjs, which wants a bearer token and a
header), list, describe, settings, rules, secrets, refresh, remove — and that no reply and
no data file carries the token; the SSRF guard without the allow list; `paddock-edge admin
rotate-kek` and the refusal to start without the KEK."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import subprocess
import threading

import pytest

from conftest import REPO, Edge, client, edge_bin, err, ok

NODE_DIR = REPO / "tests" / "node"
TOKEN = "tok-e2e-" + secrets.token_hex(8)
HEADER_VALUE = "hdr-e2e-" + secrets.token_hex(8)

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


class NodeServer:
    def __init__(self):
        env = {"PATH": os.environ.get("PATH", ""), "PORT": "0", "AUTH_TOKEN": TOKEN,
               "REQUIRE_HEADER": f"x-tenant:{HEADER_VALUE}"}
        self.proc = subprocess.Popen(["node", "mcp-test-server.mjs"], cwd=NODE_DIR, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert line.startswith("PADDOCK_LISTENING "), line
        self.port = int(line.split()[1])
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def write_kek(path: pathlib.Path) -> pathlib.Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def server():
    s = NodeServer()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp_servers")
    kek = write_kek(root / "kek.key")
    data = root / "edge"
    env = {"PADDOCK_EDGE_KEK_FILE": str(kek), "PADDOCK_EDGE_ALLOW_PRIVATE_MCP_HOSTS": "127.0.0.1"}
    e = Edge(data, env=env)
    yield e, kek, root
    e.stop()


def no_secret(value) -> None:
    text = str(value)
    assert TOKEN not in text and HEADER_VALUE not in text, text


async def test_manage_a_server_with_the_official_client(stack, server):
    edge, _, _ = stack
    key = edge.admin_key()
    async with client(edge, key, ns="plugins") as c:
        ok(await c.call_tool("make_namespace", {"name": "plugins"}))
        added = ok(await c.call_tool("add_mcp_server", {
            "name": "guarded", "url": server.url, "auth_token": TOKEN,
            "headers": {"X-Tenant": HEADER_VALUE}, "description": "test server"}))
        assert added["tool_count"] >= 5 and added["has_auth_token"] is True
        assert added["header_names"] == ["x-tenant"]
        no_secret(added)
        listed = ok(await c.call_tool("list_mcp_servers", {}))
        assert [s["name"] for s in listed["mcp_servers"]] == ["guarded"]
        no_secret(listed)
        described = ok(await c.call_tool("describe_mcp_server", {"name": "guarded"}))
        assert any(t["function"] == "mcp__guarded__echo_args" for t in described["tools"])
        assert described["settings"]["timeout_seconds"] == 30
        no_secret(described)
        s = ok(await c.call_tool("set_mcp_server_setting", {"name": "guarded", "key": "timeout_seconds", "value": 5}))
        assert s["settings"]["timeout_seconds"] == 5
        err(await c.call_tool("set_mcp_server_setting", {"name": "guarded", "key": "timeout_seconds", "value": 0}),
            "INVALID_ARGUMENT")
        rule = ok(await c.call_tool("add_mcp_server_rule", {"name": "guarded", "type": "block_tool", "tools": "fail"}))
        assert rule["id"].startswith("r-")
        rules = ok(await c.call_tool("list_mcp_server_rules", {"name": "guarded"}))
        # The singular spelling is accepted too (not listed).
        assert ok(await c.call_tool("list_mcp_server_rule", {"name": "guarded"})) == rules
        assert rules["count"] == 1
        ok(await c.call_tool("set_secret", {"name": "API_KEY", "value": "sv-" + TOKEN}))
        no_secret(ok(await c.call_tool("list_secrets", {})))
        pinned = ok(await c.call_tool("set_mcp_server_tool", {
            "name": "guarded", "tool": "echo_args", "rename": "search", "pin": {"api_key": {"secret": "API_KEY"}}}))
        assert "api_key" not in pinned["exposed"]["input_schema"]["properties"]
        refreshed = ok(await c.call_tool("refresh_mcp_server", {"name": "guarded"}))
        assert refreshed["changed"] is False
        err(await c.call_tool("add_mcp_server", {"name": "guarded", "url": server.url}), "ALREADY_EXISTS")
        err(await c.call_tool("describe_mcp_server", {"name": "nope"}), "MCP_SERVER_NOT_FOUND")
        err(await c.call_tool("add_mcp_server", {"name": "meta", "url": "http://169.254.169.254/"}),
            "HOST_NOT_ALLOWED")
        # A second server, removed again.
        ok(await c.call_tool("add_mcp_server", {"name": "second", "url": server.url, "auth_token": TOKEN,
                                                "headers": {"x-tenant": HEADER_VALUE}}))
        gone = ok(await c.call_tool("remove_mcp_server", {"name": "second"}))
        assert gone["removed"] is True
    # The data directory holds the token and header only encrypted.
    for p in edge.data_dir.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert TOKEN.encode() not in data and HEADER_VALUE.encode() not in data, p


async def test_loopback_is_refused_without_the_allow_list(tmp_path, server):
    kek = write_kek(tmp_path / "kek.key")
    e = Edge(tmp_path / "edge", env={"PADDOCK_EDGE_KEK_FILE": str(kek)})
    try:
        async with client(e, e.admin_key(), ns="strict") as c:
            ok(await c.call_tool("make_namespace", {"name": "strict"}))
            sc = err(await c.call_tool("add_mcp_server", {"name": "local", "url": server.url, "auth_token": TOKEN}),
                     "HOST_NOT_ALLOWED")
            assert "--allow-private-mcp-hosts" in sc["message"]
    finally:
        e.stop()


async def test_rotate_kek_and_refuse_to_start_without_it(stack, server):
    edge, kek, root = stack
    key = edge.admin_key()
    async with client(edge, key, ns="rot") as c:
        ok(await c.call_tool("make_namespace", {"name": "rot"}))
        ok(await c.call_tool("add_mcp_server", {"name": "guarded", "url": server.url, "auth_token": TOKEN,
                                                "headers": {"x-tenant": HEADER_VALUE}}))
    edge.stop()
    data = edge.data_dir
    base = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_EDGE_")}
    # Without the KEK the edge refuses to start and names the setting.
    r = subprocess.run([str(edge_bin()), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
                       env=base, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "kek_file" in r.stderr and "PADDOCK_EDGE_KEK_FILE" in r.stderr, r.stderr
    # Rotation with a bad new key file changes nothing; with a good one every key moves.
    bad = root / "bad.key"
    bad.write_text("not hex\n")
    r = subprocess.run([str(edge_bin()), "admin", "rotate-kek", "--data-dir", str(data), "--new-kek-file", str(bad)],
                       env={**base, "PADDOCK_EDGE_KEK_FILE": str(kek)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    new = write_kek(root / "new.key")
    r = subprocess.run([str(edge_bin()), "admin", "rotate-kek", "--data-dir", str(data), "--new-kek-file", str(new)],
                       env={**base, "PADDOCK_EDGE_KEK_FILE": str(kek)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "rewrapped" in r.stdout
    # The old KEK no longer starts it; the new one does, and the server still works.
    r = subprocess.run([str(edge_bin()), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
                       env={**base, "PADDOCK_EDGE_KEK_FILE": str(kek)}, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "key-encryption key" in r.stderr, r.stderr
    e2 = Edge(data, env={"PADDOCK_EDGE_KEK_FILE": str(new), "PADDOCK_EDGE_ALLOW_PRIVATE_MCP_HOSTS": "127.0.0.1"})
    try:
        async with client(e2, key, ns="rot") as c:
            refreshed = ok(await c.call_tool("refresh_mcp_server", {"name": "guarded"}))
            assert refreshed["tool_count"] >= 5
    finally:
        e2.stop()
