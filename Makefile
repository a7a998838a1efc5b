# kapacitor-squadcast: build, test, lint and demo.
#
# Needs Go (the version in go.mod) and nothing else: `make test` and
# `make demo` first build InfluxData's kapacitord and kapacitor v1.5.9 from
# the Go module proxy into $(KAPACITOR_CACHE) (a few minutes, once; see
# .ci/build-kapacitord) and run the end-to-end tests against them.

GO ?= go
KAPACITOR_CACHE ?= $(HOME)/.cache/kapacitor-squadcast/kapacitor-1.5.9
KAPACITORD := $(KAPACITOR_CACHE)/bin/kapacitord

.PHONY: all build kapacitord test lint demo bench clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kapacitor-squadcast ./cmd/kapacitor-squadcast

kapacitord:
	./.ci/build-kapacitord "$(KAPACITOR_CACHE)"

# KAPACITOR_SQUADCAST_E2E=required makes the end-to-end tests fail, rather
# than skip, when kapacitord is missing.
test: kapacitord
	KAPACITORD="$(KAPACITORD)" KAPACITOR_SQUADCAST_E2E=required $(GO) test -race -count=1 ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

demo: kapacitord
	KAPACITORD="$(KAPACITORD)" $(GO) run ./cmd/internal/demo

# bench runs the Go benchmarks and the load tool (cmd/internal/udfload),
# and prints one table of figures and ratios against baselines measured in
# the same run. Not part of `make test`; takes a few minutes.
bench: kapacitord
	KAPACITORD="$(KAPACITORD)" $(GO) run ./cmd/internal/udfload $(BENCHFLAGS)

# clean removes what the build made in the work tree; the kapacitord cache
# in $(KAPACITOR_CACHE) stays (delete that folder to rebuild it).
clean:
	rm -rf bin
