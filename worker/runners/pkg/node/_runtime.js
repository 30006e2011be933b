// Paddock functions package runtime (JavaScript): wrappers, call log, search/describe,
// code loading. Generated packages require this module; it reads `_catalog.json` next
// to it. A JavaScript/TypeScript function runs in-process: its code
// (`_code/<svc>__<fn>.js`, CommonJS already transformed by the worker) is compiled once
// and run in a fresh module scope for every call; its value is taken by the runner's
// order: default export (called if a function), `main`, `handler`, then `result` /
// `output`. A function written in Python goes through `_bridge.js` (runner, then worker).
"use strict";

const fs = require("fs");
const path = require("path");
const vm = require("vm");
const Module = require("module");

const catalog = require("./_catalog.json");

const NAMESPACE = catalog.namespace;
const ENTRIES = catalog.functions;
const BY_KEY = new Map(ENTRIES.map((e) => [e.key, e]));
const REMOTE = catalog.remote || [];
const REMOTE_BY_KEY = new Map(REMOTE.map((e) => [e.key, e]));
const ALL = ENTRIES.concat(REMOTE);

/** Most calls kept in `_calls`; later ones are only counted in `_callsDropped.count`. */
const MAX_CALLS = 1000;
/** The call log: one {name, status, duration_ms} per call, in call order. */
const _calls = [];
const _callsDropped = { count: 0 };

/** A function (or remote tool) called through the bridge failed. */
class FunctionCallError extends Error {
  constructor(type, message) {
    super(`${type}: ${message}`);
    this.name = "FunctionCallError";
    this.type = type;
    this.errorMessage = message;
  }
}

/**
 * A remote MCP tool call failed. `code` is the platform's stable error code (e.g.
 * "CALL_BUDGET_EXCEEDED"), `server` and `tool` name the call; subclasses say why.
 */
class RemoteToolError extends FunctionCallError {
  constructor(code, message, server, tool) {
    super(code, message);
    this.name = new.target.name;
    this.code = code;
    this.server = server;
    this.tool = tool;
    this.message = `${server ? `mcp__${server}__${tool}: ` : ""}${code}: ${message}`;
  }
}
/** The server did not answer in time. */
class RemoteTimeout extends RemoteToolError {}
/** A rule of the namespace blocked the call. */
class RemoteBlocked extends RemoteToolError {}
/** This execution used up the server's max_calls_per_execution. */
class RemoteBudgetExceeded extends RemoteToolError {}
/** The server is down, disabled, removed, or the bridge is not available. */
class RemoteUnavailable extends RemoteToolError {}
/** The tool ran and reported an error (MCP `isError`). */
class RemoteToolFailed extends RemoteToolError {}

const REMOTE_ERRORS = {
  MCP_SERVER_TIMEOUT: RemoteTimeout,
  TimeoutError: RemoteTimeout,
  RULE_BLOCKED: RemoteBlocked,
  CALL_BUDGET_EXCEEDED: RemoteBudgetExceeded,
  MCP_SERVER_UNAVAILABLE: RemoteUnavailable,
  MCP_SERVER_DISABLED: RemoteUnavailable,
  MCP_SERVER_NOT_FOUND: RemoteUnavailable,
  BRIDGE_KEY_INVALID: RemoteUnavailable,
  WORKER_LOST: RemoteUnavailable,
  NotSupported: RemoteUnavailable,
  RuntimeUnavailable: RemoteUnavailable,
  MCP_TOOL_ERROR: RemoteToolFailed,
};

/** The typed error for a failed remote call with error `code`. */
function remoteError(code, message, server, tool) {
  const Cls = Object.prototype.hasOwnProperty.call(REMOTE_ERRORS, code) ? REMOTE_ERRORS[code] : RemoteToolError;
  return new Cls(code, message, server, tool);
}

let lastRemote = {};
/** What the last remote call reported: {name, truncated, bytes, latency_ms}. */
function lastRemoteCall() {
  return lastRemote;
}

function invokeRemote(entry, input) {
  const args = { namespace: NAMESPACE, server: entry.server, tool: entry.tool, input };
  const bridge = require("./_bridge.js");
  return bridge.call(bridge.TARGET_MCP, args).then(
    (reply) => {
      if (!reply || typeof reply !== "object" || !("value" in reply)) {
        throw new RemoteToolError("PROTOCOL_ERROR", "malformed bridge answer", entry.server, entry.tool);
      }
      lastRemote = {
        name: entry.key,
        truncated: Boolean(reply.truncated),
        bytes: reply.bytes || 0,
        latency_ms: reply.latency_ms || 0,
      };
      return reply.value;
    },
    (e) => {
      if (e instanceof RemoteToolError) throw e;
      const code = e instanceof FunctionCallError ? String(e.type) : "CallError";
      const message = e instanceof FunctionCallError ? e.errorMessage : String((e && e.message) || e);
      throw remoteError(code, message, entry.server, entry.tool);
    },
  );
}

/** The callable for the remote MCP tool `key` (`mcp__server__tool`); returns a Promise. */
function remoteWrapper(key) {
  const entry = REMOTE_BY_KEY.get(key);
  if (!entry) throw new Error(`functions package: no remote tool ${key}`);
  const fn = function (...args) {
    let input;
    try {
      input = buildInput(entry, args);
    } catch (e) {
      return Promise.reject(e);
    }
    return invokeRemote(entry, input);
  };
  Object.defineProperty(fn, "name", { value: key });
  fn.__doc__ = entry.description ? `${entry.signature} — ${entry.description}` : entry.signature;
  return fn;
}

function label(entry) {
  return `${entry.call}()`;
}

function buildInput(entry, args) {
  if (args.length > 1) {
    throw new TypeError(
      `${label(entry)} takes one object argument, e.g. ${entry.signature} (${args.length} given)`,
    );
  }
  const arg = args[0];
  if (arg !== undefined && arg !== null && (typeof arg !== "object" || Array.isArray(arg))) {
    throw new TypeError(`${label(entry)} takes one object argument, e.g. ${entry.signature}`);
  }
  const data = Object.assign({}, arg || {});
  const missing = (entry.params || [])
    .filter((p) => p.required && data[p.name] === undefined)
    .map((p) => `'${p.name}'`);
  if (missing.length) {
    const plural = missing.length > 1 ? "s" : "";
    throw new TypeError(
      `${label(entry)} missing ${missing.length} required argument${plural}: ` +
        `${missing.join(", ")} (signature: ${entry.signature})`,
    );
  }
  return data;
}

function errorType(e) {
  if (e instanceof FunctionCallError) return String(e.type);
  if (e && typeof e === "object" && typeof e.name === "string") return e.name;
  return "Error";
}

function invoke(entry, input) {
  const record = { name: entry.qualified, status: "running", duration_ms: 0 };
  if (_calls.length < MAX_CALLS) _calls.push(record);
  else _callsDropped.count += 1;
  const start = process.hrtime.bigint();
  const done = (status) => {
    record.status = status;
    record.duration_ms = Math.round(Number(process.hrtime.bigint() - start) / 1000) / 1000;
  };
  let value;
  try {
    value = entry.bridged
      ? require("./_bridge.js").callFunction(NAMESPACE, entry, input)
      : runLocal(entry, input);
  } catch (e) {
    done(errorType(e));
    throw e;
  }
  if (value && typeof value.then === "function") {
    return Promise.resolve(value).then(
      (v) => {
        done("ok");
        return v;
      },
      (e) => {
        done(errorType(e));
        throw e;
      },
    );
  }
  done("ok");
  return value;
}

const PARAMS = "exports, require, module, __filename, __dirname, input_data, context";
const TAIL =
  "\n;return [typeof result === 'undefined' ? __paddock_none : result, " +
  "typeof output === 'undefined' ? __paddock_none : output, " +
  "typeof main === 'undefined' ? undefined : main, " +
  "typeof handler === 'undefined' ? undefined : handler];\n";
const NONE = Symbol("none");
const compiled = new Map();

function compile(filename) {
  let fn = compiled.get(filename);
  if (fn) return fn;
  const source = fs.readFileSync(filename, "utf8");
  const params = `${PARAMS}, __paddock_none`;
  const build = (prefix) =>
    new vm.Script(`(${prefix} (${params}) {${source}${TAIL}})`, { filename }).runInThisContext();
  try {
    fn = build("function");
  } catch (e) {
    // Top-level `await` only parses in an async body: such functions return a Promise.
    if (!(e instanceof SyntaxError) || !source.includes("await")) throw e;
    fn = build("async function");
  }
  compiled.set(filename, fn);
  return fn;
}

const PACKAGE_REQUEST = /^(?:\.{1,2}\/)*functions(?:\/index(?:\.js)?)?$|^\.\.(?:\/(?:index(?:\.js)?)?)?$/;

function makeRequire(filename) {
  const base = Module.createRequire(filename);
  const req = (id) => (PACKAGE_REQUEST.test(id) ? require("./index.js") : base(id));
  req.resolve = base.resolve;
  req.cache = base.cache;
  req.main = base.main;
  return req;
}

function pick(bindings, module, input, context) {
  const [result, output, main, handler] = bindings;
  const exp = module.exports;
  const hasExports = exp !== null && (typeof exp === "object" || typeof exp === "function");
  const def = hasExports && exp.default !== undefined ? exp.default : typeof exp === "function" ? exp : undefined;
  if (def !== undefined) return typeof def === "function" ? def(input, context) : def;
  const m = typeof main === "function" ? main : hasExports && typeof exp.main === "function" ? exp.main : undefined;
  if (m) return m(input, context);
  const h =
    typeof handler === "function" ? handler : hasExports && typeof exp.handler === "function" ? exp.handler : undefined;
  if (h) return h(input, context);
  if (result !== NONE) return result;
  if (hasExports && "result" in exp) return exp.result;
  if (output !== NONE) return output;
  if (hasExports && "output" in exp) return exp.output;
  return undefined;
}

function runLocal(entry, input) {
  const filename = path.join(__dirname, ...entry.file.split("/"));
  const fn = compile(filename);
  const module = { exports: {}, id: filename, filename, loaded: false, children: [], paths: [] };
  const context = {
    namespace: NAMESPACE,
    service: entry.service,
    function: entry.name,
    version: entry.version,
  };
  const out = fn.call(
    module.exports,
    module.exports,
    makeRequire(filename),
    module,
    filename,
    path.dirname(filename),
    input,
    context,
    NONE,
  );
  if (out && typeof out.then === "function") {
    return out.then((bindings) => pick(bindings, module, input, context));
  }
  return pick(out, module, input, context);
}

/** The callable for the function `key` (`service_ident.ident`). */
function wrapper(key) {
  const entry = BY_KEY.get(key);
  if (!entry) throw new Error(`functions package: no function ${key}`);
  const fn = function (...args) {
    return invoke(entry, buildInput(entry, args));
  };
  Object.defineProperty(fn, "name", { value: entry.ident });
  fn.__doc__ = entry.description ? `${entry.signature} — ${entry.description}` : entry.signature;
  return fn;
}

/**
 * Calls `service.function` (original names) with `input` as its arguments (tool mode:
 * the worker's generated snippet calls this).
 */
function callByName(service, fn, input) {
  const entry = ENTRIES.find((e) => e.service === service && e.name === fn);
  if (!entry) throw new Error(`no function ${service}.${fn} in namespace ${NAMESPACE}`);
  return wrapper(entry.key)(Object.assign({}, input || {}));
}

function score(entry, tokens) {
  const names = [entry.ident.toLowerCase(), entry.name.replace(/-/g, "_").toLowerCase()];
  const services = [entry.service_ident.toLowerCase(), entry.service.replace(/-/g, "_").toLowerCase()];
  const description = entry.description.toLowerCase();
  let total = 0;
  for (const token of tokens) {
    let s;
    if (names.includes(token)) s = 100;
    else if (names.some((n) => n.startsWith(token))) s = 60;
    else if (names.some((n) => n.includes(token))) s = 40;
    else if (services.some((n) => n.includes(token))) s = 20;
    else if (description.includes(token)) s = 10;
    else return 0;
    total += s;
  }
  return total;
}

function summary(entry) {
  return {
    name: entry.call,
    service: entry.service,
    function: entry.name,
    signature: entry.signature,
    description: entry.description,
    language: entry.language,
  };
}

/**
 * Functions matching every word of `query` (case-insensitive) in their name, service or
 * description, best first: [{name, service, function, signature, description, language}].
 */
function search(query, limit = 20) {
  const tokens = String(query ?? "")
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .map((t) => t.replace(/-/g, "_"));
  if (!tokens.length) return ALL.slice(0, limit).map(summary);
  return ALL.map((e) => [score(e, tokens), e])
    .filter(([s]) => s > 0)
    .sort((a, b) => b[0] - a[0] || (a[1].key < b[1].key ? -1 : a[1].key > b[1].key ? 1 : 0))
    .slice(0, limit)
    .map(([, e]) => summary(e));
}

function find(name) {
  const wanted = String(name).trim().replace(/-/g, "_");
  const exact = ALL.find((e) => e.call === wanted || e.key === wanted);
  if (exact) return exact;
  const short = ALL.filter((e) => e.ident === wanted);
  if (short.length === 1) return short[0];
  if (short.length > 1) {
    throw new Error(`'${name}' names several functions; use one of: ${short.map((e) => e.key).join(", ")}`);
  }
  throw new Error(`no function '${name}' in namespace ${NAMESPACE}; try functions.search('${name}')`);
}

/**
 * Everything about one function (`hello`, `greetings.hello`): {name, service, function,
 * signature, description, qualified, input_schema, language, version}.
 */
function describe(name) {
  const entry = find(name);
  return Object.assign(summary(entry), {
    qualified: entry.qualified,
    input_schema: entry.input_schema,
    version: entry.version,
  });
}

// Where the runner finds the call log to copy into the result's `calls`.
Object.defineProperty(globalThis, "__paddock_package", {
  value: Object.freeze({ namespace: NAMESPACE, calls: _calls, dropped: _callsDropped }),
  configurable: true,
  enumerable: false,
});

module.exports = {
  NAMESPACE,
  FunctionCallError,
  RemoteToolError,
  RemoteTimeout,
  RemoteBlocked,
  RemoteBudgetExceeded,
  RemoteUnavailable,
  RemoteToolFailed,
  remoteError,
  remoteWrapper,
  lastRemoteCall,
  _calls,
  _callsDropped,
  wrapper,
  callByName,
  search,
  describe,
};
