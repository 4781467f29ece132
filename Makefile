# otelcol-propeller: per-task process monitoring for Propeller, as an OpenTelemetry Collector distribution.

GO        ?= go
# bash, for pipefail: a build or test piped through a filter fails when it fails.
SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
TOOLS     := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
PKGS      := ./...
FUZZTIME  ?= 10s

# make test is the same on every machine: no race detector, which needs cgo and so a C
# compiler that a newcomer's machine may not have (and which makes the suite several times
# slower). make test-race runs the unit tests with it; CI runs both (.ci/run).
RACE      ?=

# make test's unit group: four packages at once on any machine (their tests mostly wait on
# processes, brokers and timers, and pass on a busy machine), and no vet pass, which make lint
# runs in full.
TESTFLAGS ?= -p 4 -vet=off

DIST      := _build/otelcol-propeller
# Tests are not part of the build: editing one does not rebuild the distribution.
SOURCES   := $(filter-out %_test.go,$(shell git ls-files '*.go' 2>/dev/null)) go.mod go.sum builder-config.yaml

# The edge build (builder-config-edge.yaml) and the cross-built, stripped, static binaries of
# both builds (make dist): _dist/<os>-<arch>/otelcol-propeller and otelcol-propeller-edge.
EDGE      := _build-edge/otelcol-propeller-edge
EDGE_SOURCES := $(filter-out builder-config.yaml,$(SOURCES)) builder-config-edge.yaml
DIST_PLATFORMS ?= linux/amd64 linux/arm64 linux/arm
DIST_BUILDS    ?= _build:otelcol-propeller _build-edge:otelcol-propeller-edge
GOARM     ?= 7

.PHONY: all help build run test test-race lint generate bench bench-fleet fuzz scale scale-10k discovery-cost tidy
.DEFAULT_GOAL := help

## help: this list (what a bare `make` prints), from the `## target:` comments of this Makefile.
help:
	@echo "make TARGET, where TARGET is one of:"
	@awk '/^## [a-z0-9-]+:/ { t = $$2; sub(/:$$/, "", t); sub(/^## [a-z0-9-]+: */, ""); printf "  %-15s %s\n", t, $$0; on = 1; next } \
		on && /^## / { sub(/^## /, ""); printf "  %-15s %s\n", "", $$0; next } { on = 0 }' $(MAKEFILE_LIST)

## all: lint, then every test.
all: lint test

## build: the otelcol-propeller distribution, with ocb (the Collector builder) from builder-config.yaml.
build: $(DIST)

# ocb generates the distribution's sources and resolves its modules (the first time, it
# downloads the Collector's modules), then the distribution is compiled here with the flags ocb
# uses (-trimpath, -ldflags '-s -w', cgo off unless the builder config turns it on), printing a
# line per 25 packages compiled: ocb itself compiles in silence, for minutes on a cold cache.
# $(call ocb,builder config,output directory,binary name)
define ocb
	@echo "build: $(2)/$(3): ocb generates the sources and resolves the modules ($(1)); a first build downloads them"
	$(TOOLS) builder --config $(1) --skip-compilation
	@echo "build: $(2)/$(3): compiling (go build -v: a line per 25 packages; a cold build compiles about 1,370)"
	@cd $(2) && CGO_ENABLED=0 $(GO) build -v -trimpath -ldflags='-s -w' -o $(3) . 2>&1 | \
		awk '/ / { print; next } { n++; if (n % 25 == 0) { printf "build: %d packages compiled\n", n; fflush() } } \
			END { printf "build: %d packages compiled\n", n }'
	@echo "build: $(2)/$(3) is built"
endef

# The builder makes its output directory readable by its owner only; the binary is meant to
# be tried by other users too (README: as a non-root user), so the directory is opened up.
$(DIST): $(SOURCES)
	$(call ocb,builder-config.yaml,_build,otelcol-propeller)
	@chmod a+rx _build
	@touch $@

.PHONY: edge dist

## edge: the edge build, with ocb from builder-config-edge.yaml: the proplet receiver, the mqtt and
## prometheus exporters, batch, memory_limiter, health_check, file_storage (README: Architectures and the edge build).
edge: $(EDGE)

$(EDGE): $(EDGE_SOURCES)
	$(call ocb,builder-config-edge.yaml,_build-edge,otelcol-propeller-edge)
	@chmod a+rx _build-edge
	@touch $@

## dist: both builds cross-compiled for DIST_PLATFORMS (linux/arm is GOARM=7), static (CGO_ENABLED=0),
## stripped (-trimpath -ldflags '-s -w'), from the sources ocb generated in _build and _build-edge.
## One platform or build only: make dist DIST_PLATFORMS=linux/arm64 DIST_BUILDS=_build:otelcol-propeller
dist: $(foreach b,$(DIST_BUILDS),$(firstword $(subst :, ,$(b)))/$(lastword $(subst :, ,$(b))))
	@set -e; for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		for b in $(DIST_BUILDS); do \
			dir=$${b%%:*}; name=$${b#*:}; out=$(CURDIR)/_dist/$$os-$$arch/$$name; \
			echo "dist: $$os/$$arch $$name"; \
			(cd $$dir && CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$(GOARM) $(GO) build -trimpath -ldflags '-s -w' -o $$out .); \
		done; \
	done
	@ls -l _dist/*/*

## image: the container image (deploy/container/Dockerfile) with podman, else docker: the
## distribution built static (CGO_ENABLED=0), the host's CA bundle, examples/agent.yaml as
## /etc/otelcol-propeller/config.yaml. IMAGE names it.
IMAGE     ?= otelcol-propeller:dev
CONTAINER ?= $(shell command -v podman || command -v docker)
IMAGE_CTX := _build/image
.PHONY: image
image: $(DIST)
	@[ -n "$(CONTAINER)" ] || { echo "make image: neither podman nor docker is installed"; exit 1; }
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)/var/lib/otelcol-propeller/queue
	cd _build && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o image/otelcol-propeller .
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_CTX)/
	cp examples/agent.yaml $(IMAGE_CTX)/config.yaml
	$(CONTAINER) build -t $(IMAGE) -f deploy/container/Dockerfile $(IMAGE_CTX)

## package: the .deb and .rpm packages (packaging/nfpm.yaml, with nfpm pinned in tools/go.mod) in
## PKG_DIR: PKG_BIN (default: the static distribution, _build/otelcol-propeller) as
## /usr/bin/otelcol-propeller, the systemd unit, PKG_CONFIG as /etc/otelcol-propeller/config.yaml
## and the proplet's env file. Another architecture, from make dist's binaries:
## make package PKG_ARCH=arm64 PKG_BIN=_dist/linux-arm64/otelcol-propeller (PKG_ARCH=arm7 for linux-arm).
PKG_VERSION ?= $(shell sed -n 's/^  version: *//p' builder-config.yaml)
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
PKG_BIN     ?= $(DIST)
PKG_CONFIG  ?= examples/agent.yaml
PKG_DIR     ?= _dist/packages
.PHONY: package
package: $(PKG_BIN)
	@mkdir -p $(PKG_DIR)
	@set -e; for p in deb rpm; do \
		PKG_VERSION=$(PKG_VERSION) PKG_ARCH=$(PKG_ARCH) PKG_BIN=$(PKG_BIN) PKG_CONFIG=$(PKG_CONFIG) \
			$(TOOLS) nfpm package --config packaging/nfpm.yaml --packager $$p --target $(PKG_DIR)/; \
	done

## run: build, then run the demo pipeline. Ctrl-C stops everything it started, says so, and
## exits 0 (the demo takes the terminal, so make does not see the Ctrl-C).
run: $(DIST)
	$(GO) build -o _build/propeller-demo ./cmd/propeller-demo
	_build/propeller-demo run --collector $(DIST)

## test: every test: the build, then four groups at once, each whatever the others do: the unit
## tests, deploy (the image), the Kubernetes manifests (a module of their own), end-to-end (the
## built distribution). A line per group as it ends, its failures under it; one summary at the
## end, exit 1 if anything failed. No race detector (make test-race; RACE=-race turns it on here).
## Logs: _build/test-<group>.log.
# Not $(MAKE), which make -n would run.
SUBMAKE := $(MAKE)
# The groups wait on processes, brokers and timers more than they compute: side by side they
# take the longest one's time, not the sum (BENCHMARKS.md: make test's wall time).
test:
	@mkdir -p _build; rm -f _build/test-*.log _build/test-*.failed; \
	group() { name=$$1; shift; start=$$SECONDS; \
		if "$$@" > _build/test-$$name.log 2>&1; then result=passed; else result=FAILED; touch _build/test-$$name.failed; fi; \
		echo "== test: $$name $$result ($$((SECONDS - start)) s)"; \
		[ $$result = passed ] || grep -E '^ *--- FAIL|^FAIL|^panic:|^# |build failed|Error:|^error|: error' _build/test-$$name.log | head -40 | sed "s/^/  $$name: /"; }; \
	echo "== test: build (make build edge)"; \
	group build $(SUBMAKE) --no-print-directory build edge; \
	echo "== test: unit, deploy, kubernetes and e2e, side by side (each says when it ends)"; \
	group unit $(GO) test $(RACE) $(TESTFLAGS) -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v -e /e2e$$ -e /deploy$$) & \
	group deploy $(GO) test $(RACE) -count=1 -timeout 10m ./deploy/ & \
	group kubernetes $(GO) -C deploy/kubernetes test -count=1 ./... & \
	if [ -f _build/test-build.failed ]; then echo "== test: e2e not run: it runs the build, which failed"; touch _build/test-e2e.failed; \
	else group e2e $(GO) test $(RACE) -count=1 -timeout 10m ./e2e/ & fi; \
	wait; echo; \
	failed=$$(for g in build unit deploy kubernetes e2e; do [ -f _build/test-$$g.failed ] && printf ' %s' $$g; done); \
	if [ -z "$$failed" ]; then echo "make test: every group passed (build unit deploy kubernetes e2e)"; exit 0; fi; \
	echo "make test: FAILED:$$failed (whole logs: _build/test-<group>.log; failures above, under each group's line)"; \
	exit 1

## test-race: the unit tests with the race detector (needs cgo, so a C compiler: gcc or clang).
test-race:
	@[ "$$($(GO) env CGO_ENABLED)" = 1 ] || { echo "make test-race: the race detector needs cgo, and Go found no C compiler (install gcc or clang, or set CC)"; exit 1; }
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list $(PKGS) | grep -v -e /e2e$$ -e /deploy$$)

## lint: go vet, staticcheck, gofmt, and a cross-build of the portable fallback.
lint:
	$(GO) vet $(PKGS)
	cd deploy/kubernetes && $(GO) vet ./...
	$(TOOLS) staticcheck $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	GOOS=darwin $(GO) build $(PKGS)
	GOOS=darwin $(GO) vet ./internal/process/

## generate: regenerate mdatagen code (internal/metadata, documentation.md, generated tests, the status table of each component README).
generate:
	cd receiver/propletreceiver && $(TOOLS) mdatagen metadata.yaml
	cd exporter/mqttexporter && $(TOOLS) mdatagen metadata.yaml
	cd receiver/propellermqttreceiver && $(TOOLS) mdatagen metadata.yaml
	cd extension/pagetrimextension && $(TOOLS) mdatagen metadata.yaml
	cd extension/filestorageextension && $(TOOLS) mdatagen metadata.yaml

## bench: benchmarks with allocations, three runs each (feed to benchstat).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 3 $(PKGS)

## scale: the 1,000-process (SCALE_TASKS) scale measurement (CPU share of sampling alone, of the whole receiver and of a Go
## floor doing only the same reads and OTLP tree; memory per task)
## and the start-request flood (how soon a task is bound amid 20,000 requests, the CPU of 10,000 pending tasks).
scale:
	PROPLET_SCALE_TEST=1 $(GO) test -count=1 -run TestScale -v ./receiver/propletreceiver/

## scale-10k: the built collector on this host with SCALE_TASKS (10000) idle processes found by a discovery
## rule, at 10 s (the standard profile), proplet -> [mqtt (a local Mosquitto), prometheus (scraped every
## 15 s)], measured for SCALE_MINUTES (5) after warm-up: CPU whole and per stage (pprof), RSS, Go heap,
## scrape time and size, messages delivered, and the kernel floor of the reads. Root.
## SCALE_EXPORTERS=mqtt (or prometheus, debug) chooses the exporters; SCALE_BINARY=path runs another build;
## SCALE_PROFILE_DIR=dir keeps the CPU and heap profiles. SCALE_COMPARE=hostmetrics runs instead
## SCALE_TASKS (then 500) at 1 s against the hostmetrics process scraper, 60 s each, twice.
SCALE_TASKS       ?= $(if $(SCALE_COMPARE),500,10000)
SCALE_MINUTES     ?= 5
SCALE_COMPARE     ?=
SCALE_EXPORTERS   ?=
SCALE_BINARY      ?=
SCALE_PROFILE_DIR ?=
scale-10k: $(DIST)
	PROPLET_SCALE_HOST=1 SCALE_TASKS=$(SCALE_TASKS) SCALE_MINUTES=$(SCALE_MINUTES) SCALE_COMPARE=$(SCALE_COMPARE) \
		SCALE_EXPORTERS=$(SCALE_EXPORTERS) SCALE_BINARY=$(SCALE_BINARY) SCALE_PROFILE_DIR=$(SCALE_PROFILE_DIR) \
		$(GO) test -count=1 -v -timeout 90m -run '$(if $(SCALE_COMPARE),^TestScaleAgainstHostmetrics$$,^TestScaleHost$$)' ./e2e/

## discovery-cost: what finding 100 discovered tasks at 1 s costs with /proc scans and with the
## kernel's process events, on a host with PROPLET_DISCOVERY_BACKGROUND (4,500) other processes. Root.
discovery-cost:
	PROPLET_DISCOVERY_COST=1 $(GO) test -count=1 -run TestDiscoveryCost -v -timeout 20m ./internal/monitor/

## bench-fleet: the fleet gateway through the built distribution (Mosquitto -> propeller_mqtt -> otlp_http -> a sink), beside a bare paho subscriber.
bench-fleet: $(DIST)
	FLEET_BENCH=1 $(GO) test -count=1 -run TestFleetThroughput -v ./e2e/

## fuzz: run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## tidy: go mod tidy in the module and in tools/.
tidy:
	$(GO) mod tidy
	cd tools && $(GO) mod tidy
