#!/usr/bin/env bash
# Benchmark: the 429 path under a flood, with `paddock-edge bench` on both sides.
#
# Starts a release `paddock-edge` on a temporary data dir, registers two free-tier accounts
# (monthly quota 1 via PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS, so the flooder is over
# quota after one execution; the well-behaved account is the admin, enterprise tier) and
# runs, in one go:
#   1. the well-behaved account alone: `bench tools-list` on its create endpoint, open loop
#      at WELL_RATE requests/s (latency measured from each request's intended start);
#   2. the flooder alone: `bench execute` closed loop with FLOOD_C requests in flight on its
#      run endpoint — every answer is 429 QUOTA_EXCEEDED; reported as rejections/s;
#   3. both at once (two bench processes), the well-behaved one measured again.
# Before them, the tools/list throughput of the well-behaved account (closed loop, c=32).
# Prints one line per phase from the bench JSON reports, plus `uptime` before and after.
#
# FLOOD_RATE=R (bench only) floods in an open loop at R requests/s instead of flat out.
# FLOOD_NICE=N runs the flooding client at nice N (e.g. 19): on one 2-core box the flooder's
# own CPU otherwise competes with the edge and the well-behaved client, which a remote
# flooder would not; the edge itself is never reniced.
# Usage: [FLOOD_TOOL=bench|wrk] [FLOOD_RATE=R] [FLOOD_NICE=N] benches/quota_flood.sh [seconds=10] [flood_concurrency=64] [well_rate=500]
# Needs: cargo build --release -p paddock-edge; python3 (to read the JSON reports).
set -euo pipefail
DUR=${1:-10}
FLOOD_C=${2:-64}
WELL_RATE=${3:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${PADDOCK_EDGE_BIN:-$TARGET/release/paddock-edge}
[ -x "$BIN" ] || { echo "no release binary at $BIN: cargo build --release -p paddock-edge" >&2; exit 2; }

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS=1 PADDOCK_EDGE_ADMIN_LISTEN=off \
  "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" > "$WORK/edge.log" 2>&1 &
EDGE=$!
trap 'kill $EDGE 2>/dev/null; wait $EDGE 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do
  curl -sk "https://127.0.0.1:$PORT/v1/health/ready" >/dev/null 2>&1 && [ -f "$WORK/data/admin.key" ] && break
  sleep 0.05
done
BASE="https://localhost:$PORT"
CA="$WORK/data/tls/cert.pem"
ADMIN=$(cat "$WORK/data/admin.key")
J=(-s --cacert "$CA" -H 'Content-Type: application/json')
MCP=(-H 'Accept: application/json, text/event-stream')

# The flooder: a free account with its namespace, over its quota after one execution.
curl "${J[@]}" -d '{"email":"flood@example.com","password":"correct horse battery","name":"F","accept_tos":true}' "$BASE/v1/auth/register" >/dev/null
JWT=$(curl "${J[@]}" -d '{"email":"flood@example.com","password":"correct horse battery"}' "$BASE/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
FLOOD=$(curl "${J[@]}" -H "Authorization: Bearer $JWT" -d '{"name":"flood"}' "$BASE/v1/auth/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
curl "${J[@]}" "${MCP[@]}" -H "Authorization: Bearer $FLOOD" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"make_namespace","arguments":{"name":"flood"}}}' "$BASE/mcp/create/flood" >/dev/null
curl "${J[@]}" "${MCP[@]}" -H "Authorization: Bearer $FLOOD" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute","arguments":{"code":"result = 1"}}}' "$BASE/mcp/run/flood" >/dev/null
CODE=$(curl "${J[@]}" "${MCP[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FLOOD" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute","arguments":{"code":"result = 1"}}}' "$BASE/mcp/run/flood")
[ "$CODE" = 429 ] || { echo "the flooder is not over quota (HTTP $CODE)" >&2; exit 1; }
# The well-behaved account's namespace.
curl "${J[@]}" "${MCP[@]}" -H "Authorization: Bearer $ADMIN" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"make_namespace","arguments":{"name":"calm"}}}' "$BASE/mcp/create/calm" >/dev/null

well() {
  "$BIN" bench tools-list --url "$BASE/mcp/create/calm" --api-key "$ADMIN" --cacert "$CA" \
    --rate "$WELL_RATE" -c 16 --duration "${DUR}s" --warmup 1s --json
}
cat > "$WORK/flood.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute","arguments":{"code":"result = 1"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $FLOOD"
done = function(summary, latency, requests)
  io.write(string.format('{"throughput_rps": %.1f, "ok": 0, "http_version": "HTTP/1.1 (wrk)", "errors_by_code": {"non-429 or socket errors": %d, "responses": %d}, "latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "max": %.3f}}\n',
    summary.requests / (summary.duration / 1e6), summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status - summary.requests,
    summary.requests, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA
# FLOOD_TOOL=wrk floods with wrk (HTTP/1.1 keep-alive, one thread): a cheaper client, so
# more of the 2 cores is left to the edge. Every answer is a 429, which wrk counts as a
# status error, so "non-429 or socket errors" is status errors minus requests (0 = all 429).
flood() {
  if [ "${FLOOD_TOOL:-bench}" = wrk ]; then
    nice -n "${FLOOD_NICE:-0}" wrk -t1 -c "$FLOOD_C" -d "$1" -s "$WORK/flood.lua" "$BASE/mcp/run/flood" | grep '^{'
  else
    nice -n "${FLOOD_NICE:-0}" "$BIN" bench execute --url "$BASE/mcp/run/flood" --api-key "$FLOOD" --cacert "$CA" \
      --code 'result = 1' -c "$FLOOD_C" --duration "$1" --warmup 1s --json \
      ${FLOOD_RATE:+--rate "$FLOOD_RATE"}
  fi
}
summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
lat = r["latency_ms"]
print(f"{sys.argv[1]:<32} {r['throughput_rps']:>9.0f} req/s  ok {r['ok']:>7}  "
      f"p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  p99 {lat['p99']:.3f} ms  "
      f"max {lat['max']:.3f} ms  errors {r['errors_by_code']}  http {r['http_version']}")
PY
}

echo "load before: $(uptime)"
# 0. tools/list throughput of the well-behaved account, closed loop (for docs/performance.md).
"$BIN" bench tools-list --url "$BASE/mcp/create/calm" --api-key "$ADMIN" --cacert "$CA" \
  -c 32 --duration "${DUR}s" --warmup 1s --json > "$WORK/list_max.json"
well > "$WORK/well_alone.json"
flood "${DUR}s" > "$WORK/flood_alone.json"
flood "$((DUR + 3))s" > "$WORK/flood_with.json" &
FPID=$!
sleep 1.5
well > "$WORK/well_with.json"
wait $FPID
echo "load after:  $(uptime)"
summary "tools/list, closed loop, c=32" "$WORK/list_max.json"
summary "well-behaved alone (tools/list)" "$WORK/well_alone.json"
summary "flood alone (execute, 429s)" "$WORK/flood_alone.json"
summary "well-behaved during the flood" "$WORK/well_with.json"
summary "flood beside the well-behaved" "$WORK/flood_with.json"
if [ -n "${KEEP_REPORTS:-}" ]; then cp "$WORK"/*.json "$KEEP_REPORTS"/; fi
