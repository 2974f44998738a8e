#!/usr/bin/env bash
# make demo: a simulated site (Modbus TCP slave), an embedded MQTT broker and a
# subscriber that prints what the platform receives, plus the agent on
# configs/demo.yaml. No hardware and no external broker needed. Ctrl-C stops all.
# DEMO_DURATION=20s stops it by itself (used by tests and CI);
# DEMO_EXCURSION_EVERY=10s brings the simulated methane excursion sooner (default 40s).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${DEMO_DURATION:-0}
mkdir -p .demo-data
sim= agent=
# Stop the agent first, so it cuts its outputs and says offline while the
# simulated site and broker are still there; then the simulator.
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$agent" ]; then kill -TERM "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
	sleep 0.5 # let the subscriber print the last messages
	if [ -n "$sim" ]; then kill -TERM "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM
echo "== hazmon-sim: Modbus TCP slave on 127.0.0.1:15020, MQTT broker on 127.0.0.1:11883"
# setsid: Ctrl-C reaches this script only, which stops the two in order.
setsid bin/hazmon-sim --tcp 127.0.0.1:15020 --excursion-every "${DEMO_EXCURSION_EVERY:-40s}" \
	--broker 127.0.0.1:11883 --subscribe tcp://127.0.0.1:11883 --topic 'hazmon/#' &
sim=$!
sleep 1
echo "== hazmon run --config configs/demo.yaml (agent log: .demo-data/agent.log)"
echo "== in another terminal: bin/hazmon status --config configs/demo.yaml"
setsid bin/hazmon run --config configs/demo.yaml 2>.demo-data/agent.log &
agent=$!
if [ "$dur" != 0 ]; then
	sleep "$dur"
else
	wait -n "$sim" "$agent" || true
fi
