#!/usr/bin/env bash
# Run a local Paddock: one edge and one worker, in the foreground, until Ctrl-C or SIGTERM.
#
#   deploy/run.sh            (normally through `make run`, which installs deps and builds release)
#
# Environment (all optional):
#   PADDOCK_BIN_DIR     where paddock-edge / paddock-worker are      (default: target/release)
#   PADDOCK_DATA        data root; edge in $PADDOCK_DATA/edge, worker in $PADDOCK_DATA/worker
#                                                                    (default: ./data)
#   PADDOCK_PORT        the edge's HTTPS port (127.0.0.1:PORT), probed and printed in the config
#                                                                    (default: 8443)
#   PADDOCK_NS          namespace used in the printed client config  (default: demo)
#   PADDOCK_RUN_EDGE_ARGS   extra arguments for `paddock-edge serve`
#   PADDOCK_RUN_WORKER_ARGS extra arguments for `paddock-worker serve`
#   PADDOCK_READY_TIMEOUT seconds to wait for /v1/health/ready       (default: 60)
# (Not PADDOCK_EDGE_* / PADDOCK_WORKER_*: the daemons read those as configuration overrides.)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${PADDOCK_BIN_DIR:-$ROOT/target/release}
DATA=${PADDOCK_DATA:-./data}
PORT=${PADDOCK_PORT:-8443}
NS=${PADDOCK_NS:-demo}
READY_TIMEOUT=${PADDOCK_READY_TIMEOUT:-60}
EDGE_ARGS=${PADDOCK_RUN_EDGE_ARGS:-}
WORKER_ARGS=${PADDOCK_RUN_WORKER_ARGS:-}
unset PADDOCK_RUN_EDGE_ARGS PADDOCK_RUN_WORKER_ARGS
EDGE_DIR=$DATA/edge
WORKER_DIR=$DATA/worker
# nsjail from deploy/install-deps.sh
export PATH=/opt/paddock/bin:$PATH

say() { printf 'run: %s\n' "$*"; }
die() {
    printf 'run: ERROR: %s\n' "$*" >&2
    exit 1
}

for b in paddock-edge paddock-worker; do
    [[ -x $BIN/$b ]] || die "$BIN/$b does not exist yet: build it with 'make run' (or cargo build --release -p ${b})"
done
mkdir -p "$EDGE_DIR" "$WORKER_DIR"

# The key-encryption key of stored secrets (remote MCP credentials, namespace secrets):
# generated once (32 random bytes as hex, mode 0600) unless the operator set one. Only the
# edge gets it; losing the file makes the stored secrets unreadable.
KEK_ENV=()
if [[ -z ${PADDOCK_EDGE_KEK:-} && -z ${PADDOCK_EDGE_KEK_FILE:-} ]]; then
    KEK_FILE=$EDGE_DIR/kek.key
    if [[ ! -s $KEK_FILE ]]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$KEK_FILE" && echo >>"$KEK_FILE")
        chmod 600 "$KEK_FILE"
        say "generated the key-encryption key $KEK_FILE (mode 0600; back it up)"
    fi
    KEK_ENV=(PADDOCK_EDGE_KEK_FILE="$KEK_FILE")
fi

EDGE_PID=
WORKER_PID=
stop() {
    trap - INT TERM EXIT
    local pid
    for pid in $WORKER_PID $EDGE_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Both daemons drain on SIGTERM; give them a deadline, then kill.
    for _ in $(seq 1 150); do
        local alive=0
        for pid in $WORKER_PID $EDGE_PID; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [[ $alive -eq 0 ]] && break
        sleep 0.2
    done
    for pid in $WORKER_PID $EDGE_PID; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    say "stopped"
}
trap 'say "stopping edge and worker"; stop; exit 0' INT TERM
trap stop EXIT

# Something else answering on the port would fool the readiness probe below.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "127.0.0.1:$PORT is already in use (another edge?); stop it or set PADDOCK_PORT and --listen"
fi

# shellcheck disable=SC2086 # extra args are word-split on purpose
env "${KEK_ENV[@]}" "$BIN/paddock-edge" serve --data-dir "$EDGE_DIR" --listen "127.0.0.1:$PORT" $EDGE_ARGS &
EDGE_PID=$!
say "edge started (pid $EDGE_PID), waiting for https://127.0.0.1:$PORT/v1/health/ready"

ready=0
for _ in $(seq 1 $((READY_TIMEOUT * 5))); do
    kill -0 "$EDGE_PID" 2>/dev/null || die "paddock-edge exited during start-up (see its messages above)"
    # Local probe of our own self-signed certificate: -k is enough here.
    if curl -skf -o /dev/null "https://127.0.0.1:$PORT/v1/health/ready"; then
        ready=1
        break
    fi
    sleep 0.2
done
[[ $ready -eq 1 ]] || die "the edge did not become ready within ${READY_TIMEOUT}s"
kill -0 "$EDGE_PID" 2>/dev/null || die "paddock-edge exited during start-up (see its messages above)"

# shellcheck disable=SC2086
"$BIN/paddock-worker" serve --edge "unix:$EDGE_DIR/workers.sock" \
    --join-token-file "$EDGE_DIR/join.token" --data-dir "$WORKER_DIR" $WORKER_ARGS &
WORKER_PID=$!
say "worker started (pid $WORKER_PID)"

KEY="<admin key: see $EDGE_DIR/admin.key>"
[[ -r $EDGE_DIR/admin.key ]] && KEY=$(tr -d '[:space:]' <"$EDGE_DIR/admin.key")
CERT=$(cd "$EDGE_DIR" && pwd)/tls/cert.pem
cat <<EOF

Paddock is ready.
  admin API key : $KEY
  TLS cert      : $CERT (self-signed; Node clients: NODE_EXTRA_CA_CERTS=$CERT, curl: --cacert $CERT)
  health        : curl --cacert $CERT https://localhost:$PORT/v1/health/ready
  metrics       : curl http://127.0.0.1:9464/metrics   (admin listener, off the public port; see docs/operations.md)

MCP client config (namespace "$NS"; create it first with make_namespace on the create endpoint):
{
  "mcpServers": {
    "paddock-create": {
      "type": "http",
      "url": "https://localhost:$PORT/mcp/create/$NS",
      "headers": { "Authorization": "Bearer $KEY" }
    },
    "paddock-run": {
      "type": "http",
      "url": "https://localhost:$PORT/mcp/run/$NS",
      "headers": { "Authorization": "Bearer $KEY" }
    }
  }
}

Ctrl-C stops both daemons.
EOF

# Stay in the foreground. The edge leaving ends the run; a worker leaving is reported (the
# edge keeps serving the create endpoints, but executions have nowhere to go).
while kill -0 "$EDGE_PID" 2>/dev/null; do
    if [[ -n $WORKER_PID ]] && ! kill -0 "$WORKER_PID" 2>/dev/null; then
        rc=0
        wait "$WORKER_PID" || rc=$?
        say "WARNING: paddock-worker exited (status $rc); executions will fail until a worker joins"
        WORKER_PID=
    fi
    sleep 1 &
    wait $! || true
done
rc=0
wait "$EDGE_PID" || rc=$?
EDGE_PID=
say "paddock-edge exited (status $rc)"
exit "$rc"
