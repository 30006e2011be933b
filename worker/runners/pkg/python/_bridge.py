"""Calls the package cannot make in-process (a function in the other language, a remote
MCP tool: target "mcp", see `_runtime.remote_wrapper`), made through the runner:
`import _paddock; _paddock.call(target, args)`.

Contract with the runner: `_paddock.call(target, args)` sends a slot-protocol `call`
frame `{id, target, args}` and blocks for its `call_result`; it returns `value`, or
raises `_paddock.CallError` carrying the `error` object `{type, message}` (as its first
argument or as `type`/`message` attributes).
"""

import ast

from functions._runtime import FunctionCallError

TARGET_FUNCTION = "function"
TARGET_MCP = "mcp"


def _runtime():
    try:
        import _paddock
    except ImportError:
        raise FunctionCallError(
            "RuntimeUnavailable",
            "cross-language calls need the Paddock runner (module _paddock is missing)",
        ) from None
    return _paddock


def _error(e):
    kind = getattr(e, "type", None)
    message = getattr(e, "message", None)
    if isinstance(kind, str):
        return FunctionCallError(kind, str(message if message is not None else e))
    detail = e.args[0] if e.args else None
    if isinstance(detail, str) and detail.startswith("{"):
        try:
            detail = ast.literal_eval(detail)
        except (ValueError, SyntaxError):
            pass
    if isinstance(detail, dict):
        return FunctionCallError(str(detail.get("type", "CallError")), str(detail.get("message", "")))
    return FunctionCallError("CallError", str(e))


def call(target, args):
    """One call through the runner; raises FunctionCallError when the callee failed."""
    rt = _runtime()
    call_error = getattr(rt, "CallError", None)
    try:
        return rt.call(target, args)
    except Exception as e:
        if isinstance(call_error, type) and isinstance(e, call_error):
            raise _error(e) from None
        raise


def call_function(namespace, entry, input_data):
    """Runs a function of the other language (the version the package lists)."""
    return call(
        TARGET_FUNCTION,
        {
            "namespace": namespace,
            "service": entry["service"],
            "function": entry["name"],
            "language": entry["language"],
            "version": entry["version"],
            "input": input_data,
        },
    )
