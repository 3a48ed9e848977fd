#!/usr/bin/env bash
# Runs edgehub's load profile on this machine: a fresh node per
# run pinned to CPU 0 (taskset -c 0), the load generator pinned to CPU 1, so
# neither steals the other's core. Each run's JSON (command, machine, date,
# summary) and the charts go to bench/results/ (full) or bench/results/tmp/
# (quick, not kept in git).
#
#   scripts/bench-node.sh          the full profile (~6 minutes)
#   scripts/bench-node.sh quick    a short profile (< 60 s), for `make bench`
#   scripts/bench-node.sh one NAME SCENARIO [FLAGS...]
#                                  one run, recorded as bench/results/DATE-NAME.json
#   scripts/bench-node.sh many NODES CONNS
#                                  NODES nodes on one host, each held at CONNS idle
#                                  connections by a loader process of its own, all
#                                  at once (a process holds ~19,900 sockets here)
#
# EDGEHUB_BIN=path uses a node binary built elsewhere instead of building
# ./cmd/edgehub; BENCH_PORT (default 18080) is the node's port.
#
# It prints every command it runs, applies what it may of the kernel tuning
# (restoring the old values on exit), and kills by pid what it started.
set -euo pipefail

mode=${1:-full}
case $mode in
full | quick) ;;
one) [[ $# -ge 3 ]] || { echo "usage: $0 one NAME SCENARIO [FLAGS...]" >&2; exit 2; } ;;
many) [[ $# -eq 3 ]] || { echo "usage: $0 many NODES CONNS" >&2; exit 2; } ;;
*) echo "usage: $0 [full|quick|one NAME SCENARIO FLAGS...|many NODES CONNS]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bench/results
[[ $mode == quick ]] && out=$root/bench/results/tmp
[[ $mode == many ]] && out=$root/bench/results/many
work=$(mktemp -d)
port=${BENCH_PORT:-18080}
server_pid=
loader_pid=
many_pids=() # nodes and loaders of the many mode

# shellcheck source=SCRIPTDIR/bench-lib.sh
source "$root/scripts/bench-lib.sh"

# stop_started kills the processes this script started, by pid (cleanup
# calls it on exit).
stop_started() {
	[[ -n $loader_pid ]] && kill "$loader_pid" 2>/dev/null || true
	[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
	for pid in "${many_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
install_cleanup

prepare_host
run mkdir -p "$out"
build_binaries

start_server() {
	# A node left on the port would answer the health check and be measured
	# in place of this one.
	if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then
		log "127.0.0.1:$port is already served by another process; set BENCH_PORT"
		exit 1
	fi
	start_edgehub "$port" "$work/edgehub.log" "$@"
	server_pid=$edgehub_pid
	wait_healthy "$server_pid" "$port" "$work/edgehub.log" edgehub
}

stop_server() {
	show "kill $server_pid"
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

# bench NAME SCENARIO FLAGS...: one run against a fresh node, its JSON into
# $out/DATE-NAME.json.
bench() {
	local name=$1 scenario=$2
	shift 2
	local file
	file=$out/$(date -u +%Y%m%dT%H%M%SZ)-$name.json
	start_server
	show "taskset -c 1 $work/edgehub-bench $scenario -url ws://127.0.0.1:$port/ws -api-key $key -server-pid $server_pid -sources $sources $* > $file"
	taskset -c 1 "$work/edgehub-bench" "$scenario" -url "ws://127.0.0.1:$port/ws" -api-key "$key" \
		-server-pid "$server_pid" -sources "$sources" "$@" >"$file" &
	loader_pid=$!
	wait "$loader_pid"
	loader_pid=
	stop_server
}

# many NODES CONNS: every node with its own loader, all holding their
# connections at the same time; each loader's JSON goes to
# $out/DATE-many-NODESxCONNS-nodeI.json, and the totals are printed.
many() {
	local nodes=$1 conns=$2 stamp i p pid total=0 rss=0 step hold
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	# Each loader connects, creates its ready file, and waits for the start
	# file before its hold begins: the host is sampled once every loader is
	# ready, however long the last one takes to dial.
	hold=10
	for ((i = 1; i <= nodes; i++)); do
		p=$((port + i))
		if curl -s -o /dev/null "http://127.0.0.1:$p/healthz"; then
			log "127.0.0.1:$p is already served by another process; set BENCH_PORT"
			exit 1
		fi
		show "taskset -c 0 $work/edgehub -listen 127.0.0.1:$p -node-id node$i -max-conns 19900 &"
		taskset -c 0 "$work/edgehub" -listen "127.0.0.1:$p" -node-id "node$i" -max-conns 19900 >"$work/node$i.log" 2>&1 &
		pid=$!
		many_pids+=("$pid")
		for _ in $(seq 200); do
			curl -sf "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
			sleep 0.05
		done
		show "taskset -c 1 $work/edgehub-bench idle -url ws://127.0.0.1:$p/ws -server-pid $pid -sources $sources -conns $conns -rooms 100 -duration ${hold}s -ready-file $work/ready$i -start-file $work/start > $out/$stamp-many-${nodes}x$conns-node$i.json &"
		taskset -c 1 "$work/edgehub-bench" idle -url "ws://127.0.0.1:$p/ws" -server-pid "$pid" -sources "$sources" \
			-conns "$conns" -rooms 100 -duration "${hold}s" -ready-file "$work/ready$i" -start-file "$work/start" \
			>"$out/$stamp-many-${nodes}x$conns-node$i.json" 2>"$work/loader$i.log" &
		many_pids+=("$!")
	done
	# Wait (at most 9 minutes) until every loader holds all its connections.
	local deadline=$((SECONDS + 540)) ready
	while :; do
		ready=$(ls "$work" | grep -c '^ready' || true)
		((ready == nodes)) && break
		((SECONDS > deadline)) && { log "many: only $ready of $nodes loaders ready after 540 s"; break; }
		sleep 1
	done
	# Every loader is holding its connections: sample the host now.
	for ((i = 1; i <= nodes; i++)); do
		p=$((port + i))
		total=$((total + $(curl -s "http://127.0.0.1:$p/metrics" | awk '/^edgehub_connections_active /{print $2}')))
	done
	for ((i = 0; i < ${#many_pids[@]}; i += 2)); do
		rss=$((rss + $(awk '/^VmRSS/{print $2}' "/proc/${many_pids[$i]}/status")))
	done
	log "many: $total WebSocket connections open at once over $nodes nodes on this host; nodes' RSS $((rss / 1024)) MiB in all, $((rss * 1024 / (total > 0 ? total : 1))) B per connection"
	run touch "$work/start"
	for ((i = 1; i < ${#many_pids[@]}; i += 2)); do wait "${many_pids[$i]}" || true; done
	for ((i = 0; i < ${#many_pids[@]}; i += 2)); do kill "${many_pids[$i]}" 2>/dev/null || true; done
	many_pids=()
}

if [[ $mode == one ]]; then
	shift
	bench "$@"
elif [[ $mode == many ]]; then
	many "$2" "$3"
	exit 0
elif [[ $mode == quick ]]; then
	bench quick-idle idle -conns 2000 -rooms 20 -step 500 -duration 3s
	bench quick-fanout fanout -conns 2000 -rooms 1 -size 64 -rate 10 -duration 5s -drain 3s
	bench quick-rooms rooms -conns 1000 -rooms 10 -rate 1 -duration 5s -drain 3s
	bench quick-storm storm -conns 200 -lifetime 200ms -duration 4s -drain 3s
	bench quick-ai ai -conns 20 -words 8 -duration 4s -drain 3s
else
	# The kernel's CPU per small write to a loopback socket, the floor under
	# the node's cost per delivery: with lo's receive processing on the
	# writer's CPU (as a plain loopback run would bill it) and steered away.
	run mkdir -p "$out/floor"
	for mask in 0 2; do
		if [[ -n $rps_old ]]; then
			echo "$mask" >"$rps"
		fi
		show "taskset -c 0,1 $work/edgehub-bench floor -conns 5000 > $out/floor/DATE-rps$mask.json"
		taskset -c 0,1 "$work/edgehub-bench" floor -conns 5000 >"$out/floor/$(date -u +%Y%m%dT%H%M%SZ)-rps$mask.json"
	done
	# idle: RSS per connection as the slope from 5,000 to 18,000, connect rate.
	bench idle-18000 idle -conns 18000 -rooms 100 -step 1000 -duration 30s
	# fanout: 10,000 subscribers in one room, 64-byte data.
	bench fanout-10000x1 fanout -conns 10000 -rooms 1 -size 64 -rate 1 -duration 30s
	bench fanout-10000x10 fanout -conns 10000 -rooms 1 -size 64 -rate 10 -duration 30s
	bench fanout-10000x50 fanout -conns 10000 -rooms 1 -size 64 -rate 50 -duration 20s
	# rooms: 10,000 connections over 100 rooms, each publishing at 0.1 msg/s.
	bench rooms-10000x100 rooms -conns 10000 -rooms 100 -rate 0.1 -duration 60s
	bench storm-1000 storm -conns 1000 -lifetime 1s -duration 30s
	# ai: 10 concurrent queries per in-process worker (-ai-workers 4, echo
	# 50 ms a word), so first-chunk times show the queue, and all finish.
	bench ai-40 ai -conns 40 -words 16 -duration 20s -drain 20s
fi

# Charts from every recorded run in the directory.
run "$work/edgehub-bench" plot -o "$out" "$out"/*.json
