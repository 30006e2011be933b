"""TypeScript SDK smoke: tests/node/smoke.mjs (@modelcontextprotocol/sdk 1.32) against the
real edge over TLS, trusting the development certificate via NODE_EXTRA_CA_CERTS."""

import os
import pathlib
import subprocess

import pytest

NODE_DIR = pathlib.Path(__file__).resolve().parents[1] / "node"


@pytest.mark.parametrize("form", ["localhost", "ip"])
def test_typescript_sdk_smoke(edge, admin_key, form):
    if not (NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.skip("tests/node/node_modules missing: run deploy/install-deps.sh (npm ci in tests/node)")
    host = "localhost" if form == "localhost" else "127.0.0.1"
    env = dict(os.environ)
    env.update({
        "PADDOCK_URL": f"https://{host}:{edge.port}/mcp/create/acme",
        "PADDOCK_KEY": admin_key,
        "NODE_EXTRA_CA_CERTS": edge.cacert,
    })
    r = subprocess.run(["node", str(NODE_DIR / "smoke.mjs")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"ok":true' in r.stdout
