"""Workers coming and going under a real edge, driven by the official Python `mcp` client:
a worker restarted after the state changed catches up before it runs anything; a worker
SIGKILLed during an execution yields a typed `WORKER_LOST` at once (no hang, no retry) and
the next execution works once a worker rejoins; two workers joined to one edge share
concurrent executions (each execution record names the worker that ran it)."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from conftest import RunStack, client, completed, err, list_records, make_functions, ok, sandbox_skip_reason

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An edge of this module's own (tests here kill and restart its workers)."""
    reason = sandbox_skip_reason(tmp_path_factory.mktemp("probe"))
    if reason:
        pytest.skip(reason)
    s = RunStack(tmp_path_factory, "workers")
    try:
        yield s
    finally:
        s.close()


def live(stack: RunStack):
    """The running workers, starting one when none is."""
    running = [w for w in stack.workers if w.proc.poll() is None]
    return running or [stack.worker()]


async def execute(stack, ns, code, **extra):
    async with client(stack.edge, stack.key, "run", ns) as c:
        return await c.call_tool("execute", {"code": code, **extra})


def joined_from_seq(worker) -> int:
    for line in worker.lines:
        if "joined the edge" in line:
            m = re.search(r"from_seq=(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
            assert m, line
            return int(m.group(1))
    raise AssertionError("no join line:\n" + "\n".join(worker.lines[-20:]))


async def test_restarted_worker_catches_up_before_it_runs(stack):
    ns = f"catch-{uuid.uuid4().hex[:8]}"
    w = live(stack)[0]
    await make_functions(stack.edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    sc = completed(await execute(stack, ns, 'from functions import hello\nresult = hello(name="A")'))
    assert sc["result"] == {"greeting": "Hello, A!"}

    w.stop()  # SIGTERM: drains and leaves
    err(await execute(stack, ns, "result = 1"), "NO_WORKERS")
    async with client(stack.edge, stack.key, "create", ns) as c:
        ok(await c.call_tool("update_function", {"service": "tools", "name": "hello",
                                                 "code": "def main(input_data):\n    return 'v2 ' + input_data['name']\n"}))
        ok(await c.call_tool("make_service", {"name": "later"}))
        ok(await c.call_tool("make_function", {"service": "later", "name": "added", "backend": "code_sandbox",
                                               "language": "typescript", "code": "export default () => 'added while away'"}))

    # Same data dir: the replica resumes from where it stopped, then catches up.
    back = stack.worker(data_dir=w.data_dir)
    assert joined_from_seq(back) > 1
    code = 'from functions import hello, added\nresult = [hello(name="B"), added()]'
    sc = completed(await execute(stack, ns, code))
    assert sc["result"] == ["v2 B", "added while away"], sc
    assert [c["name"] for c in sc["calls"]] == ["tools.hello", "later.added"]


async def test_worker_killed_mid_execution_is_worker_lost_then_a_new_worker_runs(stack):
    ns = f"kill-{uuid.uuid4().hex[:8]}"
    await make_functions(stack.edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    for w in live(stack)[1:]:
        w.stop()
    victim = live(stack)[0]
    received = victim.count("execution received")
    call = asyncio.create_task(execute(stack, ns, "import time\ntime.sleep(120)\nresult = 'never'"))
    await asyncio.to_thread(victim.wait_line, "execution received", received)
    victim.kill()
    # Bounded only so a regression fails instead of hanging the suite (the sleep is 120 s).
    r = await asyncio.wait_for(call, 60)
    sc = err(r, "WORKER_LOST")
    assert victim.worker_id in sc["message"] and "not retried" in sc["message"], sc
    recs = await list_records(stack.edge, stack.key, ns, 1)
    assert recs[0]["status"] == "error" and recs[0]["error_type"] == "WORKER_LOST", recs

    err(await execute(stack, ns, "result = 1"), "NO_WORKERS")
    stack.worker()
    sc = completed(await execute(stack, ns, 'from functions import hello\nresult = hello(name="again")'))
    assert sc["result"] == {"greeting": "Hello, again!"}


async def test_two_workers_share_concurrent_executions(stack):
    ns = f"share-{uuid.uuid4().hex[:8]}"
    await make_functions(stack.edge, stack.key, ns, [{"name": "hello", "template": "hello-world"}])
    workers = live(stack)
    while len(workers) < 2:
        stack.worker()
        workers = live(stack)
    ids = {w.worker_id for w in workers[:2]}
    # Executions that overlap (each runs 1 s, longer than it takes to send all of them even
    # on a loaded machine): the edge sends each to the less loaded of the two.
    n = 8
    code = 'import time\nfrom functions import hello\ntime.sleep(1)\nresult = hello(name="s")'
    results = await asyncio.gather(*(execute(stack, ns, code) for _ in range(n)))
    for r in results:
        assert completed(r)["result"] == {"greeting": "Hello, s!"}
    recs = await list_records(stack.edge, stack.key, ns, n)
    assert len(recs) == n, recs
    per_worker = {}
    for rec in recs:
        per_worker[rec["worker"]] = per_worker.get(rec["worker"], 0) + 1
    assert set(per_worker) == ids, per_worker
    assert min(per_worker.values()) >= 2, per_worker
