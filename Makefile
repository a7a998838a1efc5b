# kapacitor-squadcast: build, test, lint, demo, install and release.
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

.PHONY: all build kapacitord influxd test lint demo fuzz bench clean install install-systemd release package package-tools image-context image image-check

all: build

# VERSION, stamped into the binary and the packages alike, is a valid Debian
# and RPM version derived from git describe (cmd/internal/packaging/version):
# 1.2.3 on tag v1.2.3, 0.0.0~gitN.HASH before any tag.
VERSION ?= $(shell ./cmd/internal/packaging/version 2>/dev/null || echo 0.0.0~dev)
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kapacitor-squadcast ./cmd/kapacitor-squadcast

kapacitord:
	./.ci/build-kapacitord "$(KAPACITOR_CACHE)"

influxd:
	./.ci/install-influxd "$(INFLUXD_CACHE)"

# KAPACITOR_SQUADCAST_E2E=required makes the end-to-end tests fail, rather
# than skip, when kapacitord or influxd is missing;
# KAPACITOR_SQUADCAST_PACKAGE=required the package tests (cmd/internal/packaging:
# they build the .deb and .rpm, and install them in a throwaway root) when a
# tool or root is missing.
test: lint kapacitord influxd package-tools
	KAPACITORD="$(KAPACITORD)" INFLUXD="$(INFLUXD)" KAPACITOR_SQUADCAST_E2E=required KAPACITOR_SQUADCAST_PACKAGE=required \
		$(GO) test -race -count=1 ./...

# lint also vets the code as built for macOS, so that no Linux-only call
# slips into what the darwin binaries (make release) compile.
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...

# fuzz runs each fuzz target for FUZZTIME (go test -fuzz takes one target
# of one package at a time), starting from its seed corpus in the package's
# testdata/fuzz/<Name>/. A failing input is saved there and fails `make test`.
FUZZTIME ?= 10s
FUZZ_TARGETS := udf:FuzzParseOptions squadcast:FuzzIncidentOptions udf:FuzzExpr udf:FuzzTemplate udf:FuzzConn udf:FuzzPointDecoder udf/relay:FuzzParseAlert squadcast:FuzzRender cmd/kapacitor-squadcast:FuzzDoctorTickPosts udf:FuzzResolveGone

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name (./$$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$$pkg/; \
	done

demo: kapacitord
	KAPACITORD="$(KAPACITORD)" $(GO) run ./cmd/internal/demo

# bench runs the Go benchmarks and the load tool (cmd/internal/udfload),
# and prints one table of figures and ratios against baselines measured in
# the same run. Not part of `make test`; takes a few minutes.
bench: kapacitord
	KAPACITORD="$(KAPACITORD)" $(GO) run ./cmd/internal/udfload $(BENCHFLAGS)

# package builds dist/kapacitor-squadcast_$(VERSION)_ARCH.deb and .rpm for
# each of PACKAGE_ARCHES with nfpm (the version go.mod pins, run from the
# module cache), from cmd/internal/packaging/nfpm.yaml. See docs/install.md.
PACKAGE_ARCHES ?= amd64 arm64

package:
	./cmd/internal/packaging/build dist "$(VERSION)" $(PACKAGE_ARCHES)

# package-tools installs, with apt-get, the Debian packages the package
# tests need (dpkg-dev tools, rpm, lintian, systemd, man-db, util-linux)
# when they are missing; see .ci/install-package-tools.
package-tools:
	./.ci/install-package-tools

# image-context puts in dist/container what examples/Dockerfile copies: the
# static binary for IMAGE_ARCH, this machine's CA bundle, the two empty
# directories and the Dockerfile. image builds it with IMAGE_TOOL (podman,
# or docker), pulling nothing: the image is FROM scratch.
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TOOL ?= podman
IMAGE ?= kapacitor-squadcast
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

image-context:
	@test -s "$(CA_BUNDLE)" || { echo "image-context: no CA bundle at $(CA_BUNDLE) (apt-get install ca-certificates, or CA_BUNDLE=...)"; exit 1; }
	rm -rf dist/container
	mkdir -p dist/container/skeleton/run dist/container/skeleton/var/lib \
		dist/container/volumes/run/kapacitor-squadcast dist/container/volumes/var/lib/kapacitor-squadcast
	chmod 0750 dist/container/volumes/run/kapacitor-squadcast
	chmod 0700 dist/container/volumes/var/lib/kapacitor-squadcast
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" \
		-o dist/container/kapacitor-squadcast ./cmd/kapacitor-squadcast
	cp "$(CA_BUNDLE)" dist/container/ca-certificates.crt
	cp examples/Dockerfile dist/container/Dockerfile

image: image-context
	$(IMAGE_TOOL) build --build-arg VERSION="$(VERSION)" -t $(IMAGE) dist/container

# image-check builds the image and runs it (version, then serve with a
# mounted socket directory); where podman cannot run containers it checks
# the image's file system instead, and says so. Not part of make test.
image-check: image
	./.ci/check-image $(IMAGE) "$(VERSION)"

# clean removes what the build made in the work tree; the kapacitord cache
# in $(KAPACITOR_CACHE) and the influxd one in $(INFLUXD_CACHE) stay (delete
# those folders to rebuild them).
clean:
	rm -rf bin dist

# install puts the binary in $(DESTDIR)$(BINDIR), and the examples and
# TICKscripts in $(DESTDIR)$(SHAREDIR) (the systemd unit there runs
# $(BINDIR)/kapacitor-squadcast). DESTDIR is for staging a package. It
# builds bin/kapacitor-squadcast only when it is missing, so that
# `make build && sudo make install` needs no Go as root.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SHAREDIR ?= $(PREFIX)/share/kapacitor-squadcast
INSTALL ?= install

bin/kapacitor-squadcast:
	$(MAKE) build

install: bin/kapacitor-squadcast
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(SHAREDIR)/examples" "$(DESTDIR)$(SHAREDIR)/tickscripts"
	$(INSTALL) -m 0755 bin/kapacitor-squadcast "$(DESTDIR)$(BINDIR)/kapacitor-squadcast"
	$(INSTALL) -m 0644 examples/kapacitor.conf examples/kapacitor-relay.conf examples/kapacitor-squadcast.plist examples/telegraf.conf examples/kapacitor-squadcast.env examples/kapacitor-squadcast.sysusers \
		examples/kapacitor-squadcast.toml examples/Dockerfile examples/docker-compose.yml "$(DESTDIR)$(SHAREDIR)/examples/"
	sed 's|/usr/local/bin/kapacitor-squadcast|$(BINDIR)/kapacitor-squadcast|' examples/kapacitor-squadcast.service \
		> "$(DESTDIR)$(SHAREDIR)/examples/kapacitor-squadcast.service"
	chmod 0644 "$(DESTDIR)$(SHAREDIR)/examples/kapacitor-squadcast.service"
	$(INSTALL) -m 0644 tickscripts/*_squadcast.tick tickscripts/kapacitor_squadcast_health.tick "$(DESTDIR)$(SHAREDIR)/tickscripts/"

# install-systemd installs the unit (running $(BINDIR)/kapacitor-squadcast)
# and the sysusers.d file that creates its user; then see the unit's header:
# systemd-sysusers, the environment file, systemctl enable --now.
SYSTEMDUNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d

install-systemd:
	$(INSTALL) -d "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)"
	sed 's|/usr/local/bin/kapacitor-squadcast|$(BINDIR)/kapacitor-squadcast|' examples/kapacitor-squadcast.service \
		> "$(DESTDIR)$(SYSTEMDUNITDIR)/kapacitor-squadcast.service"
	chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/kapacitor-squadcast.service"
	$(INSTALL) -m 0644 examples/kapacitor-squadcast.sysusers "$(DESTDIR)$(SYSUSERSDIR)/kapacitor-squadcast.conf"

# release cross-builds static binaries (CGO_ENABLED=0, -trimpath, version
# stamped) for $(PLATFORMS) into dist/, named
# kapacitor-squadcast-VERSION-OS-ARCH, and writes dist/SHA256SUMS
# (check with: cd dist && sha256sum -c SHA256SUMS).
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
SHA256SUM ?= $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo shasum -a 256)

release:
	rm -rf dist
	mkdir -p dist
	set -e; for platform in $(PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		echo "building dist/kapacitor-squadcast-$(VERSION)-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" \
			-o "dist/kapacitor-squadcast-$(VERSION)-$$os-$$arch" ./cmd/kapacitor-squadcast; \
	done
	cd dist && $(SHA256SUM) kapacitor-squadcast-* > SHA256SUMS
	cat dist/SHA256SUMS
