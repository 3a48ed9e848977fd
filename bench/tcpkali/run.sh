#!/usr/bin/env bash
# tcpkali command lines for edgehub (a second, independent loader beside
# cmd/edgehub-bench). tcpkali speaks RFC 6455 itself (--ws) and sends the
# JSON frames below as text frames.
#
#   bench/tcpkali/run.sh hold [ADDR]   hold CONNS connections, each joined to one room
#   bench/tcpkali/run.sh rate [ADDR]   CONNS connections, each publishing RATE msg/s to
#                                      its own room and timing its own message's return
#
# ADDR defaults to 127.0.0.1:8080 (a node started with -insecure). Knobs
# from the environment: CONNS, CONNECT_RATE, RATE, DURATION.
#
# tcpkali is not in Debian bookworm's packages. Build it from its source
# (github.com/satori-com/tcpkali; needs autoconf automake libtool bison flex
# g++ from Debian): `autoreconf -iv && ./configure && make && make install`.
set -euo pipefail

mode=${1:-}
addr=${2:-127.0.0.1:8080}
conns=${CONNS:-1000}
connect_rate=${CONNECT_RATE:-2000}
rate=${RATE:-1}
duration=${DURATION:-30s}

case $addr in 127.*) ;; *) echo "refusing $addr: load goes to 127.0.0.0/8 only" >&2; exit 2 ;; esac
if ! command -v tcpkali >/dev/null; then
	echo "tcpkali is not installed (not packaged in Debian bookworm); see the top of $0 for how to build it" >&2
	exit 3
fi

# The frames sent. \{connection.uid} is tcpkali's per-connection number,
# so each connection has a room of its own; -e turns on those expressions.
hold_join='{"type":"join","room":"tk-hold"}'
rate_join='{"type":"join","room":"tk-\{connection.uid}"}'
rate_publish='{"type":"publish","room":"tk-\{connection.uid}","data":{"from":"tcpkali","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}}'

case $mode in
hold)
	cmd=(tcpkali --ws -c "$conns" --connect-rate "$connect_rate" -T "$duration"
		-e --first-message "$hold_join" "$addr/ws")
	;;
rate)
	# The latency marker is the start of the server's `message` frame: the
	# time from a publish to its delivery back to the same connection.
	cmd=(tcpkali --ws -c "$conns" --connect-rate "$connect_rate" -T "$duration"
		-e --first-message "$rate_join" -m "$rate_publish" -r "$rate"
		--latency-marker '"type":"message"' --latency-percentiles 50,99,99.9 "$addr/ws")
	;;
*)
	echo "usage: $0 {hold|rate} [127.x.x.x:port]" >&2
	exit 2
	;;
esac
printf '+ %q ' "${cmd[@]}" >&2
echo >&2
exec "${cmd[@]}"
