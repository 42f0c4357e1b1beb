# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

BIN      := bin/cronium-orchestrator
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DATA     ?= .cronium/data
GOTEST   ?= go test -race -count=1 -timeout 20m

.PHONY: build run test test-deps images image-bash lint bench docker-image clean

# A static binary: the embedded database is pure Go.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cronium-orchestrator

# The standalone orchestrator: embedded backend on 127.0.0.1:8089, metrics
# on :9464, admin on 127.0.0.1:9465. Builds what is missing first.
run: build image-bash
	$(BIN) standalone --data $(DATA)

# Everything the tests need, then the tests (real dockerd, sshd, HTTP).
test: test-deps images lint
	CI=$${CI:-} $(GOTEST) ./...

test-deps:
	scripts/install-test-deps.sh

images:
	scripts/build-images.sh all

image-bash:
	scripts/build-images.sh bash

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	go vet ./...

bench: images
	go test -run '^$$' -bench . -benchtime 20x ./...

# The orchestrator's own image (needs a registry for the golang base image;
# offline, pass GO_IMAGE=<a local image with Go>).
docker-image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) $(if $(GO_IMAGE),--build-arg GO_IMAGE=$(GO_IMAGE)) -t cronium/orchestrator:$(VERSION) .

clean:
	rm -rf bin .cronium
