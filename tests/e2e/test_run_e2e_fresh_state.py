"""Read-your-writes, 200 times in a tight loop: each iteration changes a function through
the create endpoint (a new immutable version, alternating update_function and
restore_version, or a brand-new function) and executes it at once on the run endpoint; the
execution must always see the change just made — never a stale replica, never a stale
cached `functions` package."""

from __future__ import annotations

import uuid

import pytest

from conftest import client, completed, make_functions, ok

pytestmark = pytest.mark.anyio

ITERATIONS = 200


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


def body(i: int) -> str:
    return f"def main(input_data):\n    return {{'v': {i}, 'x': input_data.get('x')}}\n"


async def test_made_and_executed_200_times_never_stale(run_stack):
    edge, key = run_stack.edge, run_stack.key
    ns = f"fresh-{uuid.uuid4().hex[:8]}"
    await make_functions(edge, key, ns, [{"name": "counter", "language": "python", "code": body(0)}])
    value_of = {1: 0}  # version of `counter` → the value its body returns
    async with client(edge, key, "create", ns) as create, client(edge, key, "run", ns) as run, \
            client(edge, key, "run", ns, "path", "mode=tools") as tools:
        for i in range(1, ITERATIONS + 1):
            if i % 10 == 0:
                # A brand-new function, importable at once, listed at once in tool mode.
                name = f"made-{i}"
                ok(await create.call_tool("make_function", {
                    "service": "tools", "name": name, "backend": "code_sandbox", "language": "python",
                    "code": body(i)}))
                sc = completed(await run.call_tool("execute", {
                    "code": f"from functions import made_{i}\nresult = made_{i}(x={i})"}))
                assert sc["result"] == {"v": i, "x": i}, (i, sc)
                assert f"tools.{name}" in [t.name for t in (await tools.list_tools()).tools]
                continue
            if i % 7 == 0:
                # restore_version: an older body comes back as a new version.
                old = max(1, max(value_of) - 3)
                up = ok(await create.call_tool("update_function", {
                    "service": "tools", "name": "counter", "restore_version": old}))
                expect = value_of[old]
            else:
                up = ok(await create.call_tool("update_function", {
                    "service": "tools", "name": "counter", "code": body(i)}))
                expect = i
            assert up["new_version"] and up["version"] not in value_of, up
            value_of[up["version"]] = expect
            if i % 2:
                sc = completed(await run.call_tool("execute", {
                    "code": f"from functions import counter\nresult = counter(x={i})"}))
            else:
                sc = completed(await tools.call_tool("tools.counter", {"x": i}))
            assert sc["result"] == {"v": expect, "x": i}, (i, up["version"], sc)
    # Every change made a new version: 1 + the iterations that updated `counter`.
    assert len(value_of) == 1 + ITERATIONS - ITERATIONS // 10
