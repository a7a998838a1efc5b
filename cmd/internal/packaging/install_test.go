package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// throwawayRoot is a copy-on-write copy of this machine's root: an overlay
// mount (upper layer on a tmpfs) in a mount namespace of its own, held by
// a sleeping process. Whatever dpkg and the maintainer scripts do in it
// is gone when the process ends; the host's root is never written.
type throwawayRoot struct {
	t     *testing.T
	holds *exec.Cmd // unshare ... sleep: owns the namespace
	dir   string    // the merged root, as seen inside the namespace
}

func newThrowawayRoot(t *testing.T) *throwawayRoot {
	t.Helper()
	holds := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "3600")
	require.NoError(t, holds.Start())
	r := &throwawayRoot{t: t, holds: holds, dir: filepath.Join(t.TempDir(), "root")}
	t.Cleanup(func() {
		holds.Process.Kill()
		holds.Wait()
	})
	base := filepath.Dir(r.dir)
	// nsenter before unshare has made the namespace would enter this
	// process's own, and mount on the host: wait for the namespace first.
	own, err := os.Readlink("/proc/self/ns/mnt")
	require.NoError(t, err)
	for i := 0; ; i++ {
		ns, err := os.Readlink("/proc/" + strconv.Itoa(holds.Process.Pid) + "/ns/mnt")
		if err == nil && ns != own {
			break
		}
		require.Less(t, i, 600, "unshare made no mount namespace")
		time.Sleep(10 * time.Millisecond)
	}
	r.mustNS("mount", "-t", "tmpfs", "tmpfs", base)
	r.mustNS("mkdir", "-p", base+"/upper", base+"/work", r.dir)
	r.mustNS("mount", "-t", "overlay", "overlay", "-o", "lowerdir=/,upperdir="+base+"/upper,workdir="+base+"/work", r.dir)
	r.mustNS("mount", "--bind", "/proc", r.dir+"/proc")
	r.mustNS("mount", "--bind", "/dev", r.dir+"/dev")
	// A clean /run: no host daemon state (the scripts look for
	// /run/systemd/system, which a chroot has no business seeing).
	r.mustNS("mount", "-t", "tmpfs", "tmpfs", r.dir+"/run")
	return r
}

// ns runs a command in the namespace (host's root, the namespace's mounts).
func (r *throwawayRoot) ns(args ...string) (string, error) {
	return runIn(".", "nsenter", append([]string{"--target", strconv.Itoa(r.holds.Process.Pid), "--mount", "--"}, args...)...)
}

func (r *throwawayRoot) mustNS(args ...string) string {
	r.t.Helper()
	out, err := r.ns(args...)
	require.NoError(r.t, err, "%v:\n%s", args, out)
	return out
}

// run runs a command chrooted in the throwaway root.
func (r *throwawayRoot) run(args ...string) (string, error) {
	return r.ns(append([]string{"chroot", r.dir, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, args...)...)
}

func (r *throwawayRoot) must(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	require.NoError(r.t, err, "%v:\n%s", args, out)
	return out
}

// stat returns "MODE OWNER GROUP" of a path in the root, "" when missing.
func (r *throwawayRoot) stat(path string) string {
	out, err := r.run("stat", "-c", "%a %U %G", path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// copyIn copies a host file to /tmp/NAME in the root.
func (r *throwawayRoot) copyIn(src, name string) string {
	r.t.Helper()
	r.mustNS("cp", src, r.dir+"/tmp/"+name)
	return "/tmp/" + name
}

// TestInstallUpgradeRemovePurge installs the .deb of lowerVersion with
// dpkg in a throwaway root, checks where the files land (as docs/install.md
// says) and the unit with systemd-analyze verify, changes the config and
// writes data, upgrades to the current version (the changed config and the
// data stay, the version agrees with the binary's), then removes (config
// and data stay) and purges (they go). At each step it checks what the
// scripts asked of systemctl (a recorder: no systemd runs here).
func TestInstallUpgradeRemovePurge(t *testing.T) {
	needTools(t, true, "unshare", "nsenter", "chroot", "mount", "dpkg", "systemd-analyze", "systemd-sysusers", "man")
	version := packages(t)
	r := newThrowawayRoot(t)
	oldDeb := r.copyIn(pkgPath(built.lower, lowerVersion, "amd64", "deb"), "old.deb")
	newDeb := r.copyIn(pkgPath(built.dir, version, "amd64", "deb"), "new.deb")
	r.recordSystemctl()

	out := r.must("dpkg", "-i", oldDeb)
	assert.Contains(t, out, "kapacitor-squadcast is installed but not started: it has no webhook URL yet.")
	assert.Contains(t, out, "sudo systemctl enable --now kapacitor-squadcast")
	assert.Equal(t, []string{"daemon-reload"}, r.systemctlCalls(), "a first install starts nothing")
	checkInstalled(t, r, lowerVersion)
	checkUnit(t, r)

	// Before a URL is set, the packaged config fails on its url-file.
	out, err := r.run("kapacitor-squadcast", "check-config", "--config", "/etc/kapacitor-squadcast/kapacitor-squadcast.toml")
	assert.Error(t, err)
	assert.Contains(t, out, "url-file")
	const url = "https://api.squadcast.com/v1/incidents/kapacitor/0123456789abcdef"
	r.must("sh", "-c", `printf '%s\n' '`+url+`' | install -m 0600 -o kapacitor-squadcast -g kapacitor-squadcast /dev/stdin /etc/kapacitor-squadcast/default.url`)
	assert.Equal(t, "600 kapacitor-squadcast kapacitor-squadcast", r.stat("/etc/kapacitor-squadcast/default.url"))
	out = r.must("kapacitor-squadcast", "check-config", "--config", "/etc/kapacitor-squadcast/kapacitor-squadcast.toml")
	assert.Contains(t, out, "valid")
	assert.NotContains(t, out, "0123456789abcdef", "check-config never shows the key")

	// The operator's changes and the daemon's data.
	r.must("sh", "-c", `sed -i 's|^# rate-limit = "300/m"|rate-limit = "15/m"|; s|^  # rate-limit = "300/m"|  rate-limit = "15/m"|' /etc/kapacitor-squadcast/kapacitor-squadcast.toml`)
	changed := r.must("cat", "/etc/kapacitor-squadcast/kapacitor-squadcast.toml")
	require.Contains(t, changed, `  rate-limit = "15/m"`)
	r.must("sh", "-c", "echo outbox > /var/lib/kapacitor-squadcast/outbox.db")

	out = r.must("dpkg", "-i", newDeb)
	assert.NotContains(t, out, "installed but not started", "an upgrade is not a first install")
	assert.Equal(t, []string{"daemon-reload", "try-restart kapacitor-squadcast.service"}, r.systemctlCalls(),
		"an upgrade restarts the service if it was running, and only then")
	assert.Equal(t, version, r.must("dpkg-query", "-W", "-f", "${Version}", "kapacitor-squadcast"))
	checkInstalled(t, r, version)
	assert.Equal(t, changed, r.must("cat", "/etc/kapacitor-squadcast/kapacitor-squadcast.toml"), "the upgrade keeps the changed conffile")
	assert.Equal(t, "outbox\n", r.must("cat", "/var/lib/kapacitor-squadcast/outbox.db"), "the upgrade keeps the data")
	assert.Equal(t, url+"\n", r.must("cat", "/etc/kapacitor-squadcast/default.url"))

	r.must("dpkg", "--remove", "kapacitor-squadcast")
	assert.Equal(t, []string{"--no-reload disable --now kapacitor-squadcast.service", "daemon-reload"}, r.systemctlCalls())
	assert.Empty(t, r.stat("/usr/bin/kapacitor-squadcast"), "remove removes the binary")
	assert.Equal(t, changed, r.must("cat", "/etc/kapacitor-squadcast/kapacitor-squadcast.toml"), "remove leaves the config")
	assert.Equal(t, "outbox\n", r.must("cat", "/var/lib/kapacitor-squadcast/outbox.db"), "remove leaves the data")

	r.must("dpkg", "--purge", "kapacitor-squadcast")
	assert.Equal(t, []string{"daemon-reload"}, r.systemctlCalls())
	for _, gone := range []string{"/etc/kapacitor-squadcast", "/var/lib/kapacitor-squadcast"} {
		assert.Empty(t, r.stat(gone), "purge removes %s", gone)
	}
}

// recordSystemctl makes the root look booted with systemd
// (/run/systemd/system) and replaces its systemctl with a recorder of its
// arguments: no systemd runs here, and the scripts' calls are what is
// checked (what systemd then does is not).
func (r *throwawayRoot) recordSystemctl() {
	r.t.Helper()
	r.must("sh", "-c", `mkdir -p /run/systemd/system && printf '#!/bin/sh\necho "$*" >> /tmp/systemctl.log\n' > /usr/bin/systemctl && chmod 0755 /usr/bin/systemctl`)
}

// systemctlCalls returns the systemctl command lines recorded since the
// last call, one a command.
func (r *throwawayRoot) systemctlCalls() []string {
	r.t.Helper()
	out := strings.TrimSpace(r.must("sh", "-c", "cat /tmp/systemctl.log 2>/dev/null; rm -f /tmp/systemctl.log"))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// checkInstalled checks the installed files, users and directories.
func checkInstalled(t *testing.T, r *throwawayRoot, version string) {
	t.Helper()
	for path, want := range map[string]string{
		"/usr/bin/kapacitor-squadcast":                                      "755 root root",
		"/usr/lib/systemd/system/kapacitor-squadcast.service":               "644 root root",
		"/usr/lib/sysusers.d/kapacitor-squadcast.conf":                      "644 root root",
		"/usr/lib/tmpfiles.d/kapacitor-squadcast.conf":                      "644 root root",
		"/etc/kapacitor-squadcast":                                          "750 root kapacitor-squadcast",
		"/etc/kapacitor-squadcast/kapacitor-squadcast.toml":                 "640 root kapacitor-squadcast",
		"/var/lib/kapacitor-squadcast":                                      "700 kapacitor-squadcast kapacitor-squadcast",
		"/run/kapacitor-squadcast":                                          "750 kapacitor-squadcast kapacitor-squadcast",
		"/usr/share/man/man1/kapacitor-squadcast-serve.1.gz":                "644 root root",
		"/usr/share/doc/kapacitor-squadcast/examples/kapacitor.conf":        "644 root root",
		"/usr/share/doc/kapacitor-squadcast/tickscripts/cpu_squadcast.tick": "644 root root",
	} {
		assert.Equal(t, want, r.stat(path), "%s", path)
	}
	assert.Contains(t, r.must("getent", "group", "kapacitor-squadcast"), "kapacitor",
		"Kapacitor's user is in the daemon's group")
	assert.Regexp(t, `^kapacitor-squadcast:x:\d+:\d+:[^:]*:/var/lib/kapacitor-squadcast:/usr/sbin/nologin\n$`,
		r.must("getent", "passwd", "kapacitor-squadcast"))
	assert.True(t, strings.HasPrefix(r.must("kapacitor-squadcast", "version"), "kapacitor-squadcast "+version+" "),
		"the binary's version is the package's")
	assert.Contains(t, r.must("man", "-P", "cat", "kapacitor-squadcast-serve"), "--data-dir")
}

// checkUnit runs systemd-analyze verify on the unit as installed (in the
// root, where its ExecStart= binary exists), and on a copy whose ExecStart=
// names a missing binary, which it must refuse: the check can fail.
func checkUnit(t *testing.T, r *throwawayRoot) {
	t.Helper()
	const unit = "/usr/lib/systemd/system/kapacitor-squadcast.service"
	out, err := r.run("systemd-analyze", "verify", unit)
	assert.NoError(t, err, "systemd-analyze verify %s:\n%s", unit, out)
	assert.Contains(t, r.must("cat", unit),
		"\nExecStart=/usr/bin/kapacitor-squadcast serve --config /etc/kapacitor-squadcast/kapacitor-squadcast.toml\n")
	r.must("sh", "-c", "mkdir -p /tmp/bad && sed 's|^ExecStart=/usr/bin/|ExecStart=/usr/bin/missing-|' "+unit+" > /tmp/bad/kapacitor-squadcast.service")
	out, err = r.run("systemd-analyze", "verify", "/tmp/bad/kapacitor-squadcast.service")
	assert.Error(t, err, "systemd-analyze verify accepts a unit whose binary is missing:\n%s", out)
}
