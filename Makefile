# mapsworker: `make run` shows it working on this machine, `make test` proves it.
# Everything the targets need is installed here, pinned: Go modules from go.sum,
# Azurite (and the Node.js 22 it declares) from azurite/package-lock.json.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
AZURITE   := azurite/node_modules/azurite/dist/src/azurite.js
BENCHTIME ?= 1x
FUZZTIME  ?= 30s

.PHONY: all build package run test bench fuzz deps vet fmt clean

all: build

# deps installs the pinned Azurite and downloads the Go modules.
deps: $(AZURITE)
	$(GO) mod download

$(AZURITE): azurite/package.json azurite/package-lock.json
	cd azurite && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mapsworker ./worker/cmd/mapsworker

# package cross-builds for App Service (Windows) and writes the WebJob zip with
# run.cmd, settings.job and mapsworker.exe at its root.
package:
	mkdir -p dist/webjob
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/webjob/mapsworker.exe ./worker/cmd/mapsworker
	cp run.cmd settings.job dist/webjob/
	$(GO) run ./worker/cmd/webjobzip dist/mapsworker-webjob.zip dist/webjob/run.cmd dist/webjob/settings.job dist/webjob/mapsworker.exe
	@echo "wrote dist/mapsworker-webjob.zip"

# run starts Azurite, the Azure Maps emulator and the worker, enqueues sample
# requests of every kind, prints their results, and runs until Ctrl-C.
run: deps build
	$(GO) run ./worker/cmd/localrun

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null)" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: deps vet
	$(GO) test -count=1 -timeout 9m ./...

# bench measures throughput against the storage floor, Maps calls and
# storage requests per message, latency and memory (see README).
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m $(BENCHFLAGS) ./worker/bench/

# fuzz runs each fuzz target of the decoding path for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./jobs/
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) ./jobs/

clean:
	rm -rf bin dist .run
