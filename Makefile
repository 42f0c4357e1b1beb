# The two commands a newcomer needs: `make run` and `make test`.
# `make help` lists every target.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

BIN      := bin/cronium-orchestrator
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DATA     ?= .cronium/data
GOTEST   ?= go test -race -count=1 -timeout 20m
FUZZTIME ?= 60s

.PHONY: help build run test test-deps images image-bash lint bench fuzz chaos image image-from-source bundle clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-18s %s\n", $$1, $$2 }'

build: ## the static binary, bin/cronium-orchestrator (the embedded database is pure Go)
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cronium-orchestrator

# Embedded backend on 127.0.0.1:8089, metrics on :9464, admin on 127.0.0.1:9465.
run: build image-bash ## the standalone orchestrator (embedded backend + daemon), building what is missing
	$(BIN) standalone --data $(DATA)

test: test-deps images lint ## install test dependencies, build the runtime images, run every test
	CI=$${CI:-} $(GOTEST) ./...

test-deps: ## the Debian packages the tests need (sshd, promtool, chromium, debootstrap)
	scripts/install-test-deps.sh

images: ## the runtime images jobs run in, from Debian packages (no registry)
	scripts/build-images.sh all

image-bash: ## the Bash runtime image only
	scripts/build-images.sh bash

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	go vet ./...

bench: images ## issue 10's benchmarks against baselines of the same run (under 10 min on 2 cores): a table, one PASS|MISS line per target, BENCHMARKS.md
	scripts/bench.sh

fuzz: ## every fuzz target for FUZZTIME (60s) each; FUZZPARALLEL=1 for one worker
	FUZZTIME=$(FUZZTIME) FUZZPARALLEL=$(FUZZPARALLEL) scripts/fuzz.sh

chaos: images ## CHAOS_JOBS (500) mixed jobs under random faults (CHAOS_SEED), then the invariants; a short run is in make test
	scripts/chaos.sh

image: ## the orchestrator's image, cronium/orchestrator:VERSION and :latest, without a registry
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/build-image.sh

image-from-source: ## the same image built from source in a Go image (needs a registry; GO_IMAGE=...)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg SOURCE="$$(git remote get-url origin 2>/dev/null)" $(if $(GO_IMAGE),--build-arg GO_IMAGE=$(GO_IMAGE)) -t cronium/orchestrator:$(VERSION) .

bundle: image ## the single-container bundle on BACKEND_IMAGE (deploy/bundle)
	docker build $(if $(BACKEND_IMAGE),--build-arg BACKEND_IMAGE=$(BACKEND_IMAGE)) --build-arg ORCHESTRATOR_IMAGE=cronium/orchestrator:latest -t cronium/bundle:$(VERSION) deploy/bundle

clean: ## remove the binary and make run's data
	rm -rf bin .cronium
