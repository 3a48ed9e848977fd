#!/usr/bin/env bash
# Installs what edgehub's end-to-end tests need on a fresh Debian bookworm
# (run as root; Go is assumed installed). Idempotent and quiet on success:
#   - redis-server and chromium from Debian (redis is NOT started as a service)
#   - haproxy, nginx and openssl from Debian, for the local fleet behind a
#     balancer (scripts/fleet; not started as services either)
#   - the Node test clients (ws, playwright-core) via `npm ci` in scripts/e2e
#   - k6 via scripts/install-k6.sh when that script exists
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
e2e="$here/e2e"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
	echo "install-test-deps: $*" >&2
	if [[ -s "$log" ]]; then
		echo "---- last output ----" >&2
		tail -n 40 "$log" >&2
	fi
	exit 1
}

run() { # run quietly; on failure show the output
	"$@" >>"$log" 2>&1 || fail "failed: $*"
}

# --- Debian packages -------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# haproxy and nginx live in /usr/sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if ((${#missing[@]})); then
	[[ $(id -u) -eq 0 ]] || fail "need root to install: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	run apt-get update
	# policy-rc.d keeps the packages' init scripts from starting redis,
	# haproxy and nginx as services.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
	fi
	apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || {
		((made_policy)) && rm -f "$policy"
		fail "apt-get install ${missing[*]} failed"
	}
	((made_policy)) && rm -f "$policy"
	for c in redis-server chromium node npm haproxy nginx openssl; do
		command -v "$c" >/dev/null 2>&1 || fail "$c still missing after apt-get install"
	done
fi

# --- npm test clients ------------------------------------------------------
# node_modules is stale when it is absent or was installed from another
# package.json / package-lock.json (checked by content, not by mtime).
stamp="$e2e/node_modules/.edgehub-installed"
want="$(cat "$e2e/package.json" "$e2e/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
	[[ -f "$e2e/package-lock.json" ]] || fail "missing $e2e/package-lock.json"
	(cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error) >>"$log" 2>&1 ||
		fail "npm ci in $e2e failed"
	echo "$want" >"$stamp"
fi
(cd "$e2e" && node -e 'require("ws"); require("playwright-core")') >>"$log" 2>&1 ||
	fail "ws / playwright-core not loadable from $e2e (try: rm -rf $e2e/node_modules and rerun)"

# --- k6 (optional, written elsewhere) ---------------------------------------
if [[ -f "$here/install-k6.sh" ]]; then
	bash "$here/install-k6.sh" >>"$log" 2>&1 || fail "scripts/install-k6.sh failed"
fi
