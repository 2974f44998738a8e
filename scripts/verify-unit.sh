#!/usr/bin/env bash
# Checks a systemd unit with `systemd-analyze verify`, without a running systemd
# (containers, CI): builds a throwaway root holding the distribution's units, the unit
# under /etc/systemd/system, and a stub for every absolute Exec*= binary, then runs
#   systemd-analyze verify --man=no --root=ROOT /etc/systemd/system/UNIT
# systemd-analyze exits 0 on "Unknown key", "Invalid device rights" and other
# lines it ignores, so any output at all is a failure here.
#
#   scripts/verify-unit.sh [UNIT_FILE]     # default: scripts/hazmon.service
#
# Exit 0: clean (or skipped: systemd-analyze missing, says so); 1: problems, printed.
set -euo pipefail
unit=${1:-"$(dirname "$0")/hazmon.service"}
[ -f "$unit" ] || { echo "verify-unit: $unit: no such file" >&2; exit 1; }
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "verify-unit: SKIP: systemd-analyze not found (apt-get install systemd)"
	exit 0
fi
units=
for d in /usr/lib/systemd/system /lib/systemd/system; do
	if [ -f "$d/sysinit.target" ]; then units=$d; break; fi
done
if [ -z "$units" ]; then
	echo "verify-unit: SKIP: no systemd units (sysinit.target) on this machine"
	exit 0
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/bin"
cp -a "$units" "$root/usr/lib/systemd/system"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
name=$(basename "$unit")
cp "$unit" "$root/etc/systemd/system/$name"
# Stub each Exec*= program: the first word, less the prefixes - @ : + ! that systemd allows.
grep -E '^[[:space:]]*Exec[A-Za-z]*=' "$unit" | sed -E 's/^[^=]*=[[:space:]]*[-@:+!]*//; s/[[:space:]].*//' |
	while read -r prog; do
		case $prog in /*) ;; *) continue ;; esac
		real=$root/${prog#/}
		mkdir -p "$(dirname "$real")"
		[ -e "$real" ] || printf '#!/bin/sh\nexit 0\n' >"$real"
		chmod 0755 "$real"
	done

set +e
out=$(systemd-analyze verify --man=no --root="$root" "/etc/systemd/system/$name" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out" | sed "s|$root||g" >&2
	echo "verify-unit: $unit: FAILED (systemd-analyze exit $rc)" >&2
	exit 1
fi
echo "verify-unit: $unit: ok ($(systemd-analyze --version | head -1))"
