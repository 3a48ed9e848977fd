#!/usr/bin/env bash
# Carries edgehub's patch to cloudwego/netpoll (third_party/netpoll/PATCH.md
# says what it does and why). The patched copy in third_party/netpoll/src is
# never edited by hand: it is upstream netpoll from the module cache, at the
# version go.mod requires, with third_party/netpoll/*.patch applied.
#
#   scripts/netpoll-patch.sh          regenerate third_party/netpoll/src
#   scripts/netpoll-patch.sh check    fail unless the copy is exactly upstream
#                                     plus the patch, and every module's go.mod
#                                     replaces netpoll with it (make lint)
#   scripts/netpoll-patch.sh test     run upstream netpoll's own tests, race
#                                     detector on, against the patched sources
#   scripts/netpoll-patch.sh diff     rewrite the patch's diff from a hand-edited
#                                     src (keeps its description), for a rebase
#
# Upgrading netpoll: `go mod edit -require=github.com/cloudwego/netpoll@vX.Y.Z`
# (and in bench/go.mod), run this script, then `go mod tidy` in both modules.
# If the patch no longer applies, edit src by hand and run `... diff`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/third_party/netpoll
copy=$dir/src
patchfile=$dir/lazy-output-barrier.patch
mod=github.com/cloudwego/netpoll
modules=("$root" "$root/bench") # every module that builds the node

die() { printf 'netpoll-patch: %s\n' "$*" >&2; exit 1; }

# The version the core module requires; the replace maps it to the copy.
version=$(go -C "$root" mod edit -json | awk -v m="$mod" '
	$1 == "\"Path\":" && $2 == "\"" m "\"," { found = 1; next }
	found && $1 == "\"Version\":" { gsub(/[",]/, "", $2); print $2; exit }')
[[ -n $version ]] || die "go.mod does not require $mod"
upstream=$(go mod download -json "$mod@$version" | awk -F'"' '$2 == "Dir" { print $4 }')
[[ -d $upstream ]] || die "cannot download $mod@$version"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pristine DEST copies what a build needs from upstream: the package
# sources (tests, docs and CI files stay upstream), go.mod and go.sum, and
# the license and notice that Apache-2.0 asks a redistribution to keep.
pristine() {
	(cd "$upstream" && find . -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \
		-o -name LICENSE -o -name NOTICE \) ! -path './.github/*' -print0) |
		(cd "$upstream" && xargs -0 cp --parents -t "$1")
	chmod -R u+w "$1"
}

# patched DEST: pristine plus the patch, failing if any hunk does not apply.
patched() {
	mkdir -p "$1"
	pristine "$1"
	patch --quiet --batch --forward -p1 -d "$1" <"$patchfile" ||
		die "$(basename "$patchfile") does not apply to $mod@$version: edit $copy by hand and run '$0 diff'"
}

case ${1:-} in
"")
	patched "$work/src"
	rm -rf "$copy"
	mv "$work/src" "$copy"
	echo "$copy: $mod@$version + $(basename "$patchfile")"
	;;
check)
	patched "$work/src"
	diff -r "$work/src" "$copy" >&2 ||
		die "$copy is not $mod@$version + $(basename "$patchfile"): regenerate it with $0"
	for m in "${modules[@]}"; do
		got=$(go -C "$m" list -m -f '{{with .Replace}}{{.Dir}}{{end}}' "$mod")
		[[ -n $got && $(cd "$m" && realpath -m "$got") == "$copy" ]] ||
			die "$m/go.mod must replace $mod with $(realpath --relative-to="$m" "$copy"), not '$got'"
	done
	echo "netpoll-patch: $copy is $mod@$version + $(basename "$patchfile"), used by every module"
	;;
test)
	# Upstream's whole tree, tests included, with the patch applied.
	cp -r "$upstream" "$work/full"
	chmod -R u+w "$work/full"
	patch --quiet --batch --forward -p1 -d "$work/full" <"$patchfile"
	(cd "$work/full" && go test -race -count=1 ./...)
	;;
diff)
	mkdir -p "$work/a"
	pristine "$work/a"
	# The description is everything up to the first diff; git apply and
	# patch -p1 both skip it.
	sed '/^diff --git /,$d' "$patchfile" >"$work/patch"
	cp -r "$copy" "$work/b"
	# Empty prefixes keep the a/ and b/ of the directory names: paths as -p1 wants.
	(cd "$work" && git diff --no-index --no-color --src-prefix= --dst-prefix= a b >>patch) || [[ $? -eq 1 ]]
	mv "$work/patch" "$patchfile"
	echo "$patchfile: rewritten from $copy"
	;;
*)
	echo "usage: $0 [check|test|diff]" >&2
	exit 2
	;;
esac
