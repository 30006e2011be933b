"""Every create tool and its typed errors, through the official Python client over TLS,
alternating the path and subdomain routing forms."""

import uuid

import pytest

from conftest import client, err, ok

pytestmark = pytest.mark.anyio

CODE_LIMIT = 100 * 1024


@pytest.fixture
def anyio_backend():
    return "asyncio"


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_ns(edge, key, form="path") -> str:
    ns = fresh("ns")
    async with client(edge, key, "create", ns, form) as c:
        ok(await c.call_tool("make_namespace", {"name": ns}))
    return ns


@pytest.mark.parametrize("form", ["path", "subdomain"])
async def test_namespace_lifecycle(edge, admin_key, form):
    ns = fresh("life")
    async with client(edge, admin_key, "create", ns, form) as c:
        made = ok(await c.call_tool("make_namespace", {"name": ns, "description": "d"}))
        assert made["name"] == ns
        err(await c.call_tool("make_namespace", {"name": ns}), "ALREADY_EXISTS")
        listed = ok(await c.call_tool("list_namespaces", {}))
        assert ns in [n["name"] for n in listed["namespaces"]]
        err(await c.call_tool("make_namespace", {"name": "Bad_Name"}), "INVALID_NAME")
        err(await c.call_tool("make_namespace", {}), "INVALID_ARGUMENT")


async def test_service_before_namespace_is_namespace_not_found(edge, admin_key):
    ghost = fresh("ghost")
    async with client(edge, admin_key, "create", ghost) as c:
        sc = err(await c.call_tool("make_service", {"name": "svc"}), "NAMESPACE_NOT_FOUND")
    assert "make_namespace" in sc["message"]


@pytest.mark.parametrize("form", ["path", "subdomain"])
async def test_service_lifecycle_with_confirmation(edge, admin_key, form):
    ns = await make_ns(edge, admin_key, form)
    async with client(edge, admin_key, "create", ns, form) as c:
        ok(await c.call_tool("make_service", {"name": "billing", "description": "money"}))
        err(await c.call_tool("make_service", {"name": "billing"}), "ALREADY_EXISTS")
        err(await c.call_tool("make_service", {"name": "-bad"}), "INVALID_NAME")
        services = ok(await c.call_tool("list_services", {}))["services"]
        assert [s["name"] for s in services] == ["billing"]
        assert services[0]["function_count"] == 0
        ok(await c.call_tool("make_function", {"service": "billing", "name": "f1", "backend": "code_sandbox", "code": "result = 1"}))
        first = ok(await c.call_tool("delete_service", {"name": "billing"}))
        assert first["confirmation_required"] is True
        token = first["confirmation_token"]
        err(await c.call_tool("delete_service", {"name": "billing", "confirmation_token": "wrong"}), "CONFIRMATION_INVALID")
        done = ok(await c.call_tool("delete_service", {"name": "billing", "confirmation_token": token}))
        assert done["deleted"] is True
        assert ok(await c.call_tool("list_services", {}))["services"] == []
        err(await c.call_tool("delete_service", {"name": "billing"}), "SERVICE_NOT_FOUND")


async def test_function_lifecycle_and_versioning(edge, admin_key):
    ns = await make_ns(edge, admin_key)
    async with client(edge, admin_key, "create", ns, "subdomain") as c:
        ok(await c.call_tool("make_service", {"name": "svc"}))
        made = ok(await c.call_tool("make_function", {
            "service": "svc", "name": "add-one", "backend": "code_sandbox",
            "code": "def main(input_data):\n    return input_data['x'] + 1\n",
            "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "tags": ["math"], "requirements": ["requests"],
        }))
        assert made["version"] == 1
        err(await c.call_tool("make_function", {"service": "svc", "name": "add-one", "backend": "code_sandbox", "code": "x"}), "ALREADY_EXISTS")
        # description/tags only: no new version
        same = ok(await c.call_tool("update_function", {"service": "svc", "name": "add-one", "description": "adds one", "tags": ["math", "demo"]}))
        assert same["version"] == 1
        # code change: v2
        v2 = ok(await c.call_tool("update_function", {"service": "svc", "name": "add-one", "code": "def main(input_data):\n    return input_data['x'] + 2\n"}))
        assert v2["version"] == 2
        # restore v1 → v3 with v1's code
        v3 = ok(await c.call_tool("update_function", {"service": "svc", "name": "add-one", "restore_version": 1}))
        assert v3["version"] == 3
        err(await c.call_tool("update_function", {"service": "svc", "name": "add-one", "restore_version": 9}), "VERSION_NOT_FOUND")
        d = ok(await c.call_tool("describe_function", {"service": "svc", "name": "add-one"}))
        assert d["current_version"] == 3
        assert "+ 1" in d["code"]
        assert [v["version"] for v in d["versions"]] == [1, 2, 3]
        assert d["description"] == "adds one"
        assert d["input_schema"]["properties"]["x"]["type"] == "integer"
        listed = ok(await c.call_tool("list_functions", {"service": "svc", "tag": "demo"}))
        assert [f["name"] for f in listed["functions"]] == ["svc.add-one"]
        assert ok(await c.call_tool("list_functions", {"service": "svc", "tag": "nope"}))["functions"] == []
        ok(await c.call_tool("delete_function", {"service": "svc", "name": "add-one"}))
        err(await c.call_tool("describe_function", {"service": "svc", "name": "add-one"}), "FUNCTION_NOT_FOUND")
        err(await c.call_tool("make_function", {"service": "nosvc", "name": "x", "backend": "code_sandbox", "code": "y"}), "SERVICE_NOT_FOUND")
        err(await c.call_tool("update_function", {"service": "svc", "name": "ghost", "code": "y"}), "FUNCTION_NOT_FOUND")


async def test_function_validation_errors(edge, admin_key):
    ns = await make_ns(edge, admin_key)
    async with client(edge, admin_key, "create", ns) as c:
        ok(await c.call_tool("make_service", {"name": "svc"}))
        base = {"service": "svc", "backend": "code_sandbox"}
        err(await c.call_tool("make_function", {**base, "name": "Bad Name", "code": "x"}), "INVALID_NAME")
        err(await c.call_tool("make_function", {**base, "name": "nocode"}), "NO_CODE_PROVIDED")
        err(await c.call_tool("make_function", {**base, "name": "t", "template": "no-such"}), "UNKNOWN_TEMPLATE")
        err(await c.call_tool("make_function", {**base, "name": "b", "backend": "lambda", "code": "x"}), "UNKNOWN_BACKEND")
        err(await c.call_tool("make_function", {**base, "name": "l", "language": "cobol", "code": "x"}), "UNSUPPORTED_LANGUAGE")
        err(await c.call_tool("make_function", {**base, "name": "p", "code": "x", "requirements": ["left-pad"]}), "PACKAGE_NOT_ALLOWED")
        err(await c.call_tool("make_function", {**base, "name": "s", "code": "x", "input_schema": {"type": 12}}), "INVALID_SCHEMA")
        # Code at the edge of the limit: exactly 100 KiB passes, one byte more does not.
        at_limit = "#" * (CODE_LIMIT - 1) + "\n"
        assert len(at_limit.encode()) == CODE_LIMIT
        ok(await c.call_tool("make_function", {**base, "name": "big", "code": at_limit}))
        err(await c.call_tool("make_function", {**base, "name": "big2", "code": at_limit + "x"}), "INPUT_TOO_LARGE")
        err(await c.call_tool("make_function", {**base, "name": "d", "code": "x", "description": "d" * (10 * 1024 + 1)}), "INPUT_TOO_LARGE")
        # Aliases are accepted (bs4 → beautifulsoup4, yaml → pyyaml).
        ok(await c.call_tool("make_function", {**base, "name": "alias", "code": "x", "requirements": ["bs4", "yaml"]}))


async def test_credential_warnings_with_line_numbers(edge, admin_key):
    ns = await make_ns(edge, admin_key)
    code = 'import os\nAWS = "AKIAIOSFODNN7EXAMPLE"\npassword = "hunter2hunter2"\nresult = 1\n'
    async with client(edge, admin_key, "create", ns) as c:
        ok(await c.call_tool("make_service", {"name": "svc"}))
        made = ok(await c.call_tool("make_function", {"service": "svc", "name": "leaky", "backend": "code_sandbox", "code": code}))
    lines = sorted(w["line"] for w in made["warnings"])
    assert 2 in lines and 3 in lines, made["warnings"]
    assert "AKIAIOSFODNN7EXAMPLE" not in str(made["warnings"])


async def test_templates_and_packages(edge, admin_key):
    ns = await make_ns(edge, admin_key)
    async with client(edge, admin_key, "create", ns) as c:
        names = {t["name"] for t in ok(await c.call_tool("list_templates", {}))["templates"]}
        assert {"hello-world", "csv-analyzer", "api-connector", "slack-notifier", "scheduled-report",
                "hello-world-ts", "api-connector-ts", "json-transformer-ts"} <= names
        t = ok(await c.call_tool("describe_template", {"name": "hello-world"}))
        assert t["code"]
        err(await c.call_tool("describe_template", {"name": "nope"}), "UNKNOWN_TEMPLATE")
        pk = ok(await c.call_tool("list_packages", {"language": "python"}))
        assert "requests" in str(pk)
        ok(await c.call_tool("make_service", {"name": "svc"}))
        made = ok(await c.call_tool("make_function", {"service": "svc", "name": "hello", "backend": "code_sandbox", "template": "hello-world"}))
        assert made["template"] == "hello-world"
        made = ok(await c.call_tool("make_function", {"service": "svc", "name": "hello-ts", "backend": "code_sandbox", "template": "hello-world-ts"}))
        assert made["language"] == "typescript"
