# otelcol-propeller: per-task process monitoring for Propeller, as an OpenTelemetry Collector distribution.

GO        ?= go
TOOLS     := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
PKGS      := ./...
FUZZTIME  ?= 10s

# The race detector needs cgo, so a C compiler: Go turns cgo off when it finds none. Without
# it, the tests run without the race detector (make test says so); CI has a compiler.
RACE      := $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race,)

DIST      := _build/otelcol-propeller
SOURCES   := $(shell git ls-files '*.go' 2>/dev/null) go.mod go.sum builder-config.yaml

# The edge build (builder-config-edge.yaml) and the cross-built, stripped, static binaries of
# both builds (make dist): _dist/<os>-<arch>/otelcol-propeller and otelcol-propeller-edge.
EDGE      := _build-edge/otelcol-propeller-edge
EDGE_SOURCES := $(filter-out builder-config.yaml,$(SOURCES)) builder-config-edge.yaml
DIST_PLATFORMS ?= linux/amd64 linux/arm64 linux/arm
DIST_BUILDS    ?= _build:otelcol-propeller _build-edge:otelcol-propeller-edge
GOARM     ?= 7

.PHONY: all build run test lint generate bench bench-fleet fuzz scale discovery-cost tidy

all: lint test

## build: the otelcol-propeller distribution, with ocb (the Collector builder) from builder-config.yaml.
build: $(DIST)

$(DIST): $(SOURCES)
	$(TOOLS) builder --config builder-config.yaml
	@touch $@

.PHONY: edge dist

## edge: the edge build, with ocb from builder-config-edge.yaml: the proplet receiver, the mqtt and
## prometheus exporters, batch, memory_limiter, health_check, file_storage (README: Architectures and the edge build).
edge: $(EDGE)

$(EDGE): $(EDGE_SOURCES)
	$(TOOLS) builder --config builder-config-edge.yaml
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

## run: build, then run the demo pipeline (Ctrl-C stops everything it started). The demo is
## built and run rather than `go run`, which exits 1 whenever it is interrupted.
run: $(DIST)
	$(GO) build -o _build/propeller-demo ./cmd/propeller-demo
	_build/propeller-demo run --collector $(DIST)

## test: every test, with the race detector when a C compiler is there. The end-to-end tests run the built distribution,
## after the rest: they measure a busy process, and the other packages' workloads would take
## CPU from it on a small machine.
test: $(DIST) $(EDGE)
	@[ -n "$(RACE)" ] || echo "make test: no C compiler (cgo is off), so the race detector is off"
	$(GO) test $(RACE) -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v -e /e2e$$ -e /deploy$$)
	$(GO) test $(RACE) -count=1 -timeout 10m ./deploy/   # builds the image (make image): alone, not beside CPU measurements
	cd deploy/kubernetes && $(GO) test -count=1 ./...   # the manifests, in a module of their own (k8s.io/api)
	$(GO) test $(RACE) -count=1 -timeout 10m ./e2e/

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

## scale: the 1,000-process scale measurement (CPU share of sampling alone and of the whole receiver, memory per task).
scale:
	PROPLET_SCALE_TEST=1 $(GO) test -count=1 -run TestScale -v ./receiver/propletreceiver/

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

tidy:
	$(GO) mod tidy
	cd tools && $(GO) mod tidy
