// TypeScript SDK smoke test against a running paddock-edge.
// Env: PADDOCK_URL (create endpoint URL), PADDOCK_KEY (API key),
//      NODE_EXTRA_CA_CERTS=<data-dir>/tls/cert.pem to trust the development certificate.
// Exit 0 when every check passes; prints one JSON line with what it saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.env.PADDOCK_URL;
const key = process.env.PADDOCK_KEY;
const tool = process.env.PADDOCK_TOOL ?? "list_namespaces";
if (!url || !key) {
  console.error("set PADDOCK_URL and PADDOCK_KEY");
  process.exit(2);
}

function check(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "paddock-smoke", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();
check(tools.length > 0, "tools/list returned tools");
for (const t of tools) {
  check(typeof t.description === "string" && t.description.length > 0, `${t.name} has a description`);
  check(t.inputSchema && t.inputSchema.type === "object", `${t.name} has an object inputSchema`);
  check(t.outputSchema === undefined, `${t.name} declares no outputSchema`);
}
check(tools.some((t) => t.name === tool), `${tool} is listed`);

const ok = await client.callTool({ name: tool, arguments: {} });
check(ok.isError !== true, `${tool} succeeded: ${JSON.stringify(ok)}`);
check(ok.structuredContent !== undefined, `${tool} has structuredContent`);
check(ok.content[0].text === JSON.stringify(ok.structuredContent), "content[0].text is compact JSON of structuredContent");

let unknown = null;
try {
  await client.callTool({ name: "no_such_tool", arguments: {} });
} catch (e) {
  unknown = e;
}
check(unknown && unknown.code === -32602, `unknown tool is JSON-RPC -32602, got ${unknown && unknown.code}`);

await client.close();
console.log(JSON.stringify({ ok: true, tools: tools.length, called: tool }));
