#!/usr/bin/env bash
# Installs k6 (the pinned version below) with the Go toolchain, from the Go
# module proxy: no prebuilt download. Idempotent: does nothing when that
# version is already there.
#
#   scripts/install-k6.sh            into $(go env GOPATH)/bin
#   scripts/install-k6.sh DIR        into DIR
#
# The build takes a few minutes on 2 cores.
set -euo pipefail

version=v1.8.1
dir=${1:-$(go env GOPATH)/bin}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [[ -x $dir/k6 ]] && "$dir/k6" version 2>/dev/null | grep -q "k6 $version "; then
	echo "k6 $version already in $dir"
	exit 0
fi
echo "+ GOBIN=$dir go install go.k6.io/k6@$version" >&2
GOBIN=$dir go install "go.k6.io/k6@$version"
"$dir/k6" version
case ":$PATH:" in *":$dir:"*) ;; *) echo "note: $dir is not on PATH" >&2 ;; esac
