# hazmon — make help lists the targets.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG     := github.com/hazmon/hazmon
LDFLAGS := -s -w -X $(PKG)/internal/buildinfo.version=$(VERSION) -X $(PKG)/internal/buildinfo.commit=$(COMMIT)
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

.PHONY: help build build-arm demo test test-go test-arm lint fuzz bench clean install verify-unit smoke

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/hazmon and bin/hazmon-sim (static, version stamped)
	$(BUILD) -o bin/hazmon ./cmd/hazmon
	$(BUILD) -o bin/hazmon-sim ./cmd/hazmon-sim

build-arm: ## static release binaries for linux arm64, armv7, armv6 under bin/linux-*/
	GOOS=linux GOARCH=arm64 $(BUILD) -o bin/linux-arm64/hazmon ./cmd/hazmon
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o bin/linux-armv7/hazmon ./cmd/hazmon
	GOOS=linux GOARCH=arm GOARM=6 $(BUILD) -o bin/linux-armv6/hazmon ./cmd/hazmon
	@ls -l bin/linux-*/hazmon

demo: build ## simulated site + embedded broker + agent on configs/demo.yaml; Ctrl-C stops
	@scripts/demo.sh

test: lint test-go test-arm ## everything CI runs: vet, staticcheck, go test -race, decoder under qemu

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test-go: ## go test -race ./... (needs mosquitto and socat: scripts/deps.sh installs them)
	@scripts/deps.sh --check
	$(GO) test -race -count=1 -timeout 15m ./...

test-arm: ## decoder tests on arm64, armv7 and armv6 (qemu-user-static) so host byte order cannot leak in
	@if command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null; then \
	  GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static ./internal/decode && \
	  GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static ./internal/decode && \
	  GOARCH=arm GOARM=6 $(GO) test -count=1 -exec 'qemu-arm-static -cpu arm1176' ./internal/decode; \
	else echo "test-arm: qemu-user-static missing (scripts/deps.sh installs it)"; exit 1; fi

fuzz: ## run each fuzz target for 30 s
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime 30s ./internal/config
	$(GO) test -run XXX -fuzz FuzzSpecRegisters -fuzztime 30s ./internal/decode

bench: ## benchmarks as ratios to baselines, the agent-vs-wire table, then hazmon side by side with Telegraf (~10 min)
	@scripts/deps.sh --check
	$(GO) test -run XXX -bench . -benchmem ./internal/decode ./internal/safety ./internal/modbus ./internal/actuate ./internal/app
	$(GO) test -run XXX -bench 'Ingest|Drain' -benchmem ./internal/store ./internal/publish
	HAZMON_BENCH=1 $(GO) test -count=1 -run TestBenchTable -v -timeout 10m ./internal/bench
	@# Telegraf is built once into a cache (scripts/bench-telegraf.sh); when it cannot be,
	@# the side-by-side test prints why and skips the Telegraf columns.
	@tg=$$(scripts/bench-telegraf.sh) || tg=none; \
	  HAZMON_BENCH=1 HAZMON_BENCH_TELEGRAF="$$tg" $(GO) test -count=1 -run 'TestBenchSideBySide$$' -v -timeout 40m ./internal/bench

install: build ## install on this machine as root: binary, user, config, unit (scripts/install.sh)
	scripts/install.sh --binary bin/hazmon

verify-unit: ## systemd-analyze verify scripts/hazmon.service
	@scripts/verify-unit.sh

smoke: build build-arm ## ARM binaries under qemu: static, version, validate configs, telemetry to mosquitto
	@scripts/ci-smoke.sh

clean: ## remove build output
	rm -rf bin
