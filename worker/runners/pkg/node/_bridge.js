// Calls the package cannot make in-process (a function in the other language, a remote
// MCP tool: target "mcp", see `_runtime.js` remoteWrapper), made through the runner: `globalThis.__paddock_runtime.call(target,
// args)` returns a Promise of the value and rejects with an object (or Error) carrying
// `type` and `message`; the runner turns it into a slot-protocol `call` frame.
"use strict";

const { FunctionCallError } = require("./_runtime.js");

const TARGET_FUNCTION = "function";
const TARGET_MCP = "mcp";

function toError(e) {
  if (e instanceof FunctionCallError) return e;
  if (e && typeof e === "object" && typeof e.type === "string") {
    return new FunctionCallError(e.type, String(e.message ?? ""));
  }
  return new FunctionCallError("CallError", String((e && e.message) || e));
}

/** One call through the runner: a Promise of the value (FunctionCallError on failure). */
function call(target, args) {
  const rt = globalThis.__paddock_runtime;
  if (!rt || typeof rt.call !== "function") {
    return Promise.reject(
      new FunctionCallError(
        "RuntimeUnavailable",
        "cross-language calls need the Paddock runner (globalThis.__paddock_runtime is missing)",
      ),
    );
  }
  let pending;
  try {
    pending = Promise.resolve(rt.call(target, args));
  } catch (e) {
    return Promise.reject(toError(e));
  }
  return pending.catch((e) => {
    throw toError(e);
  });
}

/** Runs a function of the other language (the version the package lists). */
function callFunction(namespace, entry, input) {
  return call(TARGET_FUNCTION, {
    namespace,
    service: entry.service,
    function: entry.name,
    language: entry.language,
    version: entry.version,
    input,
  });
}

module.exports = { TARGET_FUNCTION, TARGET_MCP, call, callFunction };
