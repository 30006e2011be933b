"""Paddock functions package runtime: wrappers, call log, search/describe, code loading.

Generated packages import this module and call `load(package_dir)`, which reads the
package's `_catalog.json`. A function
written in Python runs in-process: its source (`_code/<svc>__<fn>.py`, the version that
was current when the package was generated) is compiled once and executed in fresh
globals for every call, then its value is taken by the runner's order: `result`,
`output`, `main(input_data)`, `handler(input_data, context)`. A function written in the
other language goes through `_bridge` (the runner, then the worker).
"""

import builtins
import json
import os
import time
import types

#: Name under which a warm runner may pre-import this very module (from its own copy of
#: the asset) so that `import functions` does not compile it again; `functions/__init__.py`
#: uses it when present, else imports `functions/_runtime.py`.
PREIMPORT_NAME = "_paddock_functions_runtime"

_HERE = None
NAMESPACE = None
_ENTRIES = []
_BY_KEY = {}
_REMOTE = []
_REMOTE_BY_KEY = {}


def load(package_dir):
    """Reads `_catalog.json` of the package in `package_dir` (called by its __init__)."""
    global _HERE, NAMESPACE, _ENTRIES, _BY_KEY, _REMOTE, _REMOTE_BY_KEY
    with open(os.path.join(package_dir, "_catalog.json"), encoding="utf-8") as f:
        catalog = json.load(f)
    _HERE = package_dir
    NAMESPACE = catalog["namespace"]
    _ENTRIES = catalog["functions"]
    _BY_KEY = {e["key"]: e for e in _ENTRIES}
    _REMOTE = catalog.get("remote") or []
    _REMOTE_BY_KEY = {e["key"]: e for e in _REMOTE}


#: Most calls kept in `_calls`; later ones are only counted in `_calls_dropped`.
MAX_CALLS = 1000

#: The call log: one {name, status, duration_ms} per call, in call order. `status` is
#: "running" while the call is under way, then "ok" or the error type.
_calls = []
_calls_dropped = [0]

_compiled = {}


class FunctionCallError(Exception):
    """A function (or remote tool) called through the bridge failed.

    `type` is the error type reported by the callee (e.g. "TypeError", "TimeoutError"),
    `message` its message.
    """

    def __init__(self, type, message):
        super().__init__(type, message)
        self.type = type
        self.message = message

    def __str__(self):
        return f"{self.type}: {self.message}"


class RemoteToolError(FunctionCallError):
    """A remote MCP tool call failed. `code` is the platform's stable error code (e.g.
    "CALL_BUDGET_EXCEEDED"), `server` and `tool` name the call; subclasses say why."""

    def __init__(self, code, message, server=None, tool=None):
        super().__init__(code, message)
        self.code = code
        self.server = server
        self.tool = tool

    def __str__(self):
        where = f"mcp__{self.server}__{self.tool}: " if self.server else ""
        return f"{where}{self.code}: {self.message}"


class RemoteTimeout(RemoteToolError):
    """The server did not answer in time (its timeout_seconds, or the execution's time)."""


class RemoteBlocked(RemoteToolError):
    """A rule of the namespace blocked the call (or a required parameter was missing)."""


class RemoteBudgetExceeded(RemoteToolError):
    """This execution used up the server's max_calls_per_execution."""


class RemoteUnavailable(RemoteToolError):
    """The server is down, disabled, removed, or the bridge is not available."""


class RemoteToolFailed(RemoteToolError):
    """The tool ran and reported an error (MCP `isError`)."""


#: Error code → exception class; other codes raise RemoteToolError itself.
_REMOTE_ERRORS = {
    "MCP_SERVER_TIMEOUT": RemoteTimeout,
    "TimeoutError": RemoteTimeout,
    "RULE_BLOCKED": RemoteBlocked,
    "CALL_BUDGET_EXCEEDED": RemoteBudgetExceeded,
    "MCP_SERVER_UNAVAILABLE": RemoteUnavailable,
    "MCP_SERVER_DISABLED": RemoteUnavailable,
    "MCP_SERVER_NOT_FOUND": RemoteUnavailable,
    "BRIDGE_KEY_INVALID": RemoteUnavailable,
    "WORKER_LOST": RemoteUnavailable,
    "NotSupported": RemoteUnavailable,
    "RuntimeUnavailable": RemoteUnavailable,
    "MCP_TOOL_ERROR": RemoteToolFailed,
}


def remote_error(code, message, server=None, tool=None):
    """The typed exception for a failed remote call with error `code`."""
    cls = _REMOTE_ERRORS.get(code, RemoteToolError)
    return cls(code, message, server, tool)


#: What the last remote call reported: {name, truncated, bytes, latency_ms} (updated in
#: place, so `functions.last_remote_call` is always current).
last_remote_call = {}


def _label(entry):
    return entry["call"] + "()"


def _build_input(entry, args, kwargs):
    """input_data from keyword arguments, positional ones in signature order, or one dict."""
    if len(args) == 1 and not kwargs and isinstance(args[0], dict):
        data = dict(args[0])
    else:
        params = entry["params"]
        if args and params is None:
            raise TypeError(
                f"{_label(entry)} takes keyword arguments or one dict of arguments "
                f"({len(args)} positional given)"
            )
        order = [p["name"] for p in params or ()]
        if len(args) > len(order):
            raise TypeError(
                f"{_label(entry)} takes at most {len(order)} positional argument"
                f"{'' if len(order) == 1 else 's'} ({len(args)} given)"
            )
        data = dict(zip(order, args))
        for key, value in kwargs.items():
            if key in data:
                raise TypeError(f"{_label(entry)} got multiple values for argument '{key}'")
            data[key] = value
    missing = [p["name"] for p in entry["params"] or () if p["required"] and p["name"] not in data]
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        plural = "s" if len(missing) > 1 else ""
        raise TypeError(
            f"{_label(entry)} missing {len(missing)} required argument{plural}: {names} "
            f"(signature: {entry['signature']})"
        )
    return data


def _record(entry):
    record = {"name": entry["qualified"], "status": "running", "duration_ms": 0.0}
    if len(_calls) < MAX_CALLS:
        _calls.append(record)
    else:
        _calls_dropped[0] += 1
    return record


def _invoke(entry, input_data):
    record = _record(entry)
    start = time.perf_counter()
    try:
        if entry["bridged"]:
            from functions import _bridge

            value = _bridge.call_function(NAMESPACE, entry, input_data)
        else:
            value = _run_local(entry, input_data)
    except FunctionCallError as e:
        record["status"] = str(e.type)
        raise
    except BaseException as e:
        record["status"] = type(e).__name__
        raise
    else:
        record["status"] = "ok"
        return value
    finally:
        record["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)


def _code(entry):
    path = os.path.join(_HERE, *entry["file"].split("/"))
    code = _compiled.get(path)
    if code is None:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        code = compile(source, path, "exec", dont_inherit=True)
        _compiled[path] = code
    return path, code


def _call_with(fn, *args):
    """Calls fn with as many of args as it accepts (main() without parameters works)."""
    code = getattr(fn, "__code__", None)
    if code is not None and not (code.co_flags & 0x0C):  # no *args / **kwargs
        takes = code.co_argcount - (1 if hasattr(fn, "__self__") else 0)
        args = args[: max(0, takes)]
    return fn(*args)


def _await(value):
    """The value of a coroutine; in a thread of its own when a loop is already running."""
    if not isinstance(value, types.CoroutineType):
        return value
    import asyncio
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(value)
    box = {}

    def run():
        try:
            box["value"] = asyncio.run(value)
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller)
            box["error"] = e

    t = threading.Thread(target=run, name="paddock-function")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _run_local(entry, input_data):
    path, code = _code(entry)
    g = {
        "__builtins__": builtins,
        "__name__": f"functions.{entry['service_ident']}.{entry['ident']}",
        "__file__": path,
        "input_data": input_data,
    }
    exec(code, g)
    context = {
        "namespace": NAMESPACE,
        "service": entry["service"],
        "function": entry["name"],
        "version": entry["version"],
    }
    if "result" in g:
        value = g["result"]
    elif "output" in g:
        value = g["output"]
    elif callable(g.get("main")):
        value = _call_with(g["main"], input_data)
    elif callable(g.get("handler")):
        value = _call_with(g["handler"], input_data, context)
    else:
        value = None
    return _await(value)


def wrapper(key):
    """The callable for the function `key` (`service_ident.ident`)."""
    entry = _BY_KEY[key]

    def call(*args, **kwargs):
        return _invoke(entry, _build_input(entry, args, kwargs))

    call.__name__ = entry["ident"]
    call.__qualname__ = entry["ident"]
    call.__module__ = "functions." + entry["service_ident"]
    doc = entry["signature"]
    if entry["description"]:
        doc += " — " + entry["description"]
    call.__doc__ = doc
    return call


def _invoke_remote(entry, input_data):
    from functions import _bridge

    try:
        reply = _bridge.call(
            _bridge.TARGET_MCP,
            {
                "namespace": NAMESPACE,
                "server": entry["server"],
                "tool": entry["tool"],
                "input": input_data,
            },
        )
    except FunctionCallError as e:
        raise remote_error(e.type, e.message, entry["server"], entry["tool"]) from None
    if not isinstance(reply, dict) or "value" not in reply:
        raise RemoteToolError("PROTOCOL_ERROR", "malformed bridge answer", entry["server"], entry["tool"])
    last_remote_call.clear()
    last_remote_call.update(
        {
            "name": entry["key"],
            "truncated": bool(reply.get("truncated")),
            "bytes": reply.get("bytes", 0),
            "latency_ms": reply.get("latency_ms", 0),
        }
    )
    return reply["value"]


def remote_wrapper(key):
    """The callable for the remote MCP tool `key` (`mcp__server__tool`)."""
    entry = _REMOTE_BY_KEY[key]

    def call(*args, **kwargs):
        return _invoke_remote(entry, _build_input(entry, args, kwargs))

    call.__name__ = key
    call.__qualname__ = key
    call.__module__ = "functions._mcp"
    doc = entry["signature"]
    if entry["description"]:
        doc += " — " + entry["description"]
    call.__doc__ = doc
    return call


def call_by_name(service, function, input_data):
    """Calls `service.function` (original names) with `input_data` as its arguments
    (tool mode: the worker's generated snippet calls this)."""
    for e in _ENTRIES:
        if e["service"] == service and e["name"] == function:
            return wrapper(e["key"])(dict(input_data or {}))
    raise LookupError(f"no function {service}.{function} in namespace {NAMESPACE}")


def search(query, limit=20):
    """Functions and remote MCP tools matching every word of `query` (case-insensitive)
    in their name, service (server) or description, best first: [{name, service, function,
    signature, description, language}]. `name` is how to call it from the package;
    remote tools have language "mcp"."""
    from functions import _discover

    return _discover.search(_ENTRIES + _REMOTE, query, limit)


def describe(name):
    """Everything about one function (`hello`, `greetings.hello` or `greetings-svc.hello`):
    {name, service, function, signature, description, qualified, input_schema, language,
    version}. Raises LookupError for an unknown or ambiguous name."""
    from functions import _discover

    return _discover.describe(_ENTRIES + _REMOTE, NAMESPACE, name)
