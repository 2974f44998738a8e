#!/usr/bin/env bash
# Installs hazmon on a board (Raspberry Pi OS / Debian, arm64, armv7, armv6 or amd64), as root:
#
#   sudo scripts/install.sh [--binary PATH] [--config FILE]   # install or upgrade
#   sudo scripts/install.sh --uninstall [--purge]              # remove (--purge: also config and buffer)
#
# Install puts
#   /usr/local/bin/hazmon                      the binary (default: bin/linux-<arch>/hazmon for this board)
#   /etc/hazmon/hazmon.yaml                    from configs/example.yaml (or --config); an existing one is never overwritten
#   /var/lib/hazmon/                           the bbolt buffer, 0750 hazmon:hazmon
#   /etc/systemd/system/hazmon.service         scripts/hazmon.service
#   /etc/udev/rules.d/60-hazmon-gpio.rules     /dev/gpiochip* group gpio, mode 0660
#   /etc/modules-load.d/hazmon.conf            usbserial, cdc_acm at boot, so the unit's
#                                              DeviceAllow=char-ttyUSB/char-ttyACM find their majors
# and creates the system user hazmon (groups dialout and gpio; gpio is created if missing),
# then, when systemd is running, `systemctl daemon-reload` and `systemctl enable hazmon`.
# It does not start a fresh install (edit the config first); an upgrade of a running agent
# is restarted only if the new binary validates the existing config.
#
# DESTDIR=/some/root installs into that tree instead (images, tests): no user or group is
# created, nothing is chowned, systemd and udev are not touched; what would be done is printed.
# Uninstall keeps /etc/hazmon and /var/lib/hazmon (readings not yet sent) unless --purge.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
D=${DESTDIR:-}
D=${D%/}
if [ -n "$D" ]; then
	mkdir -p "$D"
	D=$(cd "$D" && pwd)
fi

usage() {
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
	echo "Options: --binary PATH  --config FILE  --uninstall  --purge  -h|--help;  env DESTDIR=ROOT"
}

binary='' config='' mode=install purge=0
while [ $# -gt 0 ]; do
	case $1 in
	--binary) binary=${2:?--binary needs a path}; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--config) config=${2:?--config needs a file}; shift 2 ;;
	--config=*) config=${1#*=}; shift ;;
	--uninstall) mode=uninstall; shift ;;
	--purge) purge=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
if [ $purge = 1 ] && [ $mode != uninstall ]; then
	echo "install.sh: --purge goes with --uninstall" >&2
	exit 2
fi
if [ -z "$D" ] && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root (sudo), or set DESTDIR to install into a tree" >&2
	exit 1
fi

say() { echo "hazmon install: $*"; }
# live CMD...: run CMD on the real system; under DESTDIR only print it.
live() {
	if [ -n "$D" ]; then
		say "DESTDIR set, skipped: $*"
	else
		"$@"
	fi
}
systemd_running() { [ -z "$D" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

bin_dst=$D/usr/local/bin/hazmon
etc=$D/etc/hazmon
cfg_dst=$etc/hazmon.yaml
state=$D/var/lib/hazmon
unit_dst=$D/etc/systemd/system/hazmon.service
udev_dst=$D/etc/udev/rules.d/60-hazmon-gpio.rules
mods_dst=$D/etc/modules-load.d/hazmon.conf

uninstall() {
	if systemd_running; then
		systemctl disable --now hazmon.service 2>/dev/null || true
	fi
	rm -f "$unit_dst" "$bin_dst" "$udev_dst" "$mods_dst"
	say "removed $bin_dst, $unit_dst, $udev_dst, $mods_dst"
	if systemd_running; then systemctl daemon-reload; fi
	if [ $purge = 1 ]; then
		rm -rf "$etc" "$state"
		say "purged $etc and $state"
		if [ -n "$D" ]; then
			say "DESTDIR set, skipped: userdel hazmon"
		elif id hazmon >/dev/null 2>&1; then
			userdel hazmon
		fi
	else
		say "kept $etc (config) and $state (buffer: readings not yet sent); --uninstall --purge removes them"
	fi
}

# default_binary prints the release binary for this machine, built by make build-arm / make build.
default_binary() {
	local arch
	case $(uname -m) in
	aarch64 | arm64) arch=linux-arm64 ;;
	armv7l | armv8l) arch=linux-armv7 ;;
	armv6l) arch=linux-armv6 ;;
	*) arch= ;;
	esac
	for f in ${arch:+"$repo/bin/$arch/hazmon"} "$repo/bin/hazmon" "$here/hazmon"; do
		if [ -f "$f" ]; then echo "$f"; return; fi
	done
}

install_all() {
	binary=${binary:-$(default_binary)}
	if [ -z "$binary" ] || [ ! -f "$binary" ]; then
		echo "install.sh: no hazmon binary${binary:+ at $binary}: run make build-arm (or make build), or pass --binary PATH" >&2
		exit 1
	fi
	config=${config:-$repo/configs/example.yaml}
	[ -f "$config" ] || { echo "install.sh: no config $config" >&2; exit 1; }
	[ -f "$here/hazmon.service" ] || { echo "install.sh: no $here/hazmon.service" >&2; exit 1; }
	local ver
	if ! ver=$("$binary" version 2>&1); then
		if [ -z "$D" ]; then
			echo "install.sh: $binary does not run on this machine ($(uname -m)): wrong architecture? $ver" >&2
			exit 1
		fi
		ver="(cannot run here: $(uname -m))"
	fi

	# The system user and its groups: dialout for RS-485 adapters, gpio for /dev/gpiochip*.
	if [ -n "$D" ]; then
		say "DESTDIR set, skipped: groupadd --system gpio (if missing); useradd --system --user-group" \
			"--home-dir /var/lib/hazmon --no-create-home --shell /usr/sbin/nologin hazmon (if missing);" \
			"usermod -a -G dialout,gpio hazmon"
	else
		getent group gpio >/dev/null || groupadd --system gpio
		getent group dialout >/dev/null || groupadd --system dialout
		if ! id hazmon >/dev/null 2>&1; then
			useradd --system --user-group --home-dir /var/lib/hazmon --no-create-home \
				--shell /usr/sbin/nologin --comment "hazmon safety monitor" hazmon
			say "created system user hazmon"
		fi
		usermod -a -G dialout,gpio hazmon
	fi

	# Binary: copied beside the old one and renamed over it, so a running agent is not disturbed.
	install -d -m 0755 "$(dirname "$bin_dst")"
	install -m 0755 "$binary" "$bin_dst.new"
	mv -f "$bin_dst.new" "$bin_dst"
	say "installed $bin_dst: $ver"

	# Config: root-owned, readable by the agent's group only (it may name a password file).
	install -d -m 0750 "$etc"
	live chown root:hazmon "$etc"
	local fresh=0
	if [ -e "$cfg_dst" ]; then
		say "kept existing $cfg_dst (not overwritten)"
	else
		install -m 0640 "$config" "$cfg_dst"
		live chown root:hazmon "$cfg_dst"
		fresh=1
		say "installed $cfg_dst from $config: edit it (agent id, site, broker, buses, sensors)"
	fi

	# Buffer folder.
	install -d -m 0750 "$state"
	chmod 0750 "$state"
	live chown hazmon:hazmon "$state"

	# GPIO character devices for group gpio (Raspberry Pi OS ships such a rule; plain Debian does not).
	install -d -m 0755 "$(dirname "$udev_dst")" "$(dirname "$mods_dst")"
	printf '%s\n' '# hazmon (scripts/install.sh): GPIO chips usable by group gpio (relay outputs, contact inputs).' \
		'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' >"$udev_dst"
	chmod 0644 "$udev_dst"
	# Load the USB serial drivers at boot, before hazmon starts: DeviceAllow=char-ttyUSB
	# and char-ttyACM are resolved from /proc/devices when the unit starts.
	printf '%s\n' '# hazmon (scripts/install.sh): USB RS-485 adapters (ttyUSB*, ttyACM*)' usbserial cdc_acm >"$mods_dst"
	chmod 0644 "$mods_dst"
	if [ -z "$D" ]; then
		modprobe -a usbserial cdc_acm 2>/dev/null || true
		if command -v udevadm >/dev/null 2>&1; then
			udevadm control --reload-rules 2>/dev/null || true
			udevadm trigger --subsystem-match=gpio --action=add 2>/dev/null || true
		fi
	else
		say "DESTDIR set, skipped: modprobe -a usbserial cdc_acm; udevadm control --reload-rules; udevadm trigger --subsystem-match=gpio"
	fi

	# systemd unit.
	install -d -m 0755 "$(dirname "$unit_dst")"
	install -m 0644 "$here/hazmon.service" "$unit_dst"
	say "installed $unit_dst"
	if systemd_running; then
		systemctl daemon-reload
		systemctl enable hazmon.service
		if [ $fresh = 1 ]; then
			say "next: hazmon validate --config /etc/hazmon/hazmon.yaml, then systemctl start hazmon"
		elif "$bin_dst" validate --config "$cfg_dst"; then
			systemctl try-restart hazmon.service
			say "restarted hazmon if it was running"
		else
			say "WARNING: the new binary rejects $cfg_dst: hazmon was NOT restarted (still running the old binary if it was); fix the config, then systemctl restart hazmon" >&2
		fi
	elif [ -n "$D" ]; then
		say "DESTDIR set, skipped: systemctl daemon-reload; systemctl enable hazmon.service"
	else
		say "systemd is not running: enable hazmon.service by hand on the target"
	fi
}

if [ $mode = uninstall ]; then uninstall; else install_all; fi
