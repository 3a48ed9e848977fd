#!/usr/bin/env bash
# Applies edgehub's kernel profile (tuning/sysctl.d/99-edgehub.conf) to this
# host now, with `sysctl -w`, as root.
#
#   scripts/apply-tuning.sh             apply now (lost at reboot)
#   scripts/apply-tuning.sh --dry-run   print what it would change, change nothing
#   scripts/apply-tuning.sh --persist   apply now and install the profile for boot:
#                                       /etc/sysctl.d/99-edgehub.conf,
#                                       /etc/security/limits.d/99-edgehub.conf and
#                                       the systemd units in /etc/systemd/system
#
# It reads each setting's "check:" line, the same one `edgehub tune check`
# reads, and never makes the host worse: a ">=" or "*" field is raised to
# the profile's value, never lowered (a host with fs.file-max above the
# profile keeps it); "<=" is lowered, never raised; "=" is set; "-" is left
# as it is. The file it persists is the profile with those values.
# A setting it cannot write (not root, a container's read-only /proc/sys)
# is reported and makes it exit 1; one the kernel lacks (conntrack not
# loaded) is reported and skipped.
#
# The open-file limit is not a sysctl: services get it from the unit's
# LimitNOFILE, login sessions from limits.d; both are installed by
# --persist, and `edgehub tune check -conns N` says what a process has.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
profile=$root/tuning/sysctl.d/99-edgehub.conf
dry=0
persist=0
for a in "$@"; do
	case $a in
	--dry-run) dry=1 ;;
	--persist) persist=1 ;;
	*) echo "usage: $0 [--dry-run] [--persist]" >&2; exit 2 ;;
	esac
done
[[ -r $profile ]] || { echo "apply-tuning: cannot read $profile" >&2; exit 2; }

failed=()
changed=0
persisted=$(mktemp)
trap 'rm -f "$persisted"' EXIT
cp "$profile" "$persisted"

# pick OP CUR WANT: the value a field should have, never worse than CUR.
pick() {
	case $1 in
	'>=' | '*') ((${2} >= ${3})) && echo "$2" || echo "$3" ;;
	'<=') ((${2} <= ${3})) && echo "$2" || echo "$3" ;;
	'=') echo "$3" ;;
	'-') echo "$2" ;;
	*) echo "apply-tuning: unknown op $1 in $profile" >&2; exit 2 ;;
	esac
}

# The profile's settings as "key|ops|values", each preceded by its check line.
settings=$(awk '
	/^# check:/ { sub(/^# check:[ \t]*/, ""); n = split($0, w, /[ \t]+/); ops = w[1]; for (i = 2; i < n; i++) ops = ops " " w[i]; next }
	/^[ \t]*#/ || /^[ \t]*$/ { next }
	{ split($0, kv, "="); k = kv[1]; v = substr($0, index($0, "=") + 1); gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v); gsub(/[ \t]+/, " ", v);
	  if (ops == "") { print "apply-tuning: " k " has no check: line" > "/dev/stderr"; exit 2 }
	  print k "|" ops "|" v; ops = "" }
' "$profile")

while IFS='|' read -r key ops want; do
	proc=/proc/sys/${key//.//}
	if [[ ! -e $proc ]]; then
		printf 'absent   %-32s not in this kernel (module not loaded): skipped\n' "$key"
		continue
	fi
	read -r -a cur <<<"$(tr '\t' ' ' <"$proc")"
	read -r -a op <<<"$ops"
	read -r -a w <<<"$want"
	if ((${#cur[@]} != ${#w[@]})); then
		failed+=("$key (the kernel has ${#cur[@]} fields, the profile ${#w[@]})")
		continue
	fi
	new=()
	for i in "${!w[@]}"; do new+=("$(pick "${op[$i]}" "${cur[$i]}" "${w[$i]}")"); done
	# The persisted file carries what this host ends up with.
	sed -i "s|^$key = .*|$key = ${new[*]}|" "$persisted"
	if [[ "${new[*]}" == "${cur[*]}" ]]; then
		printf 'ok       %-32s %s\n' "$key" "${cur[*]}"
		continue
	fi
	changed=$((changed + 1))
	if ((dry)); then
		printf 'would    %-32s %s -> %s\n' "$key" "${cur[*]}" "${new[*]}"
	elif err=$(sysctl -qw "$key=${new[*]}" 2>&1); then
		printf 'set      %-32s %s -> %s\n' "$key" "${cur[*]}" "${new[*]}"
	else
		printf 'FAILED   %-32s stays %s (wanted %s): %s\n' "$key" "${cur[*]}" "${new[*]}" "${err:-sysctl -w failed}"
		failed+=("$key")
	fi
done <<<"$settings"

printf 'open files: this shell may open %s (hard %s); services get LimitNOFILE, logins limits.d nofile\n' \
	"$(ulimit -Sn)" "$(ulimit -Hn)"

if ((persist)); then
	install_file() { # SRC DEST
		if ((dry)); then
			echo "would install $2"
		elif install -D -m 0644 "$1" "$2" 2>/dev/null; then
			echo "installed $2"
		else
			echo "FAILED to install $2"
			failed+=("$2")
		fi
	}
	install_file "$persisted" /etc/sysctl.d/99-edgehub.conf
	install_file "$root/tuning/limits.d/99-edgehub.conf" /etc/security/limits.d/99-edgehub.conf
	if [[ -d /etc/systemd/system ]]; then
		install_file "$root/tuning/systemd/edgehub.service" /etc/systemd/system/edgehub.service
		install_file "$root/tuning/systemd/edgehub-worker.service" /etc/systemd/system/edgehub-worker.service
		((dry)) || echo "then: systemctl daemon-reload && systemctl enable --now edgehub"
	fi
fi

if ((${#failed[@]})); then
	echo "apply-tuning: ${#failed[@]} not applied: ${failed[*]}" >&2
	exit 1
fi
if ((dry)); then
	echo "dry run: $changed setting(s) would change"
else
	echo "$changed setting(s) changed"
fi
