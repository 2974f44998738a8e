#!/usr/bin/env bash
# bench-telegraf.sh — build a trimmed Telegraf for the side-by-side benchmark
# (internal/bench, `make bench`) into a cache directory unless it is already there,
# and print the binary's path on stdout.
#
# The build keeps only what the benchmark uses: the modbus input, the mqtt output
# and the JSON serializer (Telegraf's "custom" build tag). It needs the Go module
# proxy and takes minutes on 2 CPUs the first time; later runs print the cached path.
#
# Environment:
#   TELEGRAF_VERSION        version to build (default v1.37.2, the one the issue names)
#   HAZMON_BENCH_CACHE      cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/hazmon-bench)
#   GO                      go command (default go)
#
# Exit status: 0 and the path on stdout when the binary exists or was built;
# non-zero with a message on stderr when it cannot be built (no Go, no network, ...).
set -euo pipefail

version="${TELEGRAF_VERSION:-v1.37.2}"
cache="${HAZMON_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hazmon-bench}"
go_cmd="${GO:-go}"
bindir="$cache/telegraf-$version/bin"
bin="$bindir/telegraf"

if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

if ! command -v "$go_cmd" >/dev/null 2>&1; then
  echo "bench-telegraf: cannot build Telegraf $version: '$go_cmd' not found" >&2
  exit 2
fi

mkdir -p "$bindir"
log="$cache/telegraf-$version/build.log"
echo "bench-telegraf: building Telegraf $version into $bindir (minutes the first time; log $log)" >&2
# Build into a temporary GOBIN and move into place only on success, so an
# interrupted build never leaves a half-written binary that a later run trusts.
tmp="$(mktemp -d "$cache/telegraf-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 nice "$go_cmd" install \
     -tags "custom,inputs.modbus,outputs.mqtt,serializers.json" \
     "github.com/influxdata/telegraf/cmd/telegraf@$version" >"$log" 2>&1; then
  echo "bench-telegraf: cannot build Telegraf $version (go install failed; last lines of $log):" >&2
  tail -n 5 "$log" >&2
  exit 1
fi
mv "$tmp/telegraf" "$bin"
echo "$bin"
