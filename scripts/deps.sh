#!/usr/bin/env bash
# Installs (or with --check, only checks) what hazmon's tests and demo need on Debian:
# mosquitto (real broker for integration tests), socat (pty pairs for Modbus RTU),
# python3-pymodbus (an independent Modbus slave), qemu-user-static (ARM tests),
# prometheus (for promtool, which checks the metrics exposition), mosquitto-clients,
# python3-serial-asyncio (pymodbus's RTU slave), file and systemd (systemd-analyze verify),
# openssh-server (a real sshd for the SFTP uplink tests; its service is left as installed).
set -euo pipefail
need=()
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v socat >/dev/null 2>&1 || need+=(socat)
/usr/bin/python3 -c "import serial_asyncio" >/dev/null 2>&1 || need+=(python3-serial-asyncio)
command -v qemu-arm-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v file >/dev/null 2>&1 || need+=(file)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
/usr/bin/python3 -c 'import pymodbus' >/dev/null 2>&1 || need+=(python3-pymodbus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "${1:-}" = "--check" ]; then
	echo "missing: ${need[*]} — run: sudo scripts/deps.sh" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian package starts a system-wide broker on :1883; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
	$SUDO systemctl stop mosquitto || true
fi
# The prometheus package installs (and may start) a server on :9090; only its promtool is needed.
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files prometheus.service >/dev/null 2>&1; then
	$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
