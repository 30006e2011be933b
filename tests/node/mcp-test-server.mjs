// A small MCP server for Paddock's remote-MCP tests, built on the official TypeScript SDK
// (stateless streamable HTTP, JSON replies), on 127.0.0.1 only.
//
//   AUTH_TOKEN=t [REQUIRE_HEADER=x-tenant:acme] PORT=0 node mcp-test-server.mjs
//
// Every /mcp request needs `Authorization: Bearer $AUTH_TOKEN` (401 otherwise) and, when
// REQUIRE_HEADER is set, that header. Tools: echo_args (returns its arguments as
// structuredContent), slow {ms}, html, big {bytes}, fail (isError), dropper (counts calls),
// plus tools added at run time. Test control (no auth, loopback only):
//   POST /admin/drop?n=N     the next N MCP POSTs are answered by destroying the socket
//   POST /admin/tools        {"add":[{"name","description"}], "remove":[names], "describe":{name: text}}
//   GET  /admin/stats        {"posts", "unauthorized", "dropped", "calls": {tool: n}}
// Prints `PADDOCK_LISTENING <port>` on stderr once listening.
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const TOKEN = process.env.AUTH_TOKEN || "";
const [REQ_H, REQ_V] = (process.env.REQUIRE_HEADER || "").split(":");
const stats = { posts: 0, unauthorized: 0, dropped: 0, calls: {} };
let dropNext = 0;
const extra = new Map(); // name -> description
const descriptions = new Map(); // overrides of built-in descriptions
const removed = new Set();

function count(name) {
  stats.calls[name] = (stats.calls[name] || 0) + 1;
}

function build() {
  const server = new McpServer({ name: "paddock-test-server", version: "1.0.0" });
  const tool = (name, desc, shape, fn) => {
    if (removed.has(name)) return;
    server.tool(name, descriptions.get(name) || desc, shape, async (args) => {
      count(name);
      return fn(args);
    });
  };
  tool("echo_args", "Returns its arguments", { q: z.string().optional(), api_key: z.string().optional(), tenant: z.string().optional(), limit: z.number().optional(), user_id: z.string().optional() },
    async (args) => ({ content: [{ type: "text", text: JSON.stringify(args) }], structuredContent: { args } }));
  tool("slow", "Sleeps ms milliseconds", { ms: z.number() }, async ({ ms }) => {
    await new Promise((r) => setTimeout(r, ms));
    return { content: [{ type: "text", text: `slept ${ms}` }] };
  });
  tool("html", "Returns HTML", {}, async () => ({
    content: [{ type: "text", text: "<p>Hello <b>world</b></p><script>alert(1)</script>" }],
  }));
  tool("big", "Returns a large text", { bytes: z.number() }, async ({ bytes }) => ({
    content: [{ type: "text", text: "x".repeat(bytes) }],
  }));
  tool("fail", "Always reports a tool error", {}, async () => ({
    isError: true, content: [{ type: "text", text: "this tool always fails" }],
  }));
  tool("secret_record", "Returns a record with sensitive fields", {}, async () => ({
    content: [{ type: "text", text: "record" }],
    structuredContent: { user: "ann", ssn: "123-45-6789", nested: { password: "pw", ok: 1 } },
  }));
  for (const [name, desc] of extra) {
    tool(name, desc, { x: z.string().optional() }, async (args) => ({ content: [{ type: "text", text: `${name}:${JSON.stringify(args)}` }] }));
  }
  return server;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  try {
    if (url.pathname === "/admin/drop") {
      dropNext = Number(url.searchParams.get("n") || "1");
      res.writeHead(200).end("{}");
      return;
    }
    if (url.pathname === "/admin/tools") {
      const b = (await readBody(req)) || {};
      for (const t of b.add || []) extra.set(t.name, t.description || t.name);
      for (const n of b.remove || []) { extra.delete(n); removed.add(n); }
      for (const [n, d] of Object.entries(b.describe || {})) descriptions.set(n, d);
      res.writeHead(200).end("{}");
      return;
    }
    if (url.pathname === "/admin/stats") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats));
      return;
    }
    if (url.pathname !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}` || (REQ_H && req.headers[REQ_H] !== REQ_V)) {
      stats.unauthorized++;
      res.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}');
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const body = await readBody(req);
    stats.posts++;
    if (dropNext > 0 && body && body.method === "tools/call") {
      dropNext--;
      stats.dropped++;
      req.socket.destroy();
      return;
    }
    const server = build();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});
httpServer.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  process.stderr.write(`PADDOCK_LISTENING ${httpServer.address().port}\n`);
});
