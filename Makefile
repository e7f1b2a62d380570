# DocShield voice worker. CI runs `make tools` then `make test` (.ci/run).
#
#   make build   the worker binary, bin/worker
#   make tools   Debian packages, tools/bin/devstack, and the Go-built servers (cached):
#                MinIO, LiveKit and LiveKit's SIP service
#   make test    all tests against a real local stack, then go vet; ends with a summary
#   make dev     the worker against the local stack (Ctrl-C stops everything)
#   make up      only the local stack, env in .devstack.env (Ctrl-C stops it); the
#                stack lives in a private network namespace, so reach it with
#                `tools/bin/devstack enter -- CMD`
#   make lint    gofmt, go vet, staticcheck
#   make bench   benchmarks against the local stack, then the SIP leg's
#                (the worker against an echo through LiveKit's SIP service)
#                and the capacity benchmark (calls per dyno, latencies at 1
#                to 40 calls; about 6 minutes)
#   make test-busy  make test with every core saturated by CPU hogs (2 per core)
#   make fleet   the fleet test in full: 4 worker processes, 2,000 contacts in 3
#                campaigns, one process killed mid-run (TestFleetRun, FLEETRUN=full)
#
# The local stack and the command devstack runs share a private network
# namespace with no route out (see tools/devstack/netns.go), so whatever a
# command fetches from the network (Go modules) is fetched before: the
# `modules` prerequisite.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

MODULE   := github.com/docshield/voice-worker
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DEVSTACK := tools/bin/devstack
TESTOUT  := bin/test-results

STATICCHECK_VERSION := v0.8.2
# Cached with the built servers, outside the clone, so CI builds it once.
CACHE := $(or $(DOCSHIELD_CACHE),$(HOME)/.cache/docshield)
STATICCHECK := $(CACHE)/bin/staticcheck-$(STATICCHECK_VERSION)

.PHONY: build tools modules test test-busy test-hog dev up lint bench clean

build:
	go build -trimpath -ldflags "-s -w -X $(MODULE)/internal/version.Version=$(VERSION)" -o bin/worker ./cmd/worker

tools:
	scripts/install-deps.sh
	go build -C tools/devstack -o $(CURDIR)/$(DEVSTACK) .
	$(DEVSTACK) install

# Every module the tests need, in the module cache: `go test` builds inside
# the stack's namespace, where the module proxy is unreachable.
modules:
	go mod download

# Each go test run is recorded by `devstack gotest`, which prints it like
# plain go test (failing tests' output only); `devstack summary` then ends
# the log with the verdict and the counts.
#
# Time (issue 12): go vet runs beside the devstack module's tests, after
# the main run (beside the main run, the extra load split a callee's tone
# in a recording test), test binaries are linked without DWARF
# (-ldflags=-w: a third of the link time; stack traces and race reports
# use the symbol table, which stays), and a race-built binary exits at
# once instead of sleeping a second to let other threads report (GORACE
# atexit_sleep_ms, once per test binary).
GOTESTFLAGS := -json -race -count=1 -ldflags=-w
export GORACE := atexit_sleep_ms=0 $(GORACE)

test: tools build modules
	@rm -rf $(TESTOUT) && mkdir -p $(TESTOUT)
	@rc=0; \
	echo "==> go test ./... (against devstack)"; \
	$(DEVSTACK) gotest --record $(TESTOUT)/worker.json -- \
		env WORKER_BIN=$(CURDIR)/bin/worker $(DEVSTACK) exec -- go test $(GOTESTFLAGS) -timeout 20m ./... || rc=1; \
	( { go vet ./... && go vet -C tools/devstack ./...; } > $(TESTOUT)/vet.out 2>&1; \
	  echo $$? > $(TESTOUT)/vet.rc ) & vet=$$!; \
	trap 'kill $$vet 2>/dev/null || true' EXIT; \
	echo "==> go test (tools/devstack)"; \
	$(DEVSTACK) gotest --record $(TESTOUT)/devstack.json -- \
		go test -C tools/devstack $(GOTESTFLAGS) -timeout 10m ./... || rc=1; \
	wait $$vet; \
	echo "==> go vet, run beside it"; \
	cat $(TESTOUT)/vet.out; \
	vet=ok; [ "$$(cat $(TESTOUT)/vet.rc)" = 0 ] || { vet=fail; rc=1; }; \
	$(DEVSTACK) summary --step "go vet=$$vet" $(TESTOUT)/worker.json $(TESTOUT)/devstack.json \
		| tee $(TESTOUT)/summary.txt || rc=1; \
	exit $$rc

# The suite must hold on a busy machine (CI shares its two cores): run it
# with two busy loops per core competing for the CPU at the same priority.
test-busy:
	@n=$$(( $$(nproc) * 2 )); echo "==> test-busy: $$n CPU hogs on $$(nproc) cores"; \
	hogs=""; for _ in $$(seq $$n); do bash -c 'while :; do :; done' & hogs="$$hogs $$!"; done; \
	trap 'kill $$hogs 2>/dev/null' EXIT; \
	$(MAKE) test

# The CPU hog admission test (cmd/worker TestCPUHogDefersNewCallsWhileLiveCallsHold):
# opt-in, since it saturates every core on purpose, which would starve the
# packages `make test` runs beside it.
test-hog: tools build modules
	$(DEVSTACK) exec -- env DOCSHIELD_HOG_TEST=1 WORKER_BIN=$(CURDIR)/bin/worker \
		go test -count=1 -v -run '^TestCPUHogDefersNewCallsWhileLiveCallsHold$$' ./cmd/worker/

dev: tools build
	go build -o bin/openaisim ./cmd/openaisim
	go build -o bin/sipphone ./cmd/sipphone
	$(DEVSTACK) exec -- scripts/dev.sh

up: tools
	$(DEVSTACK) up --env-file .devstack.env

lint:
	@bad=$$(gofmt -l .); if [ -n "$$bad" ]; then echo "gofmt -l reports unformatted files:"; echo "$$bad"; exit 1; fi
	go vet ./...
	go vet -C tools/devstack ./...
	@if $(MAKE) -s $(STATICCHECK); then \
		echo "$(STATICCHECK) ./..."; $(STATICCHECK) ./...; \
		(cd tools/devstack && $(STATICCHECK) ./...); \
	else echo "lint: staticcheck could not be installed; skipped"; fi
	@if command -v npm >/dev/null && $(MAKE) -s $(DOCKERFILELINT); then \
		echo "dockerfilelint Dockerfile"; $(DOCKERFILELINT) Dockerfile; \
	else echo "lint: dockerfilelint could not be installed (needs npm); skipped"; fi

# No Docker engine runs in CI, so the Dockerfile is linted (dockerfilelint,
# from npm) and its build steps are run by cmd/worker's TestDockerfile.
DOCKERFILELINT_VERSION := 1.8.0
DOCKERFILELINT := $(CACHE)/npm/dockerfilelint-$(DOCKERFILELINT_VERSION)/node_modules/.bin/dockerfilelint

$(DOCKERFILELINT):
	@mkdir -p $(CACHE)/npm/dockerfilelint-$(DOCKERFILELINT_VERSION)
	cd $(CACHE)/npm/dockerfilelint-$(DOCKERFILELINT_VERSION) && npm install --silent --no-audit --no-fund dockerfilelint@$(DOCKERFILELINT_VERSION)

# Cached by version, so lint installs it once.
$(STATICCHECK):
	@mkdir -p $(CACHE)/bin/.staticcheck
	GOBIN=$(CACHE)/bin/.staticcheck go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(CACHE)/bin/.staticcheck/staticcheck $@

# BenchmarkSIPLeg and BenchmarkCallCapacity run on their own, after the
# others: one op is a level of concurrent calls. SIPLeg (SIP_LEG_LEVELS,
# default 1,10; about 2 minutes) puts the worker beside an echo over
# LiveKit's SIP service, as the SIP phone hears them; CallCapacity
# (CALL_CAPACITY_LEVELS, default 1,10,20,30,40; about 6 minutes) prints the
# dyno's size and each level's latencies. CallCapacity runs as production
# does, GOMAXPROCS=1, and on FerretDB over PostgreSQL: FerretDB's SQLite
# backend reads the whole calls collection for every fenced update (it hands
# SQLite only a filter that is exactly {_id}), which at 40 calls took half a
# core from the machine the worker is measured on.
bench: tools modules
	$(DEVSTACK) exec -- go test -run '^$$' -bench . -skip 'CallCapacity|SIPLeg' -benchmem ./...
	$(DEVSTACK) exec -- go test -run '^$$' -bench SIPLeg -benchtime 1x -timeout 20m ./internal/call/
	GOMAXPROCS=$${GOMAXPROCS:-1} CALL_CAPACITY_LEVELS=$${CALL_CAPACITY_LEVELS:-1,10,20,30,40} \
		$(DEVSTACK) exec --mongo-backend postgresql -- go test -run '^$$' -bench CallCapacity -benchtime 1x -timeout 30m ./internal/call/

# TestFleetRun at full size: 4 worker processes (bin/worker) on one Redis
# and one MongoDB call 2,000 contacts in 3 campaigns through the callee
# simulator, one process is SIGKILLed mid-run and restarted; it prints
# throughput with 1 and 4 processes, the dial rate and each campaign's
# most live attempts. FerretDB stores on PostgreSQL here: on SQLite's one
# writer, four processes' dispatch rounds timed out. About 13 minutes on a
# quiet 2-core machine (docs/DEPLOY.md, "The fleet test").
.PHONY: fleet
fleet: tools build modules
	FLEETRUN=full WORKER_BIN=$(CURDIR)/bin/worker \
		$(DEVSTACK) exec --mongo-backend postgresql --without sip -- \
		go test -run '^TestFleetRun$$' -count=1 -v -timeout 45m ./cmd/worker/

clean:
	rm -rf bin tools/bin
