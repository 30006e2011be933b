"""Paddock Python runner: one execution per process, spoken over the slot protocol.

Contract: docs/slot-protocol.md. Started (inside the jail) as
    /usr/bin/python3 -I -S -B -X frozen_modules=on /paddock/runner/runner.pyc [--on-demand]
(the worker precompiles runner.py; `-S`: no site, so no .pth file of the system
site-packages runs in the sandbox). Stdlib only. Start-up moves the protocol off fds 0/1,
stacks the exec filter, sends `ready`, then serves exactly one `execute` with exactly one
`result` frame, waits for the worker to close the request pipe (or kill the slot) and exits
0 without running interpreter shutdown.

A pooled slot (no flag) also imports the modules user code commonly needs and runs one dry
execution before `ready`, so `ready` means warm; a slot started for an execution that is
waiting (`--on-demand`) skips both, since nothing can hide their cost there. Everything the
runner needs only in some executions (traceback, asyncio, the result converters' modules)
is imported on first use.
"""

import os
import sys

# --- protocol fds first, before anything can write to fd 1 -------------------------
# Either the launcher already moved them (PADDOCK_PROTOCOL_FDS="R,W": requests on fd R,
# responses on fd W, fds 0/1/2 arranged), or the runner moves them itself.
def _protocol_fds():
    given = os.environ.pop("PADDOCK_PROTOCOL_FDS", None)
    if given:
        try:
            req, resp = (int(x) for x in given.split(","))
            os.fstat(req)
            os.fstat(resp)
        except (ValueError, OSError) as e:
            os.write(2, f"paddock runner: bad PADDOCK_PROTOCOL_FDS {given!r}: {e}\n".encode())
            os._exit(2)
        os.set_inheritable(req, False)
        os.set_inheritable(resp, False)
        return req, resp
    req = os.dup(0)
    resp = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return req, resp


_REQ_FD, _RESP_FD = _protocol_fds()

import _json  # noqa: E402
import _posixsubprocess  # noqa: E402
import _thread  # noqa: E402
import binascii  # noqa: E402
import builtins  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import types  # noqa: E402

ON_DEMAND = "--on-demand" in sys.argv[1:]
if not ON_DEMAND:
    # A pooled slot: what user code commonly imports is loaded before `ready` (off the
    # execution path). The runner itself does not depend on these.
    import collections  # noqa: E402,F401
    import dataclasses  # noqa: E402,F401
    import datetime  # noqa: E402,F401
    import decimal  # noqa: E402,F401
    import enum  # noqa: E402,F401
    import functools  # noqa: E402,F401
    import json  # noqa: E402,F401
    import linecache  # noqa: E402,F401
    import pathlib  # noqa: E402,F401
    import random  # noqa: E402,F401
    import re  # noqa: E402,F401
    import subprocess  # noqa: E402,F401
    import time  # noqa: E402,F401
    import traceback  # noqa: E402,F401
    import typing  # noqa: E402,F401
    import uuid  # noqa: E402,F401

MAX_FRAME = 16 * 1024 * 1024
MAX_RESULT = 1024 * 1024
MAX_STDOUT = 64 * 1024
MAX_STDERR = 64 * 1024
CODE_FILE = "<code>"
# The runner's own frames, trimmed from user tracebacks: the file name compiled into its
# code (runner.py, also when the precompiled runner.pyc is what runs).
RUNNER_FILE = sys._getframe().f_code.co_filename
DENIED = "subprocesses are not allowed in the Paddock sandbox"

_real_exit = os._exit


def _setup_path():
    """Workspace first (generated packages such as `functions`), then the stdlib, then the
    sandbox package dir ($PADDOCK_PYTHON_PACKAGES) ahead of any system site-packages."""
    packages = os.environ.get("PADDOCK_PYTHON_PACKAGES")
    if packages and packages not in sys.path:
        at = next(
            (i for i, p in enumerate(sys.path) if p.endswith(("site-packages", "dist-packages"))),
            len(sys.path),
        )
        sys.path.insert(at, packages)
    sys.path.insert(0, os.getcwd())


_setup_path()
_frame_lock = _thread.allocate_lock()


# --- JSON ----------------------------------------------------------------------------
# The C accelerator of the json package, used directly: `import json` pulls in `re`,
# `enum` and more (about half of a lean start-up), and the C scanner and encoder are what
# json.loads/json.dumps run anyway. Checked once; the json package is the fallback.
class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _no_default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _c_loads(text):
    try:
        value, end = _scan(text, 0)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at character {e.value}") from None
    if end != len(text) and text[end:].strip(" \t\n\r"):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _c_dumps(value, default=None, allow_nan=True):
    encode = _json.make_encoder(
        {}, default or _no_default, _json.encode_basestring, None, ": ", ", ", False, False, allow_nan
    )
    return "".join(encode(value, 0))


try:
    _scan = _json.make_scanner(_ScanContext())
    if _c_dumps({"a": [1, 2.5, None, True, "\u00e9"]}) != '{"a": [1, 2.5, null, true, "\u00e9"]}' or _c_loads(
        '{"a": [1, 2.5, null, true, "\\u00e9"]}'
    ) != {"a": [1, 2.5, None, True, "\u00e9"]}:
        raise ValueError("unexpected output")
    json_loads, json_dumps = _c_loads, _c_dumps
except Exception:  # noqa: BLE001  (another interpreter: use the package)
    import json

    def json_loads(text):
        return json.loads(text)

    def json_dumps(value, default=None, allow_nan=True):
        return json.dumps(value, default=default, ensure_ascii=False, allow_nan=allow_nan)


# --- framing -------------------------------------------------------------------------
class ProtocolError(Exception):
    """The worker sent something that is not a frame of the slot protocol."""


def _read_exact(n):
    chunks = []
    while n:
        chunk = os.read(_REQ_FD, min(n, 1 << 20))
        if not chunk:
            return None if not chunks else b"".join(chunks)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


_pending = b""  # bytes read past the end of the last frame


def recv_frame():
    """Next frame as a dict; None on a clean end of stream. One read(2) takes a whole
    small frame (the usual execute frame) instead of one read for the header and one for
    the body."""
    global _pending
    data = _pending or os.read(_REQ_FD, 64 * 1024)
    _pending = b""
    if not data:
        return None
    if len(data) < 4:
        more = _read_exact(4 - len(data))
        if more is None or len(data) + len(more) < 4:
            raise ProtocolError("end of stream inside a frame header")
        data += more
    length = int.from_bytes(data[:4], "big")
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is over the 16 MiB cap")
    body = data[4 : 4 + length]
    _pending = data[4 + length :]
    if len(body) < length:
        more = _read_exact(length - len(body))
        if more is None or len(body) + len(more) < length:
            raise ProtocolError("end of stream inside a frame")
        body += more
    frame = json_loads(body.decode("utf-8"))
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError("frame is not an object with a type")
    return frame


def _encode(obj):
    text = json_dumps(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from user strings) are not UTF-8: make them U+FFFD.
        import re

        return re.sub("[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


def send_frame(obj):
    body = _encode(obj)
    data = len(body).to_bytes(4, "big") + body
    with _frame_lock:
        view = memoryview(data)
        while view:
            written = os.write(_RESP_FD, view)
            view = view[written:]


class CallError(Exception):
    """A `call` frame was answered with `ok: false`.

    `args[0]` is the frame's `error` (normally an object `{type, message}`); `type` and
    `message` are also attributes.
    """

    def __init__(self, error):
        super().__init__(error)
        if isinstance(error, dict):
            self.type = str(error.get("type") or "CallError")
            self.message = str(error.get("message") or "")
        else:
            self.type = "CallError"
            self.message = str(error)

    def __str__(self):
        return f"{self.type}: {self.message}" if self.message else self.type


_call_ids = itertools.count(1)


def call(target, args):
    """Request/response over the protocol fds (issue 4: cross-language and MCP calls).

    Sends {type: call, id, target, args} and blocks for the matching `call_result`.
    Returns its `value`, or raises CallError with its `error`.
    """
    call_id = next(_call_ids)
    send_frame({"type": "call", "id": call_id, "target": target, "args": args})
    while True:
        frame = recv_frame()
        if frame is None:
            raise ProtocolError("the worker closed the pipe during a call")
        if frame.get("type") == "call_result" and frame.get("id") == call_id:
            if frame.get("ok"):
                return frame.get("value")
            raise CallError(frame.get("error"))


# `import _paddock` inside the sandbox gives generated packages the call helper.
_runtime = types.ModuleType("_paddock")
_runtime.call = call
_runtime.CallError = CallError
sys.modules["_paddock"] = _runtime


# --- capped output capture -------------------------------------------------------------
class _CaptureBuffer:
    """`sys.stdout.buffer`: bytes are decoded as UTF-8 with replacement characters."""

    def __init__(self, owner):
        self._owner = owner

    def write(self, data):
        self._owner.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        pass


class Capture(io.TextIOBase):
    """A text stream that keeps at most `cap` UTF-8 bytes, marker included."""

    def __init__(self, name, cap):
        super().__init__()
        self.name = name
        self._marker = f"\n[paddock: {name} truncated at {cap} bytes]\n"
        self._budget = cap - len(self._marker.encode())
        self._parts = []
        self.truncated = False
        self.buffer = _CaptureBuffer(self)

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "replace"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self.truncated:
            return len(s)
        data = s.encode("utf-8", "surrogatepass")
        if len(data) <= self._budget:
            self._parts.append(s)
            self._budget -= len(data)
        else:
            self._parts.append(data[: self._budget].decode("utf-8", "ignore"))
            self._parts.append(self._marker)
            self._budget = 0
            self.truncated = True
        return len(s)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self._parts)


# --- subprocess entry points (the kernel filter is the real guard) -----------------------
def _denied(name):
    def denied(*args, **kwargs):
        raise PermissionError(f"{DENIED} ({name})")

    denied.__name__ = name
    return denied


for _name in (
    "system", "popen", "fork", "forkpty", "vfork",
    "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "posix_spawn", "posix_spawnp",
):  # fmt: skip
    if hasattr(os, _name):
        setattr(os, _name, _denied(f"os.{_name}"))


# subprocess (and everything built on it) starts children through
# _posixsubprocess.fork_exec; pty through os.forkpty/os.fork (replaced above). Replacing the
# C entry point covers subprocess whether or not it is imported yet.
_posixsubprocess.fork_exec = _denied("subprocess.Popen")
if "subprocess" in sys.modules:
    _subprocess = sys.modules["subprocess"]

    class _DeniedPopen(_subprocess.Popen):
        def __init__(self, *args, **kwargs):
            self._child_created = False  # keeps Popen.__del__ quiet
            raise PermissionError(f"{DENIED} (subprocess.Popen)")

    _subprocess.Popen = _DeniedPopen


# --- result conversion ----------------------------------------------------------------
class NotSerializable(Exception):
    """The result holds a value JSON cannot represent."""


class _Absent:
    """Stands for a type whose module is not loaded: no value is ever an instance."""


def _loaded(module, name):
    """`module.name` if the module is loaded (a value of that type can only exist then)."""
    m = sys.modules.get(module)
    t = getattr(m, name, None) if m is not None else None
    return t if isinstance(t, type) else _Absent


def _convert(o):
    """`default=` for json.dumps: common non-JSON types, else NotSerializable."""
    if isinstance(
        o,
        (_loaded("datetime", "datetime"), _loaded("datetime", "date"), _loaded("datetime", "time")),
    ):
        return o.isoformat()
    if isinstance(o, _loaded("decimal", "Decimal")):
        if o.is_finite() and o == o.to_integral_value():
            return int(o)
        return float(o)
    if isinstance(o, (set, frozenset)):
        try:
            return sorted(o)
        except TypeError:
            return list(o)
    if isinstance(o, (bytes, bytearray, memoryview)):
        return binascii.b2a_base64(bytes(o), newline=False).decode("ascii")
    if isinstance(o, _loaded("uuid", "UUID")):
        return str(o)
    if isinstance(o, _loaded("datetime", "timedelta")):
        return o.total_seconds()
    if isinstance(o, _loaded("enum", "Enum")):
        return o.value
    if isinstance(o, _loaded("pathlib", "PurePath")):
        return str(o)
    if hasattr(type(o), "__dataclass_fields__") and not isinstance(o, type):
        import dataclasses

        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
    t = type(o)
    module = t.__module__ or ""
    if module.startswith("numpy"):
        if hasattr(o, "tolist"):
            return o.tolist()
    elif module.startswith("pandas"):
        name = t.__name__
        if name == "DataFrame":
            return o.to_dict(orient="records")
        if name == "Series":
            return {str(k): v for k, v in o.to_dict().items()}
        if name == "Timestamp":
            return o.isoformat()
        if name in ("NaTType", "NAType"):
            return None
        if hasattr(o, "tolist"):
            return o.tolist()
        if hasattr(o, "to_dict"):
            return o.to_dict()
    raise NotSerializable(
        f"the result contains a value of type '{module}.{t.__qualname__}' that cannot be "
        "converted to JSON; return dicts, lists, strings, numbers, booleans or None"
        if module not in ("builtins", "")
        else f"the result contains a value of type '{t.__qualname__}' that cannot be "
        "converted to JSON; return dicts, lists, strings, numbers, booleans or None"
    )


def _finite(o):
    """Copy of `o` with NaN/Infinity floats replaced by None (JSON has no such numbers)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    try:
        converted = _convert(o)
    except NotSerializable:
        return o
    return o if converted is o else _finite(converted)


def serialize(value):
    """JSON text of the result. Raises NotSerializable with a message for the user."""
    try:
        return json_dumps(value, default=_convert, allow_nan=False)
    except NotSerializable:
        raise
    except ValueError as e:
        if "Circular reference" in str(e):
            raise NotSerializable("the result contains a circular reference") from None
        if "Out of range float" not in str(e):
            raise NotSerializable(f"the result cannot be converted to JSON: {e}") from None
    except TypeError as e:
        raise NotSerializable(f"the result cannot be converted to JSON: {e}") from None
    except RecursionError:
        raise NotSerializable("the result is nested too deeply to convert to JSON") from None
    try:
        return json_dumps(_finite(value), default=_convert, allow_nan=False)
    except NotSerializable:
        raise
    except (ValueError, TypeError, RecursionError) as e:
        raise NotSerializable(f"the result cannot be converted to JSON: {e}") from None


# --- one execution -------------------------------------------------------------------
class Execution:
    """State of the one execution this process serves."""

    def __init__(self, dry=False):
        self.dry = dry  # start-up warm-up: build the result frame, never send it
        self.stdout = Capture("stdout", MAX_STDOUT)
        self.stderr = Capture("stderr", MAX_STDERR)
        self.sent = False
        # The code's `__main__`; `input_data` is added when the frame arrives.
        self.main = types.ModuleType("__main__")
        self.main.__dict__["__builtins__"] = builtins

    def finish(self, status, result=None, error=None, result_truncated=False):
        """Sends the one `result` frame (later calls are ignored)."""
        if self.sent:
            return
        self.sent = True
        # CPU and memory are not measured here: the worker reads the slot's cgroup.
        (_encode if self.dry else send_frame)(
            {
                "type": "result",
                "status": status,
                "result": result,
                "stdout": self.stdout.getvalue(),
                "stderr": self.stderr.getvalue(),
                "error": error,
                "truncated": {
                    "result": result_truncated,
                    "stdout": self.stdout.truncated,
                    "stderr": self.stderr.truncated,
                },
                "calls": _package_calls(),
            }
        )


def _package_calls():
    """The functions package's call log (`functions._runtime._calls`), if it was imported."""
    rt = sys.modules.get("functions._runtime")
    log = getattr(rt, "_calls", None) if rt is not None else None
    if not isinstance(log, list):
        return []
    out = []
    for c in log[:1000]:
        try:
            out.append(
                {
                    "name": str(c["name"]),
                    "status": str(c["status"]),
                    "duration_ms": float(c.get("duration_ms") or 0),
                }
            )
        except Exception:  # noqa: BLE001  (user code may have tampered with the log)
            continue
    return out


_current = None


def _exit_intercepted(code=0):
    """os._exit: report SandboxExit first, then really exit (0, as the protocol says)."""
    ex = _current
    if ex is not None:
        _restore_streams()
        ex.finish("failed", error=_error("SandboxExit", f"the code called os._exit({code!r})"))
    _real_exit(0)


os._exit = _exit_intercepted


def _error(kind, message, tb=None):
    return {"type": kind, "message": message, "traceback": tb}


def _register_code(code):
    """Makes the user's code the source of `<code>` for tracebacks: in linecache now if it
    is loaded, else as soon as anything imports it (a lean start-up does not load it)."""
    global _CODE
    _CODE = code
    lc = sys.modules.get("linecache")
    if lc is not None:
        _put_code_in(lc)
    elif _LINECACHE_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _LINECACHE_HOOK)


_CODE = None


def _put_code_in(lc):
    if _CODE is not None:
        lc.cache[CODE_FILE] = (len(_CODE), None, _CODE.splitlines(True), CODE_FILE)


class _LinecacheHook:
    """Import hook that registers the user's code in linecache right after it loads."""

    def find_spec(self, name, path=None, target=None):
        if name != "linecache":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    run(module)
                    _put_code_in(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


_LINECACHE_HOOK = _LinecacheHook()


def _user_traceback(exc):
    """Traceback text starting at the first frame of the user's code (runner trimmed)."""
    tb = exc.__traceback__
    first_user = tb
    while first_user is not None and first_user.tb_frame.f_code.co_filename != CODE_FILE:
        first_user = first_user.tb_next
    if first_user is None:
        # Raised before any user frame ran (e.g. a bad main() signature): drop the runner.
        first_user = tb
        while first_user is not None and first_user.tb_frame.f_code.co_filename == RUNNER_FILE:
            first_user = first_user.tb_next
    try:
        import traceback

        te = traceback.TracebackException(type(exc), exc, first_user, compact=True)
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if f.filename != RUNNER_FILE]
        )
        return "".join(te.format())
    except Exception:  # a hostile __str__ must not kill the runner
        return f"{type(exc).__name__}\n"


def _message(exc):
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def _write_files(files):
    """Writes `files` (relative path → text) under the cwd; refuses escapes."""
    if not isinstance(files, dict):
        raise ValueError("files must be an object of relative path → text")
    if not files:
        return
    root = os.getcwd()
    for rel, text in files.items():
        if not isinstance(rel, str) or not isinstance(text, str):
            raise ValueError("files must map relative paths to text")
        parts = rel.split("/")
        if (
            not rel
            or rel.startswith("/")
            or "\0" in rel
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise ValueError(
                f"refused to write file {rel!r}: paths must be relative, without '.', '..' "
                "or empty parts, and stay inside the workspace"
            )
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
    if files:
        import importlib

        importlib.invalidate_caches()


def _call_with(fn, *args):
    """Calls fn with as many of args as it accepts (main() without parameters works)."""
    code = getattr(fn, "__code__", None)
    if code is not None and not (code.co_flags & 0x0C):  # no *args / **kwargs
        takes = code.co_argcount - (1 if isinstance(fn, types.MethodType) else 0)
        args = args[: max(0, takes)]
    return fn(*args)


def _resolve(g, input_data, context):
    """Return value by the convention order: result, output, main, handler."""
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
    if isinstance(value, types.CoroutineType):
        # asyncio is imported here, not at start-up: it is the largest import of the
        # runner (~40% of its start-up) and only async code needs it.
        import asyncio

        value = asyncio.run(value)
    return value


_saved_streams = (sys.stdout, sys.stderr)


def _restore_streams():
    sys.stdout, sys.stderr = _saved_streams


def execute(frame, ex):
    """Runs the execute `frame` with `ex`, an [`Execution`] made ahead of time (before
    `ready`: nothing in it depends on the frame, and the slot serves one execution)."""
    global _current
    _current = ex
    code = frame.get("code")
    input_data = frame.get("input", {})
    context = frame.get("context") or {}
    if not isinstance(code, str):
        ex.finish("failed", error=_error("InvalidCode", "the execute frame has no code text"))
        return
    try:
        _write_files(frame.get("files") or {})
    except (ValueError, OSError) as e:
        ex.finish("failed", error=_error("SandboxFailure", _message(e)))
        return

    _register_code(code)
    g = ex.main.__dict__
    g["input_data"] = input_data
    sys.modules["__main__"] = ex.main

    sys.stdout, sys.stderr = ex.stdout, ex.stderr
    try:
        compiled = compile(code, CODE_FILE, "exec", dont_inherit=True)
        exec(compiled, g)
        value = _resolve(g, input_data, context)
    except SystemExit as e:
        _restore_streams()
        ex.finish(
            "failed",
            error=_error(
                "SandboxExit",
                f"the code called sys.exit({e.code!r}); return a value instead of exiting",
                _user_traceback(e),
            ),
        )
        return
    except BaseException as e:  # noqa: BLE001  (every user failure becomes a result)
        _restore_streams()
        ex.finish("failed", error=_error(type(e).__name__, _message(e), _user_traceback(e)))
        return
    _restore_streams()

    try:
        text = serialize(value)
    except NotSerializable as e:
        ex.finish("failed", error=_error("ResultNotSerializable", str(e)))
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RESULT:
        ex.finish(
            "failed",
            error=_error(
                "ResultTooLarge",
                f"the result is {size} bytes of JSON, over the {MAX_RESULT} byte limit; "
                "return a summary or a smaller page of the data",
            ),
            result_truncated=True,
        )
        return
    ex.finish("completed", result=text)


# --- second seccomp layer ------------------------------------------------------------
# slot-init allows exactly one execve: the one whose filename pointer is its own string.
# Native code reachable from Python (ctypes) could try to guess that address, so once the
# interpreter is up the runner stacks a filter that denies execve/execveat outright
# (and every syscall made through a foreign ABI: i386 `int 0x80` or x32 numbers).
def _deny_exec():
    # Through `_ctypes`, not `ctypes`: the package's __init__ costs ~3 ms of every slot start
    # (measured: +4.5 ms against +1.5 ms over a bare interpreter); the C core has all it needs.
    import _ctypes
    import struct

    if os.uname().machine != "x86_64":
        return  # the slot-init filter still applies; this layer is written for x86_64 only
    eperm = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
    allow = 0x7FFF0000  # SECCOMP_RET_ALLOW
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    prog = [
        (ld, 0, 0, 4),  # A = seccomp_data.arch
        (jeq, 1, 0, 0xC000003E),  # AUDIT_ARCH_X86_64 ? skip the deny : deny
        (ret, 0, 0, eperm),
        (ld, 0, 0, 0),  # A = seccomp_data.nr
        (jge, 3, 0, 0x40000000),  # x32 ABI numbers → deny
        (jeq, 2, 0, 59),  # execve → deny
        (jeq, 1, 0, 322),  # execveat → deny
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
    ]

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class CULong(_ctypes._SimpleCData):  # 64 bits on x86_64: carries the pointers below
        _type_ = "L"

    class CChar(_ctypes._SimpleCData):
        _type_ = "c"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    def pinned(data):  # a C copy of `data` that stays put while its Python object lives
        class Buffer(_ctypes.Array):
            _type_ = CChar
            _length_ = len(data)

        return Buffer.from_buffer_copy(data)

    # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}; struct sock_fprog {u16 len; ptr}.
    filters = pinned(b"".join(struct.pack("=HBBI", *ins) for ins in prog))
    fprog = pinned(struct.pack("=H6xQ", len(prog), _ctypes.addressof(filters)))
    prctl = Function(_ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl"))
    prctl.argtypes = (CInt, CULong, CULong, CULong, CULong)
    if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (already set inside the jail)
        raise OSError(_ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if prctl(22, 2, _ctypes.addressof(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(_ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


_WARM_UP = {
    "type": "execute",
    "execution_id": "warm-up",
    "code": "result = [1 + 1, {'a': 'b'}]\nprint('x')\n",
    "input": {},
    "files": {},
    "context": {},
}


def main():
    global _current
    try:
        _deny_exec()
    except OSError as e:
        os.write(2, f"paddock runner: cannot stack the exec filter: {e}\n".encode())
        _real_exit(3)  # fail closed: a slot without this layer never becomes ready
    if not ON_DEMAND:
        # One dry execution first: the real one then runs on warm caches and code paths.
        execute(_WARM_UP, Execution(dry=True))
        _current = None
    ex = Execution()
    send_frame({"type": "ready", "language": "python", "pid": os.getpid()})
    try:
        frame = recv_frame()
    except (ProtocolError, ValueError) as e:
        os.write(2, f"paddock runner: bad request: {e}\n".encode())
        _real_exit(2)
    if frame is None:
        _real_exit(0)
    if frame.get("type") != "execute":
        os.write(2, f"paddock runner: expected execute, got {frame.get('type')!r}\n".encode())
        _real_exit(2)
    try:
        execute(frame, ex)
    except BaseException as e:  # noqa: BLE001  (runner bug: still answer)
        if _current is not None and not _current.sent:
            _current.finish("failed", error=_error("SandboxFailure", f"runner error: {e!r}"))
    # The result is out. Exiting now would tear the process (and nsjail, and the
    # namespaces) down while the worker is still answering its client: close the response
    # pipe (the worker sees its end), wait until the worker closes the request pipe or
    # kills the slot once the answer has left, then exit.
    try:
        os.close(_RESP_FD)
        os.read(_REQ_FD, 1)
    except BaseException:  # noqa: BLE001
        pass
    _real_exit(0)


if __name__ == "__main__":
    main()
