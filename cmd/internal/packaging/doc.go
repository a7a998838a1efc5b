// Package packaging holds what `make package` builds the kapacitor-squadcast
// .deb and .rpm from, and the tests that check them.
//
//   - nfpm.yaml: nfpm's description of both packages (both formats, both
//     architectures), with the maintainer scripts in scripts/ (one script a
//     phase serves deb and rpm: they tell the two apart by their arguments),
//     the packaged config kapacitor-squadcast.toml (a conffile) and the
//     lintian overrides, each with its reason;
//   - build: stages the static binaries, the man pages (the hidden
//     `kapacitor-squadcast man DIR`, from each command's --help), the unit
//     as installed (unit.awk rewrites examples/kapacitor-squadcast.service)
//     and the documentation, then runs nfpm, the version go.mod pins;
//   - version: the version make stamps into the binary and the packages,
//     from git describe.
//
// The tests build the packages themselves, check them with dpkg-deb, rpm
// and lintian, install, upgrade, remove and purge the .deb with dpkg, and
// install, upgrade and erase the .rpm with rpm, each in a throwaway root
// (an overlay of this machine's root in a private mount namespace, so the
// conffile logic and the scripts really run).
// They need root and Debian's dpkg, rpm, lintian and systemd tools
// (.ci/install-package-tools): without them they skip, unless
// KAPACITOR_SQUADCAST_PACKAGE=required (make test sets it), which turns
// the skip into a failure.
package packaging
