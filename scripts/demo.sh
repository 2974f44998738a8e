#!/usr/bin/env bash
# make demo: a simulated site (Modbus TCP slave), an embedded MQTT broker and a
# subscriber that prints what the platform receives, plus the agent on
# configs/demo.yaml. No hardware and no external broker needed. Ctrl-C stops all.
# DEMO_DURATION=20s stops it by itself (used by tests and CI).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DEMO_DURATION:-0}
mkdir -p .demo-data
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
sim_args=(--tcp 127.0.0.1:15020 --excursion-every ${DEMO_EXCURSION_EVERY:-40s} --broker 127.0.0.1:11883 --subscribe tcp://127.0.0.1:11883 --topic 'hazmon/#')
[ "$dur" != 0 ] && sim_args+=(--duration "$dur")
echo "== hazmon-sim: Modbus TCP slave on 127.0.0.1:15020, MQTT broker on 127.0.0.1:11883"
bin/hazmon-sim "${sim_args[@]}" &
pids+=($!)
sleep 1
echo "== hazmon run --config configs/demo.yaml (agent log: .demo-data/agent.log)"
bin/hazmon run --config configs/demo.yaml 2>.demo-data/agent.log &
pids+=($!)
if [ "$dur" != 0 ]; then
	wait "${pids[0]}" || true
else
	wait -n "${pids[@]}" || true
fi
