# shellcheck shell=bash disable=SC2154,SC2034 # root and work come from the sourcing script, which uses the rest
# Shared helpers of scripts/bench-node.sh and scripts/bench-fleet.sh. It is
# sourced by them, not run: it defines functions and state and runs nothing
# itself. The sourcing script sets root (the repository) and work (its
# temporary directory) first.
#
#   key, sources     the nodes' -api-key and the loaders' -sources
#   log, show, run   a message to stderr; a command as "+ CMD"; show then run
#   tune K V         sets sysctl K to V when allowed, remembering the old value
#   prepare_host     raises the open-files limit, applies the kernel tuning and
#                    steers lo's receive processing to CPU 1 (what it may)
#   build_binaries   $work/edgehub (or a copy of $EDGEHUB_BIN) and
#                    $work/edgehub-bench
#   start_edgehub PORT LOG FLAGS...
#                    a node on 127.0.0.1:PORT pinned to CPU 0 (-insecure,
#                    -api-key $key), its pid in edgehub_pid
#   wait_healthy PID PORT LOG WHAT
#                    waits for that node's /healthz; if it does not answer,
#                    prints LOG and exits
#   install_cleanup  traps EXIT (and INT/TERM) to cleanup: the script's own
#                    stop_started (which kills, by pid, what it started), then
#                    restores the sysctls and lo's steering and removes $work

key=bench-key # the nodes' -api-key for /api/publish; a local, throwaway value
# Several source addresses for the loaders, each with its own ephemeral-port
# space.
sources=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
edgehub_pid=
declare -A sysctl_old=()
rps=/sys/class/net/lo/queues/rx-0/rps_cpus
rps_old=

log() { printf '%s\n' "$*" >&2; }
show() { printf '+ %s\n' "$*" >&2; }
run() { show "$*"; "$@"; }

cleanup() {
	stop_started
	for k in "${!sysctl_old[@]}"; do
		sysctl -qw "$k=${sysctl_old[$k]}" 2>/dev/null || true
	done
	[[ -n $rps_old ]] && echo "$rps_old" >"$rps" 2>/dev/null || true
	rm -rf "$work"
}

install_cleanup() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# tune sets a sysctl for the run when allowed, remembering the old value.
tune() {
	local k=$1 v=$2 old
	old=$(sysctl -n "$k" 2>/dev/null) || { log "skip $k: not readable"; return 0; }
	if sysctl -qw "$k=$v" 2>/dev/null; then
		show "sysctl -w $k=\"$v\"   (was \"$old\")"
		sysctl_old[$k]=$old
	else
		log "skip sysctl $k=$v: not allowed here (stays \"$old\")"
	fi
}

prepare_host() {
	# Every connection is a file on both sides: take the hard limit (20,000 on
	# this machine, so ~19,900 sockets per process).
	run ulimit -n "$(ulimit -Hn)"
	# Ephemeral ports for the loader's sockets (plus its several sources).
	tune net.ipv4.ip_local_port_range "1024 65000"
	# Accept and SYN queues deep enough for bursts of thousands of dials.
	tune net.core.somaxconn 65535
	tune net.ipv4.tcp_max_syn_backlog 65535
	# Storm closes leave TIME_WAIT sockets; reuse them for new dials.
	tune net.ipv4.tcp_tw_reuse 1

	# On loopback the kernel runs the *receiver's* TCP processing (and the
	# wake-up of its reader) in the sender's context, so without this every
	# delivery charges the node's core with the load generator's receive work:
	# measured here, a 100-byte writev to a socket read on the other core costs
	# the sender ~7 us, and ~2.8 us once receive packet steering moves lo's
	# receive processing to the loader's CPU 1 (mask 2). On a real network that
	# work runs on the clients' machines.
	if rps_old=$(cat "$rps" 2>/dev/null) && echo 2 >"$rps" 2>/dev/null; then
		show "echo 2 > $rps   (was \"$rps_old\")"
	else
		rps_old=
		log "skip receive packet steering on lo: not allowed here"
	fi
}

build_binaries() {
	if [[ -n ${EDGEHUB_BIN:-} ]]; then
		run cp "$EDGEHUB_BIN" "$work/edgehub"
	else
		run go -C "$root" build -o "$work/edgehub" ./cmd/edgehub
	fi
	run go -C "$root/bench" build -o "$work/edgehub-bench" ./cmd/edgehub-bench
}

# start_edgehub PORT LOG FLAGS...: a node on 127.0.0.1:PORT, pinned to CPU 0,
# its output in LOG; its pid is left in edgehub_pid (for the caller to record
# before wait_healthy, so that cleanup kills it even if it never answers).
start_edgehub() {
	local p=$1 logf=$2
	shift 2
	show "taskset -c 0 $work/edgehub -listen 127.0.0.1:$p -insecure -api-key $key -max-conns 19900 $* &"
	taskset -c 0 "$work/edgehub" -listen "127.0.0.1:$p" -insecure -api-key "$key" -max-conns 19900 "$@" \
		>"$logf" 2>&1 &
	edgehub_pid=$!
}

# wait_healthy PID PORT LOG WHAT: waits (10 s at most) for the node PID on
# PORT to answer /healthz; if it exits or does not answer, prints "WHAT did
# not become healthy" and its LOG, and exits.
wait_healthy() {
	local pid=$1 p=$2 logf=$3 what=$4
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		curl -sf "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	log "$what did not become healthy; its log:"
	cat "$logf" >&2
	exit 1
}
