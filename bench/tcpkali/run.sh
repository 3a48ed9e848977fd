#!/usr/bin/env bash
# tcpkali command lines for edgehub (a second, independent loader beside
# the Go load generator). tcpkali speaks RFC 6455 itself (--ws) and sends
# the JSON frames below as text frames. README.md beside this file says how
# to build tcpkali and what its quirks are.
#
#   bench/tcpkali/run.sh hold  [ADDR]  hold CONNS connections, each joined to one room
#   bench/tcpkali/run.sh rate  [ADDR]  CONNS connections, each publishing RATE msg/s to
#                                      its own room and timing its own message's return
#   bench/tcpkali/run.sh storm [ADDR]  open CONNS connections at CONNECT_RATE/s and hold
#                                      them; reports the most the node held at once
#                                      (edgehub_connections_active from its /metrics)
#   bench/tcpkali/run.sh soak  [ADDR]  a long `rate` run (DURATION, default 10m) with the
#                                      node's RSS, goroutines and connections from
#                                      /metrics before and after
#
# ADDR defaults to 127.0.0.1:8080 (a node started with -insecure). Knobs
# from the environment: CONNS, CONNECT_RATE, RATE, DURATION, and
# METRICS_URL (default http://ADDR/metrics; the -internal-listen address's
# /metrics when the node has one).
#
# tcpkali is not in Debian bookworm's packages: build it from its source
# release (README.md). Without it this script exits 3 and says so.
set -euo pipefail

mode=${1:-}
addr=${2:-127.0.0.1:8080}
conns=${CONNS:-1000}
connect_rate=${CONNECT_RATE:-2000}
rate=${RATE:-1}
duration=${DURATION:-30s}
[[ $mode == soak ]] && duration=${DURATION:-10m}
metrics_url=${METRICS_URL:-http://$addr/metrics}

case $mode in
hold | rate | storm | soak) ;;
*) echo "usage: $0 {hold|rate|storm|soak} [127.x.x.x:port]" >&2; exit 2 ;;
esac
case $addr in 127.*) ;; *) echo "refusing $addr: load goes to 127.0.0.0/8 only" >&2; exit 2 ;; esac
if ! command -v tcpkali >/dev/null; then
	echo "tcpkali is not installed (not packaged in Debian bookworm); build it from source: see $(dirname "$0")/README.md" >&2
	exit 3
fi

# The frames sent. \{connection.uid} is tcpkali's per-connection number,
# so each connection has a room of its own; -e turns on those expressions.
hold_join='{"type":"join","room":"tk-hold"}'
rate_join='{"type":"join","room":"tk-\{connection.uid}"}'
rate_publish='{"type":"publish","room":"tk-\{connection.uid}","data":{"from":"tcpkali","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}}'

# metric NAME: the node's value of one unlabelled series, from /metrics.
metric() {
	curl -fsS --max-time 5 "$metrics_url" | awk -v n="$1" '$1 == n { print $2; exit }'
}
node_state() {
	printf 'node %s: rss=%s goroutines=%s connections=%s\n' "$1" \
		"$(metric process_resident_memory_bytes)" "$(metric go_goroutines)" "$(metric edgehub_connections_active)"
}

hold_cmd=(tcpkali --ws -c "$conns" --connect-rate "$connect_rate" -T "$duration"
	-e --first-message "$hold_join" "$addr/ws")
# The latency marker is the start of the server's `message` frame: the
# time from a publish to its delivery back to the same connection.
rate_cmd=(tcpkali --ws -c "$conns" --connect-rate "$connect_rate" -T "$duration"
	-e --first-message "$rate_join" -m "$rate_publish" -r "$rate"
	--latency-marker '"type":"message"' --latency-percentiles 50,99,99.9 "$addr/ws")

show() { printf '+ %q ' "$@" >&2; echo >&2; }

case $mode in
hold) show "${hold_cmd[@]}"; exec "${hold_cmd[@]}" ;;
rate) show "${rate_cmd[@]}"; exec "${rate_cmd[@]}" ;;
storm)
	curl -fsS --max-time 5 "$metrics_url" >/dev/null || { echo "cannot read $metrics_url" >&2; exit 2; }
	show "${hold_cmd[@]}"
	"${hold_cmd[@]}" &
	pid=$!
	trap 'kill "$pid" 2>/dev/null || true' EXIT
	peak=0
	while kill -0 "$pid" 2>/dev/null; do
		n=$(metric edgehub_connections_active || true)
		[[ -n $n ]] && ((n > peak)) && peak=$n
		sleep 1
	done
	wait "$pid" && rc=0 || rc=$?
	echo "storm: the node held at most $peak of $conns connections (opened at $connect_rate/s); tcpkali exit $rc"
	exit "$rc"
	;;
soak)
	node_state before
	show "${rate_cmd[@]}"
	"${rate_cmd[@]}" && rc=0 || rc=$?
	sleep 2 # let the node close what tcpkali left
	node_state after
	exit "$rc"
	;;
esac
