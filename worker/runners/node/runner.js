// Paddock Node runner: one execution per process, spoken over the slot protocol.
//
// Contract: docs/slot-protocol.md. Started (inside the jail) as
//   /usr/bin/node --max-old-space-size=<MB> /paddock/runner/runner.js
// Node 20, CommonJS, no npm packages. Start-up moves the protocol off fds 0/1, loads what
// executions need (so `ready` means warm), sends `ready`, then serves exactly one `execute`
// with exactly one `result` frame and exits 0 without running exit handlers.
//
// The code arrives as CommonJS from the worker's TypeScript transform (worker/src/typescript.rs):
// it is wrapped in `async function (exports, require, module, __filename, __dirname)` so
// top-level `await` works, and an epilogue hands the top-level `result`, `output`, `main`
// and `handler` bindings back to the runner. A trailing inline source map (if present) is
// used to report stack positions in the original TypeScript.
'use strict';

const fs = require('fs');

// --- protocol fds first ---------------------------------------------------------------
// Node has no dup(2); reopening /proc/self/fd/N gives a new descriptor on the same pipe.
// Then /dev/null takes fd 0 and fd 2's target takes fd 1 (close + open reuse the lowest fd).
// A launcher that can dup (slot-init) may do the move itself and say so with
// PADDOCK_PROTOCOL_FDS="R,W" (requests on fd R, responses on fd W, fds 0/1/2 arranged):
// reopening /proc/self/fd/N fails when the pipes belong to another uid (EACCES).
let REQ_FD = 0;
let RESP_FD = 1;
let protocolMoved = false;
const givenFds = process.env.PADDOCK_PROTOCOL_FDS;
delete process.env.PADDOCK_PROTOCOL_FDS;
if (givenFds) {
  const fds = givenFds.split(',').map(Number);
  if (fds.length !== 2 || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
    fs.writeSync(2, `paddock runner: bad PADDOCK_PROTOCOL_FDS ${JSON.stringify(givenFds)}\n`);
    process.reallyExit(2);
  }
  [REQ_FD, RESP_FD] = fds;
  protocolMoved = true;
} else try {
  REQ_FD = fs.openSync('/proc/self/fd/0', fs.constants.O_RDONLY);
  RESP_FD = fs.openSync('/proc/self/fd/1', fs.constants.O_WRONLY);
  fs.closeSync(0);
  const nullFd = fs.openSync('/dev/null', fs.constants.O_RDONLY);
  if (nullFd !== 0) fs.closeSync(nullFd);
  fs.closeSync(1);
  let errFd;
  try {
    errFd = fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY);
  } catch {
    errFd = fs.openSync('/dev/null', fs.constants.O_WRONLY);
  }
  if (errFd !== 1) fs.closeSync(errFd);
  protocolMoved = true;
} catch (e) {
  fs.writeSync(2, `paddock runner: could not move the protocol fds (${e.message}); using 0/1\n`);
}

const path = require('path');
const vm = require('vm');
const Module = require('module');
const childProcess = require('child_process');
require('util');
require('events');
require('crypto');
require('url');
require('os');

const MAX_FRAME = 16 * 1024 * 1024;
const MAX_RESULT = 1024 * 1024;
const MAX_STDOUT = 64 * 1024;
const MAX_STDERR = 64 * 1024;
const CODE_FILE = '<code>';
const RUNNER_FILE = __filename;
// The workspace is the cwd for the runner's whole (one-execution) life, so user `require`
// (relative to the workspace, `require("./functions")`) is built once, at start-up.
const WORKSPACE = process.cwd();
const CODE_PATH = path.join(WORKSPACE, CODE_FILE);
const USER_REQUIRE = Module.createRequire(CODE_PATH);
const DENIED = 'subprocesses are not allowed in the Paddock sandbox';
const SOURCE_MAP_RE =
  /\n\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/;
const WRAP_HEAD =
  '(async function (exports, require, module, __filename, __dirname, __paddock_done) {\n';
const WRAP_TAIL =
  '\n;__paddock_done(' +
  'typeof result === "undefined" ? undefined : result, ' +
  'typeof output === "undefined" ? undefined : output, ' +
  'typeof main === "undefined" ? undefined : main, ' +
  'typeof handler === "undefined" ? undefined : handler);\n})';

const realExit = typeof process.reallyExit === 'function' ? process.reallyExit.bind(process) : process.exit.bind(process);
Error.stackTraceLimit = 50;

// --- framing ---------------------------------------------------------------------------
class ProtocolError extends Error {}

function readExact(n) {
  const buf = Buffer.allocUnsafe(n);
  let off = 0;
  while (off < n) {
    let got;
    try {
      got = fs.readSync(REQ_FD, buf, off, n - off, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (got === 0) return off === 0 ? null : buf.subarray(0, off);
    off += got;
  }
  return buf;
}

function recvFrame() {
  const head = readExact(4);
  if (head === null) return null;
  if (head.length < 4) throw new ProtocolError('end of stream inside a frame header');
  const len = head.readUInt32BE(0);
  if (len > MAX_FRAME) throw new ProtocolError(`frame of ${len} bytes is over the 16 MiB cap`);
  const body = len ? readExact(len) : Buffer.alloc(0);
  if (body === null || body.length < len) throw new ProtocolError('end of stream inside a frame');
  const frame = JSON.parse(body.toString('utf8'));
  if (frame === null || typeof frame !== 'object' || typeof frame.type !== 'string') {
    throw new ProtocolError('frame is not an object with a type');
  }
  return frame;
}

function wellFormed(s) {
  return typeof s === 'string' && !s.isWellFormed() ? s.toWellFormed() : s;
}

function sendFrame(obj) {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  const data = Buffer.concat([head, body]);
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(RESP_FD, data, off, data.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

// The functions package's call log (`globalThis.__paddock_package.calls`), if it was loaded.
function packageCalls() {
  const out = [];
  try {
    const pkg = globalThis.__paddock_package;
    const log = pkg && pkg.calls;
    if (!Array.isArray(log)) return out;
    for (const c of log.slice(0, 1000)) {
      if (!c || typeof c !== 'object') continue;
      out.push({ name: String(c.name), status: String(c.status), duration_ms: Number(c.duration_ms) || 0 });
    }
  } catch {
    // user code may have tampered with the log
  }
  return out;
}

// A `call` answered with `ok: false`; `type` and `message` come from its `error` object.
class CallError extends Error {
  constructor(error) {
    const isObj = error !== null && typeof error === 'object';
    super(isObj ? String(error.message ?? '') : String(error));
    this.name = 'CallError';
    this.type = isObj && typeof error.type === 'string' ? error.type : 'CallError';
    this.error = error;
  }
}

let nextCallId = 1;

// Request/response over the protocol fds (issue 4: cross-language and MCP calls).
// Sends {type: call, id, target, args}, blocks for the matching `call_result`, returns its
// `value` or throws CallError with its `error`. Generated packages reach it as
// `globalThis.__paddock_runtime.call` (synchronous; callers may wrap it in a Promise).
function call(target, args) {
  const id = nextCallId++;
  sendFrame({ type: 'call', id, target, args });
  for (;;) {
    const frame = recvFrame();
    if (frame === null) throw new ProtocolError('the worker closed the pipe during a call');
    if (frame.type === 'call_result' && frame.id === id) {
      if (frame.ok) return frame.value;
      throw new CallError(frame.error);
    }
  }
}

Object.defineProperty(globalThis, '__paddock_runtime', {
  value: Object.freeze({ call, CallError }),
  enumerable: false,
});

// --- capped output capture ----------------------------------------------------------------
class Capture {
  constructor(name, cap) {
    this.marker = `\n[paddock: ${name} truncated at ${cap} bytes]\n`;
    this.budget = cap - Buffer.byteLength(this.marker);
    this.parts = [];
    this.truncated = false;
  }

  write(s) {
    if (this.truncated) return;
    const len = Buffer.byteLength(s, 'utf8');
    if (len <= this.budget) {
      this.parts.push(s);
      this.budget -= len;
      return;
    }
    let cut = Buffer.from(s, 'utf8').subarray(0, this.budget).toString('utf8');
    while (Buffer.byteLength(cut, 'utf8') > this.budget) cut = cut.slice(0, -1);
    this.parts.push(cut, this.marker);
    this.budget = 0;
    this.truncated = true;
  }

  value() {
    return wellFormed(this.parts.join(''));
  }
}

function chunkText(chunk, encoding) {
  if (typeof chunk === 'string') {
    if (typeof encoding === 'string' && !/^utf-?8$/i.test(encoding)) {
      return Buffer.from(chunk, encoding).toString('utf8');
    }
    return chunk;
  }
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  return String(chunk);
}

const stdoutStream = process.stdout;
const stderrStream = process.stderr;
const originalWrites = { out: stdoutStream.write, err: stderrStream.write };

function captureStreams(ex) {
  const make = (capture) =>
    function write(chunk, encoding, cb) {
      if (typeof encoding === 'function') {
        cb = encoding;
        encoding = undefined;
      }
      capture.write(chunkText(chunk, encoding));
      if (typeof cb === 'function') process.nextTick(cb);
      return true;
    };
  stdoutStream.write = make(ex.stdout);
  stderrStream.write = make(ex.stderr);
}

function restoreStreams() {
  stdoutStream.write = originalWrites.out;
  stderrStream.write = originalWrites.err;
}

// --- subprocess entry points (the kernel filter is the real guard) --------------------------
function denied(name) {
  return function deniedSubprocess() {
    const err = new Error(`${DENIED} (child_process.${name})`);
    err.code = 'ERR_PADDOCK_SANDBOX';
    throw err;
  };
}
for (const name of ['exec', 'execSync', 'execFile', 'execFileSync', 'spawn', 'spawnSync', 'fork']) {
  childProcess[name] = denied(name);
}

// --- one execution --------------------------------------------------------------------------
let current = null;

class Execution {
  // `dry`: a start-up warm-up run that builds its result frame but never sends it.
  constructor(dry) {
    this.dry = dry;
    this.stdout = new Capture('stdout', MAX_STDOUT);
    this.stderr = new Capture('stderr', MAX_STDERR);
    this.sent = false;
    this.sourceMap = null;
    this.sourceMapData = null;
  }

  finish(status, result, error, resultTruncated) {
    if (this.sent) return;
    this.sent = true;
    restoreStreams();
    // CPU and memory are not measured here: the worker reads the slot's cgroup.
    const frame = {
      type: 'result',
      status,
      result: result === undefined ? null : result,
      stdout: this.stdout.value(),
      stderr: this.stderr.value(),
      error: error || null,
      truncated: { result: !!resultTruncated, stdout: this.stdout.truncated, stderr: this.stderr.truncated },
      calls: packageCalls(),
    };
    if (this.dry) JSON.stringify(frame);
    else sendFrame(frame);
  }

  fail(err) {
    this.finish('failed', null, describeError(err, this));
  }
}

function errorType(err) {
  if (err === null || typeof err !== 'object') return 'Error';
  let name = typeof err.name === 'string' && err.name ? err.name : 'Error';
  const ctor = err.constructor && typeof err.constructor.name === 'string' ? err.constructor.name : '';
  if (name === 'Error' && ctor && ctor !== 'Object') name = ctor;
  return name;
}

function describeError(err, ex) {
  if (err === null || typeof err !== 'object') {
    return { type: 'Error', message: `uncaught ${typeof err}: ${safeString(err)}`, traceback: null };
  }
  return {
    type: wellFormed(errorType(err)),
    message: wellFormed(safeString(err.message)),
    traceback: wellFormed(userStack(err, ex)),
  };
}

function safeString(v) {
  try {
    return String(v);
  } catch {
    return '<unprintable value>';
  }
}

function sourceMapFor(ex) {
  if (ex === null || ex.sourceMapData === null) return null;
  if (ex.sourceMap === null) {
    try {
      ex.sourceMap = new Module.SourceMap(JSON.parse(Buffer.from(ex.sourceMapData, 'base64').toString('utf8')));
    } catch {
      ex.sourceMapData = null;
      return null;
    }
  }
  return ex.sourceMap;
}

// Stack text with runner and node-internal frames removed and `<code>` positions mapped
// back to the original source when the transform left a source map.
function userStack(err, ex) {
  let stack;
  try {
    stack = typeof err.stack === 'string' ? err.stack : null;
  } catch {
    stack = null;
  }
  if (stack === null) return null;
  const map = sourceMapFor(ex);
  const lines = stack.split('\n').filter((line) => {
    if (!/^\s+at /.test(line)) return true;
    return !line.includes(RUNNER_FILE) && !line.includes('node:internal') && !line.includes('(node:vm') && !line.includes('at node:vm');
  });
  let text = lines.join('\n');
  if (map !== null) {
    text = text.replace(/<code>:(\d+)(?::(\d+))?/g, (whole, l, c) => {
      const entry = map.findEntry(Number(l) - 1, c === undefined ? 0 : Number(c) - 1);
      if (!entry || typeof entry.originalLine !== 'number') return whole;
      return c === undefined
        ? `<code>:${entry.originalLine + 1}`
        : `<code>:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
    });
  }
  return text;
}

function writeFiles(files) {
  if (files === undefined || files === null) return;
  if (typeof files !== 'object' || Array.isArray(files)) {
    throw new Error('files must be an object of relative path → text');
  }
  const root = process.cwd();
  for (const [rel, text] of Object.entries(files)) {
    if (typeof text !== 'string') throw new Error('files must map relative paths to text');
    const parts = rel.split('/');
    if (!rel || rel.startsWith('/') || rel.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw new Error(
        `refused to write file ${JSON.stringify(rel)}: paths must be relative, without '.', '..' ` +
          'or empty parts, and stay inside the workspace',
      );
    }
    const target = path.join(root, ...parts);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, text, 'utf8');
  }
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

// Return value: default export (called if a function), exported main, exported handler,
// then top-level result / output, then top-level main / handler functions.
function resolveValue(mod, locals, input, context) {
  const exp = mod.exports;
  if (typeof exp === 'function') return exp(input, context);
  if (exp !== null && typeof exp === 'object') {
    if (Object.prototype.hasOwnProperty.call(exp, 'default') && exp.default !== undefined) {
      return typeof exp.default === 'function' ? exp.default(input, context) : exp.default;
    }
    if (typeof exp.main === 'function') return exp.main(input);
    if (typeof exp.handler === 'function') return exp.handler(input, context);
  }
  if (locals.result !== undefined) return locals.result;
  if (exp && exp.result !== undefined) return exp.result;
  if (locals.output !== undefined) return locals.output;
  if (exp && exp.output !== undefined) return exp.output;
  if (typeof locals.main === 'function') return locals.main(input);
  if (typeof locals.handler === 'function') return locals.handler(input, context);
  return undefined;
}

class NotSerializable extends Error {}

function replacer(key, value) {
  const orig = this[key];
  switch (typeof orig) {
    case 'bigint':
      return orig.toString();
    case 'undefined':
      return null;
    case 'function':
    case 'symbol':
      return undefined;
    case 'string':
      return wellFormed(orig);
    case 'object':
      if (orig === null) return null;
      if (Buffer.isBuffer(orig)) return orig.toString('base64');
      if (orig instanceof Map) return Object.fromEntries(orig);
      if (orig instanceof Set) return Array.from(orig);
      if (orig instanceof ArrayBuffer) return Buffer.from(orig).toString('base64');
      if (ArrayBuffer.isView(orig)) {
        return orig instanceof Uint8Array
          ? Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString('base64')
          : Array.from(orig);
      }
      if (orig instanceof Error) return { name: orig.name, message: orig.message };
      return value;
    default:
      return value;
  }
}

function serialize(value) {
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new NotSerializable(`the result is a ${typeof value}, which cannot be converted to JSON; return its value instead`);
  }
  let text;
  try {
    text = JSON.stringify(value, replacer);
  } catch (e) {
    if (e instanceof RangeError) {
      throw new NotSerializable('the result is nested too deeply (or circular through a Map) to convert to JSON');
    }
    if (e instanceof TypeError && /circular/i.test(e.message)) {
      throw new NotSerializable(`the result contains a circular reference: ${e.message.split('\n')[0]}`);
    }
    throw new NotSerializable(`the result cannot be converted to JSON: ${e.message}`);
  }
  return text === undefined ? 'null' : text;
}

function exitIntercepted(code) {
  const ex = current;
  if (ex !== null) {
    const shown = code === undefined ? '' : safeString(code);
    ex.finish('failed', null, {
      type: 'SandboxExit',
      message: `the code called process.exit(${shown}); return a value instead of exiting`,
      traceback: null,
    });
  }
  realExit(0);
}

async function execute(frame, dry) {
  const ex = new Execution(dry);
  current = ex;
  let code = frame.code;
  const input = frame.input === undefined ? {} : frame.input;
  const context = frame.context === undefined || frame.context === null ? {} : frame.context;
  if (typeof code !== 'string') {
    ex.finish('failed', null, { type: 'InvalidCode', message: 'the execute frame has no code text', traceback: null });
    return;
  }
  try {
    writeFiles(frame.files);
  } catch (e) {
    ex.finish('failed', null, { type: 'SandboxFailure', message: safeString(e.message), traceback: null });
    return;
  }
  const m = SOURCE_MAP_RE.exec(code);
  if (m !== null) {
    ex.sourceMapData = m[1];
    code = code.slice(0, m.index);
  }

  const cwd = WORKSPACE;
  const filename = CODE_PATH;
  const mod = { exports: {}, id: CODE_FILE, filename, loaded: false, children: [], paths: [] };
  const userRequire = USER_REQUIRE;
  mod.require = userRequire;
  const locals = {};
  const done = (result, output, main, handler) => {
    locals.result = result;
    locals.output = output;
    locals.main = main;
    locals.handler = handler;
  };
  globalThis.input_data = input;

  let value;
  captureStreams(ex);
  try {
    const fn = new vm.Script(WRAP_HEAD + code + WRAP_TAIL, { filename: CODE_FILE, lineOffset: -1 }).runInThisContext();
    await fn.call(mod.exports, mod.exports, userRequire, mod, filename, cwd, done);
    mod.loaded = true;
    value = resolveValue(mod, locals, input, context);
    if (isThenable(value)) value = await value;
  } catch (e) {
    ex.fail(e);
    return;
  }
  restoreStreams();

  let text;
  try {
    text = serialize(value);
  } catch (e) {
    if (!(e instanceof NotSerializable)) throw e;
    ex.finish('failed', null, { type: 'ResultNotSerializable', message: e.message, traceback: null });
    return;
  }
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_RESULT) {
    ex.finish(
      'failed',
      null,
      {
        type: 'ResultTooLarge',
        message: `the result is ${size} bytes of JSON, over the ${MAX_RESULT} byte limit; return a summary or a smaller page of the data`,
        traceback: null,
      },
      true,
    );
    return;
  }
  ex.finish('completed', text, null, false);
}

function failCurrent(err) {
  if (current !== null && !current.sent) {
    current.fail(err);
    realExit(0);
  }
  fs.writeSync(2, `paddock runner: uncaught error outside an execution: ${safeString(err && err.stack)}\n`);
  realExit(0);
}

// `--on-demand`: an execution is already waiting for this slot, so the warm-up (which only
// pays off in a pool) is skipped.
const ON_DEMAND = process.argv.slice(2).includes('--on-demand');
const WARM_UP_RUNS = ON_DEMAND ? 0 : 8;
const WARM_UP = {
  type: 'execute',
  execution_id: 'warm-up',
  code: 'const result = [1 + 1, { a: "b" }];\nconsole.log("x");',
  input: {},
  files: {},
  context: {},
};

async function main() {
  process.on('uncaughtException', failCurrent);
  process.on('unhandledRejection', failCurrent);
  process.on('beforeExit', () => {
    if (current !== null && !current.sent) {
      current.finish('failed', null, {
        type: 'UnsettledPromise',
        message: 'the code is waiting on a promise that can never settle (nothing left for it to wait on)',
        traceback: null,
      });
    }
    realExit(0);
  });
  process.exit = exitIntercepted;

  // V8 compiles functions lazily on first call: one dry execution (through capture,
  // conventions and serialization; `const`, so no global is left behind) makes the real
  // one take the warm path.
  for (let i = 0; i < WARM_UP_RUNS; i++) await execute(WARM_UP, true);
  current = null;
  globalThis.input_data = undefined;

  sendFrame({ type: 'ready', language: 'typescript', pid: process.pid });
  let frame;
  try {
    frame = recvFrame();
  } catch (e) {
    fs.writeSync(2, `paddock runner: bad request: ${e.message}\n`);
    realExit(2);
    return;
  }
  if (frame === null) {
    realExit(0);
    return;
  }
  if (frame.type !== 'execute') {
    fs.writeSync(2, `paddock runner: expected execute, got ${JSON.stringify(frame.type)}\n`);
    realExit(2);
    return;
  }
  execute(frame).then(
    () => exitAfterResult(),
    (e) => {
      if (current !== null && !current.sent) {
        current.finish('failed', null, { type: 'SandboxFailure', message: `runner error: ${safeString(e)}`, traceback: null });
      }
      exitAfterResult();
    },
  );
}

// The result is out. Exiting at once would tear the process, nsjail and the namespaces down
// while the worker is still answering its client: close the response pipe (the worker sees
// its end), wait until the worker closes the request pipe (or kills the slot), then exit.
function exitAfterResult() {
  try {
    fs.closeSync(RESP_FD);
    fs.readSync(REQ_FD, Buffer.alloc(1), 0, 1, null);
  } catch (_) {
    // EOF, EAGAIN or a closed fd: exit now.
  }
  realExit(0);
}

void protocolMoved;
main().catch((e) => {
  fs.writeSync(2, `paddock runner: start-up failed: ${safeString(e && e.stack)}\n`);
  realExit(2);
});
