# edgehub: `make run` starts the embedded single node on :8080,
# `make test` installs what the tests need and runs them all.

GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
# k6 is installed into GOBIN by scripts/install-k6.sh.
export PATH := $(GOBIN):$(PATH)

FUZZTIME ?= 30s
ARGS     ?=

.PHONY: run build deps test test-race test-short bench bench-full fuzz lint fmt clean

## run: build and start one node (no Redis, no auth, demo page at http://localhost:8080/)
run: build
	./bin/edgehub $(ARGS)

## build: the node, and the load generator
build:
	$(GO) build -o bin/edgehub ./cmd/edgehub
	$(GO) build -o bin/edgehub-bench ./cmd/edgehub-bench

## deps: install what the tests use (redis-server, chromium, npm clients, k6)
deps:
	bash scripts/install-test-deps.sh

## test: everything, race detector on: unit, fuzz seeds, end-to-end (Go, Node ws, Chromium, k6)
test: deps build lint
	$(GO) test -race -count=1 ./...

## test-race: same as test
test-race: test

## test-short: the quick loop, without the end-to-end and 10k-connection tests
test-short:
	$(GO) test -short -count=1 ./...

## bench: hot-path Go benchmarks, then a short load profile against a real node
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./frame/ ./fanout/ ./node/ ./netloop/
	bash scripts/bench-node.sh quick

## bench-full: the full load profile of bench/results (about 6 minutes)
bench-full: build
	bash scripts/bench-node.sh

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParser$$' -fuzztime=$(FUZZTIME) ./frame/
	$(GO) test -run='^$$' -fuzz='^FuzzUTF8Fragments$$' -fuzztime=$(FUZZTIME) ./frame/
	$(GO) test -run='^$$' -fuzz='^FuzzValidPrefix$$' -fuzztime=$(FUZZTIME) ./frame/
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./node/

## lint: go vet and gofmt
lint:
	$(GO) vet ./...
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi

## fmt: gofmt the tree
fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
