#!/usr/bin/env bash
# Fleet benchmarks (not part of `make test`): node processes on one Redis
# started here on a free loopback port, nodes pinned to CPU 0 (with Redis),
# loaders to CPU 1. Results go to bench/results/fleet/.
#
#   scripts/bench-fleet.sh cross [DURATION]
#       In one run: (a) one node without Redis, (b) 3 nodes on one Redis,
#       each with 10,000 subscribers in one room (spread over the 3 nodes in
#       (b)) and 10 msg/s published on the first node for DURATION (default
#       30s); then `edgehub-bench floor`. Prints and records the ratios.
#   scripts/bench-fleet.sh hold [CONNS] [NODES]
#       CONNS connections (default 100000) over NODES node processes (default
#       6) on one Redis, 100 rooms, one loader per node; once every loader
#       has joined all of its connections (each holds them until told to go
#       on) the nodes' edgehub_connections_active and RSS are read, then one
#       message is published to every room and each loader counts what
#       reached its connections.
#   scripts/bench-fleet.sh publish [PUBLISHERS] [DURATION]
#       Publish throughput of one room over Redis: PUBLISHERS (default 50)
#       WebSocket connections on one node publish to one room, each waiting
#       for its ack before the next (edgehub-bench publish).
#
# EDGEHUB_BIN=path uses a node binary built elsewhere. Nodes and Redis take
# free loopback ports. Every process started here is killed by
# pid on exit; sysctls changed are restored.
set -euo pipefail

mode=${1:-}
case $mode in
cross | hold | publish) ;;
*) echo "usage: $0 cross [DURATION] | hold [CONNS] [NODES] | publish [PUBLISHERS] [DURATION]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bench/results/fleet
work=$(mktemp -d)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
pids=()       # every process started here
node_pids=()  # nodes of the current step
node_urls=()  # their ws:// URLs
node_http=()  # and HTTP origins
redis_pid=
redis_port=

# shellcheck source=SCRIPTDIR/bench-lib.sh
source "$root/scripts/bench-lib.sh"

# stop_started kills every process started here, by pid (cleanup calls it
# on exit).
stop_started() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
install_cleanup

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

prepare_host
run mkdir -p "$out"
build_binaries
bench=$work/edgehub-bench

start_redis() {
	redis_port=$(free_port)
	show "taskset -c 0 redis-server --bind 127.0.0.1 --port $redis_port --save '' --appendonly no &"
	taskset -c 0 redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
		--dir "$work" >"$work/redis.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	for _ in $(seq 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	log "redis-server did not start; its log:"
	cat "$work/redis.log" >&2
	exit 1
}

stop_redis() {
	show "kill $redis_pid"
	kill "$redis_pid" 2>/dev/null || true
	wait "$redis_pid" 2>/dev/null || true
	redis_pid=
}

# start_node I FLAGS...: node I on a free port, pinned to CPU 0. (A fixed
# port range would collide with ephemeral ports, widened above.)
start_node() {
	local i=$1 p pid
	shift
	p=$(free_port)
	start_edgehub "$p" "$work/node$i.log" "$@"
	pid=$edgehub_pid
	pids+=("$pid")
	node_pids+=("$pid")
	node_urls+=("ws://127.0.0.1:$p/ws")
	node_http+=("http://127.0.0.1:$p")
	wait_healthy "$pid" "$p" "$work/node$i.log" "node $i"
}

stop_nodes() {
	show "kill ${node_pids[*]}"
	for pid in "${node_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	node_pids=()
	node_urls=()
	node_http=()
}

# fleet N [FLAGS...]: Redis and N nodes on it.
fleet() {
	local i n=$1
	shift
	start_redis
	for ((i = 1; i <= n; i++)); do
		start_node "$i" -node-id "fleet$i" -redis "redis://127.0.0.1:$redis_port" "$@"
	done
}

join_by() {
	local IFS=$1
	shift
	echo "$*"
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# cross [DURATION]: single node vs 3 nodes on Redis, then the floor.
cross() {
	local d=${1:-30s} single=$out/$stamp-cross-single.json fleetf=$out/$stamp-cross-fleet3.json
	local floorf=$out/$stamp-cross-floor.json summary=$out/$stamp-cross.json
	local load=(fanout -api-key "$key" -sources "$sources" -conns 10000 -rooms 1 -size 64 -rate 10 -duration "$d")

	start_node 0 -node-id single
	show "taskset -c 1 $bench ${load[*]} -url ${node_urls[0]} -server-pid ${node_pids[0]} > $single"
	taskset -c 1 "$bench" "${load[@]}" -url "${node_urls[0]}" -server-pid "${node_pids[0]}" >"$single"
	stop_nodes

	fleet 3
	show "taskset -c 1 $bench ${load[*]} -url ${node_urls[0]} -spread ${node_urls[1]},${node_urls[2]} -server-pid ${node_pids[0]} -peer-pids ${node_pids[1]},${node_pids[2]} -redis-addr 127.0.0.1:$redis_port > $fleetf"
	taskset -c 1 "$bench" "${load[@]}" -url "${node_urls[0]}" -spread "${node_urls[1]},${node_urls[2]}" \
		-server-pid "${node_pids[0]}" -peer-pids "${node_pids[1]},${node_pids[2]}" \
		-redis-addr "127.0.0.1:$redis_port" >"$fleetf"
	stop_nodes
	stop_redis

	show "taskset -c 0,1 $bench floor -conns 5000 > $floorf"
	taskset -c 0,1 "$bench" floor -conns 5000 >"$floorf"

	jq -n --slurpfile s "$single" --slurpfile f "$fleetf" --slurpfile fl "$floorf" '
		def d(r): r.summary.delivery | {published, expected, received, lost, duplicates,
			p50Ms: .latency.p50Ms, p99Ms: .latency.p99Ms, cpuSecondsPerMillion,
			redisCpuSeconds, redisUsPerPublish};
		{date: $f[0].date, machine: $f[0].machine,
		 single: d($s[0]), fleet3: d($f[0]),
		 ratio: {p50: (d($f[0]).p50Ms / d($s[0]).p50Ms), p99: (d($f[0]).p99Ms / d($s[0]).p99Ms),
			cpuPerMillion: (d($f[0]).cpuSecondsPerMillion / d($s[0]).cpuSecondsPerMillion)},
		 floorUsPerWrite: $fl[0].floor.medianMicrosPerWrite,
		 loaderLimited: {single: $s[0].summary.loaderLimitedReason, fleet3: $f[0].summary.loaderLimitedReason},
		 files: {single: $s[0].command, fleet3: $f[0].command}}' >"$summary"
	log "cross: $(jq -c '{single: .single | {p50Ms, p99Ms, lost, cpuSecondsPerMillion}, fleet3: .fleet3 | {p50Ms, p99Ms, lost, cpuSecondsPerMillion, redisUsPerPublish}, ratio, floorUsPerWrite}' "$summary")"
	log "cross: written $summary"
}

# hold [CONNS] [NODES]: CONNS connections over NODES nodes on one Redis,
# all held at once, then one publish to every room.
hold() {
	local conns=${1:-100000} nodes=${2:-6} i per rss0=0 rss=0 total=0 loaders=() files=() summary
	per=$(((conns + nodes - 1) / nodes))
	summary=$out/$stamp-hold-${conns}x$nodes.json
	fleet "$nodes"
	for pid in "${node_pids[@]}"; do rss0=$((rss0 + $(rss_kb "$pid"))); done
	for ((i = 0; i < nodes; i++)); do
		local f=$out/$stamp-hold-${conns}x$nodes-loader$((i + 1)).json role
		# Loader 1 publishes one message to each of the 100 rooms (100 msg/s
		# for 1 s) once told to start; the others listen for one per room.
		if ((i == 0)); then role=(-rate 100 -duration 1s); else role=(-expect 1 -duration 60s); fi
		local args=(fanout -url "${node_urls[$i]}" -api-key "$key" -server-pid "${node_pids[$i]}" -sources "$sources"
			-conns "$per" -rooms 100 -size 64 "${role[@]}" -drain 15s -connect-timeout 120s -concurrency 64
			-ready-file "$work/ready$i" -start-file "$work/start")
		show "taskset -c 1 $bench ${args[*]} > $f &"
		taskset -c 1 "$bench" "${args[@]}" >"$f" 2>"$work/loader$i.log" &
		loaders+=("$!")
		pids+=("$!")
		files+=("$f")
	done
	# Every loader holds its connections until the start file exists, so
	# this waits for the last one, bounded.
	local deadline=$((SECONDS + 540)) ready
	while :; do
		ready=0
		for ((i = 0; i < nodes; i++)); do [[ -e $work/ready$i ]] && ready=$((ready + 1)); done
		((ready == nodes)) && break
		if ((SECONDS > deadline)); then
			log "hold: only $ready of $nodes loaders ready after 540 s"
			break
		fi
		sleep 1
	done
	# One moment: every node's count and RSS, while all are held.
	local counts=()
	for ((i = 0; i < nodes; i++)); do
		local c
		c=$(curl -s "${node_http[$i]}/metrics" | awk '/^edgehub_connections_active /{print $2}')
		counts+=("${c:-0}")
		total=$((total + ${c:-0}))
	done
	for pid in "${node_pids[@]}"; do rss=$((rss + $(rss_kb "$pid"))); done
	log "hold: $total connections open at once over $nodes nodes (${counts[*]}); nodes' RSS $((rss / 1024)) MiB ($((rss0 / 1024)) MiB before), $(((rss - rss0) * 1024 / (total > 0 ? total : 1))) B per connection"
	run touch "$work/start"
	for pid in "${loaders[@]}"; do wait "$pid" || true; done
	jq -n --argjson total "$total" --argjson rss "$((rss * 1024))" --argjson rss0 "$((rss0 * 1024))" \
		--arg counts "${counts[*]}" --arg cmd "$0 hold $conns $nodes" '
		[inputs] as $l | {date: $l[0].date, machine: $l[0].machine, command: $cmd,
		 connectionsActiveAtOnce: $total, perNode: ($counts | split(" ") | map(tonumber)),
		 nodesRssBytes: $rss, nodesRssBeforeBytes: $rss0,
		 bytesPerConn: (if $total > 0 then ($rss - $rss0) / $total else 0 end),
		 delivery: {expected: ([$l[].summary.delivery.expected] | add), received: ([$l[].summary.delivery.received] | add),
			lost: ([$l[].summary.delivery.lost] | add), duplicates: ([$l[].summary.delivery.duplicates] | add),
			p50MsPerLoader: [$l[].summary.delivery.latency.p50Ms], p99MsPerLoader: [$l[].summary.delivery.latency.p99Ms],
			p99MsWorst: ([$l[].summary.delivery.latency.p99Ms] | max)},
		 loaders: [$l[] | {connected: .summary.connections.connected, joined: .summary.connections.joined,
			failed: .summary.connections.failed, closedEarly: .summary.connections.closedEarly,
			connectSeconds: .summary.connections.connectSeconds, errors: .summary.errors,
			loaderLimited: .summary.loaderLimitedReason}]}' "${files[@]}" >"$summary"
	log "hold: $(jq -c '{connectionsActiveAtOnce, bytesPerConn, delivery}' "$summary")"
	log "hold: written $summary"
	stop_nodes
	stop_redis
}

# publish [PUBLISHERS] [DURATION]: one room's publish throughput over Redis.
publish() {
	local n=${1:-50} d=${2:-20s} f
	f=$out/$stamp-publish-${n}.json
	# The per-connection rate limit (1,000/s by default) is lifted: the
	# figure wanted is the bus's, not the limiter's.
	fleet 1 -rate-limit 1000000 -rate-burst 1000000
	local args=(publish -url "${node_urls[0]}" -server-pid "${node_pids[0]}" -conns "$n" -rooms 1 -duration "$d"
		-redis-addr "127.0.0.1:$redis_port")
	show "taskset -c 1 $bench ${args[*]} > $f"
	taskset -c 1 "$bench" "${args[@]}" >"$f"
	stop_nodes
	stop_redis
}

"$mode" "${@:2}"
