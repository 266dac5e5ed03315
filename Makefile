# mapsworker: `make run` shows it working on this machine, `make test` proves it.
# Everything the targets need is installed here, pinned: Go modules from go.sum,
# Azurite (and the Node.js 22 it declares) from azurite/package-lock.json.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
AZURITE   := azurite/node_modules/azurite/dist/src/azurite.js
BENCHTIME ?= 1x
FUZZTIME  ?= 30s
# CROSS are the platforms besides this one that `make test` vets and builds
# for: developers' Macs, Windows, arm64 Linux.
CROSS     ?= darwin/arm64 darwin/amd64 windows/amd64 linux/arm64
# TESTPARALLEL is how many tests of a package run at once: most of their
# time is spent waiting (leases, outages, drains), not computing.
TESTPARALLEL ?= 8

.PHONY: all build package run test bench fuzz deps vet crossbuild fmt clean

all: build

# progress runs the command $(2) and, while it runs, says every 10 s that it
# is still $(1): a first run downloads and compiles for minutes.
progress = start=$$(date +%s); \
	( while sleep 10; do echo "   … still $(1) ($$(( $$(date +%s) - start ))s)"; done ) & beat=$$!; \
	$(2); rc=$$?; kill $$beat 2>/dev/null; exit $$rc

# deps installs the pinned Azurite and downloads the Go modules.
deps: $(AZURITE)
	@echo "==> Go modules (go mod download; the first time about 300 MB)"
	@$(call progress,downloading Go modules,$(GO) mod download)

$(AZURITE): azurite/package.json azurite/package-lock.json
	@echo "==> installing Azurite and Node.js 22 into azurite/node_modules (npm ci; the first time about 550 MB, a minute)"
	@$(call progress,installing Azurite,cd azurite && npm ci --no-audit --no-fund --loglevel=error)
	@touch $@

# build writes bin/mapsworker, and for make run bin/localrun (its
# orchestrator) and bin/mapsdev (the development tools: `mapsdev emulate`
# serves the local Azure Maps emulator, which the worker's binary does not
# carry).
build:
	@echo "==> building bin/mapsworker, bin/localrun and bin/mapsdev (go build; the first time a minute or two)"
	@$(call progress,compiling,$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/mapsworker ./cmd/localrun ./cmd/mapsdev)

# STATIC builds a static linux/amd64 binary (CGO_ENABLED=0: no libc, so a
# distroless/static image runs it): the Linux WebJob's and the image's.
STATIC = GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

# package cross-builds the WebJob zips for App Service: Windows
# (dist/mapsworker-webjob.zip: run.cmd, settings.job, mapsworker.exe) and
# Linux (dist/mapsworker-webjob-linux.zip: run.sh, settings.job, mapsworker).
# They hold the worker alone: no development tool, no emulator.
package: image-bin
	mkdir -p dist/webjob dist/webjob-linux
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/webjob/mapsworker.exe ./cmd/mapsworker
	cp run.cmd settings.job dist/webjob/
	$(GO) run ./cmd/webjobzip dist/mapsworker-webjob.zip dist/webjob/run.cmd dist/webjob/settings.job dist/webjob/mapsworker.exe
	cp run.sh settings.job dist/image/mapsworker dist/webjob-linux/
	$(GO) run ./cmd/webjobzip dist/mapsworker-webjob-linux.zip dist/webjob-linux/run.sh dist/webjob-linux/settings.job dist/webjob-linux/mapsworker
	@echo "wrote dist/mapsworker-webjob.zip and dist/mapsworker-webjob-linux.zip"

# image-bin builds dist/image/mapsworker, the static binary the container
# image holds; the Dockerfile's build stage runs this target.
.PHONY: image-bin
image-bin:
	$(STATIC) -o dist/image/mapsworker ./cmd/mapsworker

# run starts Azurite, the Azure Maps emulator (bin/mapsdev emulate) and the
# worker, enqueues sample requests of every kind, prints their results, and
# runs until Ctrl-C.
run: deps build
	@bin/localrun

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# crossbuild vets and builds every package for the CROSS platforms.
crossbuild:
	@for p in $(CROSS); do \
		echo "==> go vet and go build for $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... && GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; \
	done

test: deps vet crossbuild
	$(GO) test -count=1 -parallel $(TESTPARALLEL) -timeout 9m ./...

# bench measures throughput against the storage floor, Maps calls and
# storage requests per message, latency and memory (see README); it exits
# non-zero when a row misses its target. It needs no binary of its own.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m $(BENCHFLAGS) ./worker/bench/

# fuzz runs each fuzz target of the decoding path for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./jobs/
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) ./jobs/

clean:
	rm -rf bin dist .run
