#!/usr/bin/env bash
# A short profile of each k6 script (bench/k6) against a node it starts:
# connect.js (ramp to CONNS and hold), chat.js (VUs join and publish),
# ai.js (100 VUs asking the echo backend). Each run prints k6's summary;
# a failed threshold fails the script. `make bench-k6` runs it after
# building bin/edgehub.
#
#   scripts/bench-k6.sh              port 18090, CONNS=2000
#   BENCH_K6_PORT=P CONNS=N scripts/bench-k6.sh
#
# It kills by pid the node it started, and nothing else.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${EDGEHUB_BIN:-$root/bin/edgehub}
port=${BENCH_K6_PORT:-18090}
conns=${CONNS:-2000}
k6=$(command -v k6 || echo "$(go env GOPATH)/bin/k6")
[[ -x $k6 ]] || { echo "bench-k6: k6 not found (scripts/install-k6.sh installs it)" >&2; exit 2; }
[[ -x $bin ]] || { echo "bench-k6: $bin not built (make build)" >&2; exit 2; }

node_pid=
log=$(mktemp)
cleanup() {
	[[ -n $node_pid ]] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every connection is a file on both sides.
ulimit -n "$(ulimit -Hn)"
# 100 in-process AI workers so that ai.js measures answers, not a queue.
"$bin" -listen "127.0.0.1:$port" -ai-workers 100 -log-level warn >"$log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
	kill -0 "$node_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
	sleep 0.1
done
url=ws://127.0.0.1:$port/ws

run() {
	echo "+ k6 run $*" >&2
	"$k6" run --quiet --no-usage-report "$@"
}
cd "$root/bench/k6"
run -e EDGEHUB_URL="$url" -e CONNS="$conns" -e RAMP=5s -e HOLD=10s \
	-e METRICS_URL="http://127.0.0.1:$port/metrics" connect.js
run -e EDGEHUB_URL="$url" -e VUS=20 -e DURATION=10s chat.js
run -e EDGEHUB_URL="$url" -e VUS=100 -e RAMP=5s -e HOLD=10s ai.js
