package packaging

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRPMInstallUpgradeErase does with rpm what
// TestInstallUpgradeRemovePurge does with dpkg, in a throwaway root (with
// Debian's rpm and an empty RPM database, so --nodeps): install the .rpm
// of lowerVersion, change the config and write data, upgrade to the
// current version (%config(noreplace) keeps the change, the data stays,
// %post sees $1 = 2 and restarts), then erase (the data stays, the changed
// config is kept as .rpmsave). The scripts' systemctl calls are checked at
// each step.
func TestRPMInstallUpgradeErase(t *testing.T) {
	needTools(t, true, "unshare", "nsenter", "chroot", "mount", "rpm", "systemd-sysusers")
	version := packages(t)
	r := newThrowawayRoot(t)
	oldRPM := r.copyIn(pkgPath(built.lower, lowerVersion, "amd64", "rpm"), "old.rpm")
	newRPM := r.copyIn(pkgPath(built.dir, version, "amd64", "rpm"), "new.rpm")
	r.recordSystemctl()
	const conf = "/etc/kapacitor-squadcast/kapacitor-squadcast.toml"

	out := r.must("rpm", "-i", "--nodeps", oldRPM)
	assert.Contains(t, out, "kapacitor-squadcast is installed but not started: it has no webhook URL yet.")
	assert.Equal(t, []string{"daemon-reload"}, r.systemctlCalls(), "a first install starts nothing")
	for path, want := range map[string]string{
		"/usr/bin/kapacitor-squadcast": "755 root root",
		"/etc/kapacitor-squadcast":     "750 root kapacitor-squadcast",
		conf:                           "640 root kapacitor-squadcast",
		"/var/lib/kapacitor-squadcast": "700 kapacitor-squadcast kapacitor-squadcast",
		"/run/kapacitor-squadcast":     "750 kapacitor-squadcast kapacitor-squadcast",
	} {
		assert.Equal(t, want, r.stat(path), "%s", path)
	}
	assert.Contains(t, r.must("getent", "group", "kapacitor-squadcast"), "kapacitor")

	r.must("sh", "-c", "echo '# changed by the operator' >> "+conf+" && echo outbox > /var/lib/kapacitor-squadcast/outbox.db")
	changed := r.must("cat", conf)

	out = r.must("rpm", "-U", "--nodeps", newRPM)
	assert.NotContains(t, out, "installed but not started", "an upgrade is not a first install")
	assert.Equal(t, []string{"daemon-reload", "try-restart kapacitor-squadcast.service"}, r.systemctlCalls(),
		"the upgrade restarts the service if it was running; the old package's %preun and %postun do nothing")
	assert.Equal(t, version+"-1", r.must("rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "kapacitor-squadcast"))
	assert.Contains(t, r.must("kapacitor-squadcast", "version"), "kapacitor-squadcast "+version+" ")
	assert.Equal(t, changed, r.must("cat", conf), "%config(noreplace) keeps the changed config")
	assert.Equal(t, "outbox\n", r.must("cat", "/var/lib/kapacitor-squadcast/outbox.db"))

	r.must("rpm", "-e", "--nodeps", "kapacitor-squadcast")
	assert.Equal(t, []string{"--no-reload disable --now kapacitor-squadcast.service", "daemon-reload"}, r.systemctlCalls())
	assert.Empty(t, r.stat("/usr/bin/kapacitor-squadcast"))
	assert.Equal(t, changed, r.must("cat", conf+".rpmsave"), "erase keeps the changed config as .rpmsave")
	assert.Equal(t, "outbox\n", r.must("cat", "/var/lib/kapacitor-squadcast/outbox.db"), "erase leaves the data")
}
