#!/usr/bin/env bash
# Benchmark: end-to-end MCP `execute` over TLS — a real edge and a real worker (release
# builds, real nsjail slots) — in one run, for warm pools and for fresh-jail mode.
#
# For each mode it starts a release `paddock-edge` on a temporary data dir and one
# `paddock-worker serve` joined over the edge's Unix socket, then sets up what a user would:
# an API key of its own (admin key → JWT → POST /v1/auth/api-keys, scope execute, bound to
# the namespace), a namespace, a service and the hello-world function. It then drives
# stateless JSON-RPC `tools/call execute` POSTs with `paddock-edge bench execute` (closed
# loop, TLS 1.3, keep-alive) at concurrency 1, 8 and 32 and prints p50/p99 latency and
# throughput per row, plus one summary table at the end.
#
#   warm   the worker keeps POOL pre-started slots for the enterprise tier (the admin
#          account's tier; a slot serves one execution and is replaced in the background)
#   fresh  pool size 0: every execution starts a fresh jail
#
# A slot serves one execution, so a closed loop drains any pool within milliseconds: after
# that every execution waits for a refill, and the closed-loop rows measure the refill rate
# (throughput) more than the warm path. The `warm@RATE/s` row is an open loop (latency from
# each request's intended start, 8 workers) at a rate the refill keeps up with: there every
# execution finds a warm slot, which is the warm-path latency.
#
# Usage: benches/execute_e2e.sh [duration_s=10] [warm_pool=32]
# Env:   CODE (default `result = 1 + 1`), CONCURRENCY (default "1 8 32"), MODES ("warm fresh"),
#        RATE (open-loop warm row, requests/s, default 10; 0 skips it),
#        BENCH_ARGS (more `paddock-edge bench` options, e.g. `--http 2`),
#        WARMUP_S (default 2), PADDOCK_EDGE_BIN / PADDOCK_WORKER_BIN (default target/release),
#        KEEP_LOGS=DIR (copy each mode's edge and worker logs there; the edge logs one line per
#        execution with `total_ms` (dispatch to result) and `slot_ms` (inside the slot)).
# Needs: cargo build --release -p paddock-edge -p paddock-worker; deploy/install-deps.sh (nsjail).
set -euo pipefail
DUR=${1:-10}
POOL=${2:-32}
CODE=${CODE:-'result = 1 + 1'}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
MODES=${MODES:-"warm fresh"}
WARMUP_S=${WARMUP_S:-2}
RATE=${RATE:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
EDGE_BIN=${PADDOCK_EDGE_BIN:-$TARGET/release/paddock-edge}
WORKER_BIN=${PADDOCK_WORKER_BIN:-$TARGET/release/paddock-worker}
for b in "$EDGE_BIN" "$WORKER_BIN"; do
  [ -x "$b" ] || { echo "no release binary at $b: cargo build --release -p paddock-edge -p paddock-worker" >&2; exit 2; }
done
export PATH="/opt/paddock/bin:$PATH"
command -v nsjail >/dev/null || { echo "nsjail missing: deploy/install-deps.sh" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The bench account is the admin's (enterprise tier). Its limits are raised so the
# benchmark measures the platform, not the per-minute rate limiter.
export PADDOCK_EDGE_GRACE_PERIOD_SECS=1
export PADDOCK_EDGE_LIMITS_ENTERPRISE_MONTHLY_EXECUTIONS=100000000
export PADDOCK_EDGE_LIMITS_ENTERPRISE_EXECUTIONS_PER_MINUTE=1000000
export PADDOCK_EDGE_LIMITS_ENTERPRISE_EXECUTION_BURST=1000000
export PADDOCK_EDGE_LIMITS_ENTERPRISE_CONCURRENT_EXECUTIONS=100000

rpc() { # rpc URL KEY JSON → body
  curl -sS --cacert "$CACERT" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $2" -d "$3" "$1"
}
call_tool() { # call_tool URL KEY NAME ARGS_JSON → fails unless the tool call succeeded
  local body
  body=$(rpc "$1" "$2" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$3\",\"arguments\":$4}}")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if "result" in r and not r["result"].get("isError") else "tool failed: "+sys.argv[1][:600])' "$body"
}

start_stack() { # start_stack MODE POOL → sets URL, KEYFILE, CACERT
  local mode=$1 pool=$2 dir="$WORK/$1"
  mkdir -p "$dir"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$EDGE_BIN" serve --data-dir "$dir/edge" --listen "127.0.0.1:$PORT" > "$dir/edge.log" 2>&1 &
  PIDS+=($!)
  CACERT="$dir/edge/tls/cert.pem"
  for _ in $(seq 400); do
    [ -f "$CACERT" ] && curl -s --cacert "$CACERT" "https://localhost:$PORT/v1/health/ready" >/dev/null 2>&1 && break
    sleep 0.05
  done
  PADDOCK_WORKER_POOL_ENTERPRISE_PYTHON=$pool PADDOCK_WORKER_POOL_ENTERPRISE_TYPESCRIPT=0 \
  PADDOCK_WORKER_POOL_FREE_PYTHON=0 PADDOCK_WORKER_POOL_FREE_TYPESCRIPT=0 PADDOCK_WORKER_DEFAULT_POOL_TARGET=0 \
    "$WORKER_BIN" serve --edge "unix:$dir/edge/workers.sock" --join-token-file "$dir/edge/join.token" \
    --data-dir "$dir/worker" > "$dir/worker.log" 2>&1 &
  PIDS+=($!)
  local admin ns=bench jwt
  admin=""
  for _ in $(seq 100); do
    admin=$(awk '/^admin API key/ {print $NF}' "$dir/edge.log")
    [ -n "$admin" ] && break
    [ -f "$dir/edge/admin.key" ] && admin=$(cat "$dir/edge/admin.key") && break
    sleep 0.05
  done
  [ -n "$admin" ] || { echo "no admin key from the edge:" >&2; cat "$dir/edge.log" >&2; exit 1; }
  local create="https://localhost:$PORT/mcp/create/$ns"
  call_tool "$create" "$admin" make_namespace '{"name":"bench"}'
  call_tool "$create" "$admin" make_service '{"name":"tools"}'
  call_tool "$create" "$admin" make_function '{"service":"tools","name":"hello","backend":"code_sandbox","template":"hello-world"}'
  jwt=$(curl -sS --cacert "$CACERT" -X POST -H "Authorization: Bearer $admin" "https://localhost:$PORT/v1/auth/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sS --cacert "$CACERT" -H 'Content-Type: application/json' -H "Authorization: Bearer $jwt" \
    -d "{\"name\":\"bench\",\"scopes\":[\"execute\"],\"namespace\":\"$ns\"}" "https://localhost:$PORT/v1/auth/api-keys" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' > "$dir/bench.key"
  KEYFILE="$dir/bench.key"
  URL="https://localhost:$PORT/mcp/run/$ns"
  # Wait until the worker has joined and the pool is full: one execution answers, then the
  # pool refills while we wait (fresh mode has nothing to fill).
  local key; key=$(cat "$KEYFILE")
  for _ in $(seq 600); do
    call_tool "$URL" "$key" execute '{"code":"from functions import hello; result = hello(name=\"World\")"}' 2>/dev/null && break
    sleep 0.1
  done
  call_tool "$URL" "$key" execute '{"code":"from functions import hello; result = hello(name=\"World\")"}'
  if [ "$mode" = warm ]; then sleep $(( pool / 8 + 2 )); fi
}

stop_stack() {
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS"
    for f in "$WORK"/*/edge.log "$WORK"/*/worker.log; do
      [ -f "$f" ] && cp "$f" "$KEEP_LOGS/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

echo "execute end to end over TLS: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')"
echo "code: $CODE; ${DUR}s per row after ${WARMUP_S}s warm-up; closed loop; warm pool $POOL slots"
SUMMARY="$WORK/summary.txt"
: > "$SUMMARY"
for mode in $MODES; do
  pool=$POOL; [ "$mode" = fresh ] && pool=0
  start_stack "$mode" "$pool"
  rows=()
  for c in $CONCURRENCY; do rows+=("$mode:$c::execute"); done
  if [ "$mode" = warm ] && [ "$RATE" != 0 ]; then
    rows+=("warm@${RATE}/s:8:$RATE:execute")
    # The same open loop answered by the edge alone (run-endpoint tools/list: TLS, HTTP,
    # auth, JSON-RPC, no worker): the HTTP side's share of the warm row.
    rows+=("list@${RATE}/s:8:$RATE:tools-list")
  fi
  for row in "${rows[@]}"; do
    IFS=: read -r label c rate scenario <<< "$row"
    if [ "$mode" = warm ]; then sleep $(( pool / 8 + 1 )); fi   # let the pool refill between rows
    out="$WORK/$mode-$c-$rate.json"
    "$EDGE_BIN" bench "$scenario" --url "$URL" --api-key-file "$KEYFILE" --cacert "$CACERT" \
      --code "$CODE" -c "$c" ${rate:+--rate "$rate"} --duration "${DUR}s" --warmup "${WARMUP_S}s" \
      --json --no-progress ${BENCH_ARGS:-} > "$out"
    python3 - "$out" "$label" "$c" <<'PY' | tee -a "$SUMMARY"
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
errs = ",".join(f"{k}={v}" for k, v in r["errors_by_code"].items()) or "-"
print(f"{sys.argv[2]:<11} c={int(sys.argv[3]):<3} n={r['requests']:<6} ok/s={r['ok_rps']:8.1f}  "
      f"p50={l['p50']:8.2f} ms  p90={l['p90']:8.2f} ms  p99={l['p99']:8.2f} ms  max={l['max']:8.2f} ms  "
      f"{r.get('http_version') or '-'}  errors={r['errors']} {errs}")
PY
  done
  stop_stack
done
echo
echo "summary (load after the run: $(uptime | sed 's/.*load average: //'))"
cat "$SUMMARY"
