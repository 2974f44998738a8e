#!/usr/bin/env bash
# Smoke test of the release binaries, run by .ci/run after `make build build-arm`:
#  1. each of bin/linux-{arm64,armv7,armv6}/hazmon is a static ELF for its architecture
#     (file, go version -m for GOARM), prints `version` and validates every configs/*.yaml,
#     run under qemu-user-static (armv6 with -cpu arm1176, the Pi Zero/1 core);
#  2. each runs as the agent for RUN_SECONDS (default 8) against bin/hazmon-sim (Modbus TCP)
#     and a real mosquitto, and at least one telemetry message from it must reach the broker.
# Prints each binary's size (README table). Needs: file, qemu-user-static, mosquitto,
# mosquitto-clients, python3 (free ports).
#
#   make build build-arm && scripts/ci-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_SECONDS=${RUN_SECONDS:-8}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin"

fail() { echo "ci-smoke: FAIL: $*" >&2; exit 1; }

missing=()
for c in file qemu-aarch64-static qemu-arm-static mosquitto mosquitto_sub python3 timeout go; do
	command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] || fail "missing commands: ${missing[*]} (Debian: file qemu-user-static mosquitto mosquitto-clients python3)"
for f in bin/hazmon-sim bin/linux-arm64/hazmon bin/linux-armv7/hazmon bin/linux-armv6/hazmon; do
	[ -x "$f" ] || fail "$f missing: run make build build-arm first"
done

# arch table: name | binary | qemu command | `file` must say | GOARCH/GOARM in the build info
archs=(arm64 armv7 armv6)
declare -A qemu=([arm64]="qemu-aarch64-static" [armv7]="qemu-arm-static" [armv6]="qemu-arm-static -cpu arm1176")
declare -A elf=([arm64]="ARM aarch64" [armv7]="ARM, EABI5" [armv6]="ARM, EABI5")
declare -A goarch=([arm64]="GOARCH=arm64" [armv7]="GOARM=7" [armv6]="GOARM=6")

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== static binaries"
printf '%-8s %10s  %s\n' arch bytes MiB
for a in "${archs[@]}"; do
	b=bin/linux-$a/hazmon
	info=$(file -b "$b")
	case $info in *"statically linked"*) ;; *) fail "$b is not statically linked: $info" ;; esac
	case $info in *"${elf[$a]}"*) ;; *) fail "$b: want ${elf[$a]}, file says: $info" ;; esac
	go version -m "$b" | grep -q "${goarch[$a]}" || fail "$b: build info lacks ${goarch[$a]}"
	size=$(stat -c %s "$b")
	printf '%-8s %10d  %.1f\n' "$a" "$size" "$(echo "$size" | awk '{print $1/1048576}')"
done

echo "== version and validate under qemu"
for a in "${archs[@]}"; do
	b=bin/linux-$a/hazmon
	# shellcheck disable=SC2086 # qemu[...] is a command with arguments
	v=$(${qemu[$a]} "$b" version) || fail "$a: version"
	echo "$a: $v"
	for c in configs/*.yaml; do
		out=$(${qemu[$a]} "$b" validate --config "$c" 2>&1) || fail "$a: validate $c: $out"
		echo "$a: $out"
	done
done

echo "== agent run: hazmon-sim (Modbus TCP) + mosquitto, ${RUN_SECONDS}s per architecture"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
mb_port=$(free_port)
mq_port=$(free_port)
# mosquitto run as root drops to user mosquitto: its config and every folder above must be readable.
chmod 0755 "$tmp"
cat >"$tmp/mosquitto.conf" <<EOF
listener $mq_port 127.0.0.1
allow_anonymous true
persistence false
log_dest stdout
EOF
chmod 0644 "$tmp/mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
bin/hazmon-sim --tcp "127.0.0.1:$mb_port" --broker "" --excursion-every 0 >"$tmp/sim.log" 2>&1 &
pids+=($!)
# Wait for both ports.
for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$mq_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$mb_port") 2>/dev/null; then break; fi
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$mq_port") 2>/dev/null || { cat "$tmp/mosquitto.log" >&2; fail "mosquitto did not listen on $mq_port"; }
(exec 3<>"/dev/tcp/127.0.0.1/$mb_port") 2>/dev/null || { cat "$tmp/sim.log" >&2; fail "hazmon-sim did not listen on $mb_port"; }
mosquitto_sub -h 127.0.0.1 -p "$mq_port" -t 'hazmon/v1/+/+/+' -v >"$tmp/sub.log" 2>&1 &
pids+=($!)
sleep 0.5

rc=0
for a in "${archs[@]}"; do
	b=bin/linux-$a/hazmon
	data=$tmp/data-$a
	mkdir -p "$data"
	# configs/demo.yaml pointed at this run's simulator, broker and folders; one agent id per arch.
	sed -e "s/127\.0\.0\.1:15020/127.0.0.1:$mb_port/" -e "s/127\.0\.0\.1:11883/127.0.0.1:$mq_port/" \
		-e "s|^\(  *data_dir:\).*|\1 $data|" -e "s|^\(  *socket:\).*|\1 $data/hazmon.sock|" \
		-e "s/^\(  *id:\) gw-demo/\1 gw-smoke-$a/" configs/demo.yaml >"$tmp/$a.yaml"
	if ! grep -q "gw-smoke-$a" "$tmp/$a.yaml" || ! grep -q ":$mq_port" "$tmp/$a.yaml"; then
		fail "could not derive a config from configs/demo.yaml"
	fi
	set +e
	# shellcheck disable=SC2086
	timeout --preserve-status -k 15 -s INT "$RUN_SECONDS" ${qemu[$a]} "$b" run --config "$tmp/$a.yaml" >"$tmp/agent-$a.log" 2>&1
	code=$?
	set -e
	n=$(grep -c "/gw-smoke-$a/telemetry " "$tmp/sub.log" || true)
	echo "$a: agent exit $code after SIGINT, $n telemetry message(s) at the broker"
	if [ "$n" -lt 1 ] || [ "$code" -ne 0 ]; then
		echo "--- agent log ($a)" >&2
		tail -n 30 "$tmp/agent-$a.log" >&2
		rc=1
	fi
done
echo "--- messages at the broker: $(wc -l <"$tmp/sub.log")"
head -n 5 "$tmp/sub.log" | cut -c 1-300
[ $rc -eq 0 ] || fail "an agent did not publish telemetry or did not stop cleanly"
echo "ci-smoke: ok"
