# kapacitor-squadcast: build, test, lint and demo.
#
# Needs Go (the version in go.mod) and nothing else: `make test` and
# `make demo` first build InfluxData's kapacitord and kapacitor v1.5.9 from
# the Go module proxy into $(KAPACITOR_CACHE) (a few minutes, once; see
# .ci/build-kapacitord) and run the end-to-end tests against them. `make
# test` also unpacks Debian's influxdb package into $(INFLUXD_CACHE) (once;
# see .ci/install-influxd) for the batch-task tests, which query InfluxDB.

GO ?= go
KAPACITOR_CACHE ?= $(HOME)/.cache/kapacitor-squadcast/kapacitor-1.5.9
KAPACITORD := $(KAPACITOR_CACHE)/bin/kapacitord
INFLUXD_CACHE ?= $(HOME)/.cache/kapacitor-squadcast/influxdb
INFLUXD := $(INFLUXD_CACHE)/bin/influxd

.PHONY: all build kapacitord influxd test lint demo fuzz clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kapacitor-squadcast ./cmd/kapacitor-squadcast

kapacitord:
	./.ci/build-kapacitord "$(KAPACITOR_CACHE)"

influxd:
	./.ci/install-influxd "$(INFLUXD_CACHE)"

# KAPACITOR_SQUADCAST_E2E=required makes the end-to-end tests fail, rather
# than skip, when kapacitord or influxd is missing.
test: kapacitord influxd
	KAPACITORD="$(KAPACITORD)" INFLUXD="$(INFLUXD)" KAPACITOR_SQUADCAST_E2E=required $(GO) test -race -count=1 ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# fuzz runs each fuzz target for FUZZTIME (go test -fuzz takes one target
# of one package at a time), starting from its seed corpus in the package's
# testdata/fuzz/<Name>/. A failing input is saved there and fails `make test`.
FUZZTIME ?= 10s
FUZZ_TARGETS := udf:FuzzParseOptions udf:FuzzExpr udf:FuzzTemplate udf:FuzzConn squadcast:FuzzRender

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name (./$$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$$pkg/; \
	done

demo: kapacitord
	KAPACITORD="$(KAPACITORD)" $(GO) run ./cmd/internal/demo

# clean removes what the build made in the work tree; the kapacitord cache
# in $(KAPACITOR_CACHE) and the influxd one in $(INFLUXD_CACHE) stay (delete
# those folders to rebuild them).
clean:
	rm -rf bin
