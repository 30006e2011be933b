#!/usr/bin/env bash
# Benchmark: MCP tools/list on the create endpoint over TLS with keep-alive.
#
# Starts a release `paddock-edge` on a temporary data dir, then drives stateless JSON-RPC
# POSTs (the admin key, HTTP/1.1 keep-alive, TLS 1.3) with wrk and reports requests/s and
# latency percentiles. As a baseline in the same run it also measures GET /v1/health/live
# (TLS + routing + pingora only, no auth, no MCP), and the same tools/list forced through
# rmcp's stateless service (a `cursor` param, which the edge's fast path leaves to rmcp),
# so the cost of each layer is visible.
#
# Usage: benches/edge_tools_list.sh [duration_s=10] [connections=32] [wrk_threads=1]
# Needs: wrk (Debian package `wrk`), a release build (cargo build --release -p paddock-edge).
set -euo pipefail
DUR=${1:-10}
CONNS=${2:-32}
THREADS=${3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${PADDOCK_EDGE_BIN:-$TARGET/release/paddock-edge}
[ -x "$BIN" ] || { echo "no release binary at $BIN: cargo build --release -p paddock-edge" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 2; }

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" > "$WORK/edge.log" 2>&1 &
EDGE=$!
trap 'kill $EDGE 2>/dev/null; wait $EDGE 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do
  curl -sk "https://127.0.0.1:$PORT/v1/health/ready" >/dev/null 2>&1 && break
  sleep 0.05
done
KEY=$(awk '/^admin API key/ {print $NF}' "$WORK/edge.log")
[ -n "$KEY" ] || { echo "no admin key in the log" >&2; cat "$WORK/edge.log" >&2; exit 1; }
URL="https://127.0.0.1:$PORT/mcp/create/bench"
H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $KEY")
curl -sk "${H[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"make_namespace","arguments":{"name":"bench"}}}' "$URL" >/dev/null
TOOLS=$(curl -sk "${H[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' "$URL" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["tools"]))')
BYTES=$(curl -sk "${H[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' "$URL" | wc -c)

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
sed 's/"method":"tools\/list"}/"method":"tools\/list","params":{"cursor":null}}/' "$WORK/post.lua" > "$WORK/post_rmcp.lua"
cat > "$WORK/get.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA

echo "paddock-edge $(basename "$BIN") on $(nproc) cores; wrk -t$THREADS -c$CONNS -d${DUR}s; tools/list = $TOOLS tools, $BYTES bytes"
wrk -t"$THREADS" -c"$CONNS" -d2s -s "$WORK/post.lua" "$URL" >/dev/null   # warm-up
echo -n "baseline GET /v1/health/live:    "; wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -s "$WORK/get.lua" "https://127.0.0.1:$PORT/v1/health/live" | grep RESULT
echo -n "MCP tools/list via rmcp service: "; wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -s "$WORK/post_rmcp.lua" "$URL" | grep RESULT
echo -n "MCP tools/list (edge fast path): "; wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -s "$WORK/post.lua" "$URL" | grep RESULT
