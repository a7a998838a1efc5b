package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requiredEnv, set to "required" (make test does), turns a missing tool
// into a failure instead of a skip.
const requiredEnv = "KAPACITOR_SQUADCAST_PACKAGE"

// lowerVersion is the version of the package the upgrade test starts from:
// below any version cmd/internal/packaging/version prints.
const lowerVersion = "0.0.0~~upgradetest"

// repoRoot is the repository's root, from this package's folder.
const repoRoot = "../../.."

var arches = []string{"amd64", "arm64"}

// built is what the tests share: the packages, built once.
var built struct {
	once    sync.Once
	dir     string // DIST of the current version
	lower   string // DIST of lowerVersion (amd64 only)
	version string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{built.dir, built.lower} {
		if d != "" {
			os.RemoveAll(filepath.Dir(d))
		}
	}
	os.Exit(code)
}

// needTools skips (or, with KAPACITOR_SQUADCAST_PACKAGE=required, fails)
// the test unless every tool is in PATH and the test runs as root.
func needTools(t *testing.T, root bool, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if root && os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s (make package-tools installs the tools)", strings.Join(missing, ", "))
	if os.Getenv(requiredEnv) == "required" {
		t.Fatalf("%s, and %s=required", msg, requiredEnv)
	}
	t.Skip(msg)
}

// packages builds the packages of the current version for both arches and
// the amd64 .deb of lowerVersion (once), and returns the current version.
func packages(t *testing.T) string {
	t.Helper()
	needTools(t, false, "go", "git", "gzip", "awk")
	built.once.Do(func() {
		tmp, err := os.MkdirTemp("", "kapacitor-squadcast-package-")
		if err != nil {
			built.err = err
			return
		}
		built.dir, built.lower = filepath.Join(tmp, "dist"), filepath.Join(tmp, "lower")
		out, err := runIn(repoRoot, "./cmd/internal/packaging/version")
		if err != nil {
			built.err = fmt.Errorf("version: %v: %s", err, out)
			return
		}
		built.version = strings.TrimSpace(out)
		if out, err := runIn(repoRoot, "./cmd/internal/packaging/build", append([]string{built.dir, built.version}, arches...)...); err != nil {
			built.err = fmt.Errorf("build: %v\n%s", err, out)
			return
		}
		if out, err := runIn(repoRoot, "./cmd/internal/packaging/build", built.lower, lowerVersion, "amd64"); err != nil {
			built.err = fmt.Errorf("build %s: %v\n%s", lowerVersion, err, out)
		}
	})
	require.NoError(t, built.err)
	return built.version
}

// pkgPath is the path of a built package.
func pkgPath(dir, version, arch, format string) string {
	return filepath.Join(dir, fmt.Sprintf("kapacitor-squadcast_%s_%s.%s", version, arch, format))
}

// runIn runs a command in dir and returns its combined output.
func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs a command and fails the test on an error.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runIn(".", name, args...)
	require.NoError(t, err, "%s %v:\n%s", name, args, out)
	return out
}

// TestVersionIsADebianAndRPMVersion checks the version script's output.
func TestVersionIsADebianAndRPMVersion(t *testing.T) {
	needTools(t, false, "git")
	out, err := runIn(repoRoot, "./cmd/internal/packaging/version")
	require.NoError(t, err, out)
	v := strings.TrimSpace(out)
	assert.Regexp(t, `^[0-9][0-9A-Za-z.+~]*$`, v, "a version both dpkg and rpm take (no '-', which splits off a release)")
}

// TestDebContents checks both .debs with dpkg-deb: control fields, the
// maintainer scripts and conffiles, and every file's mode and owner.
func TestDebContents(t *testing.T) {
	needTools(t, false, "dpkg-deb")
	version := packages(t)
	for _, arch := range arches {
		deb := pkgPath(built.dir, version, arch, "deb")
		info := must(t, "dpkg-deb", "--info", deb)
		for _, want := range []string{"Package: kapacitor-squadcast", "Version: " + version + "\n", "Architecture: " + arch,
			" conffiles", " preinst", " postinst", " prerm", " postrm"} {
			assert.Contains(t, info, want, "%s: dpkg-deb --info", arch)
		}
		assert.Equal(t, "/etc/kapacitor-squadcast/kapacitor-squadcast.toml\n", must(t, "dpkg-deb", "--info", deb, "conffiles"))
		contents := must(t, "dpkg-deb", "--contents", deb)
		for _, want := range expectedFiles {
			assert.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(want.mode+" "+want.owner)+` +\d+ \S+ \S+ \.`+regexp.QuoteMeta(want.path)+`$`),
				contents, "%s: dpkg-deb --contents: %s", arch, want.path)
		}
	}
}

// expectedFile is a file the packages install: its path, mode and owner
// as dpkg-deb --contents shows them.
type expectedFile struct{ path, mode, owner string }

var expectedFiles = []expectedFile{
	{"/usr/bin/kapacitor-squadcast", "-rwxr-xr-x", "root/root"},
	{"/usr/lib/systemd/system/kapacitor-squadcast.service", "-rw-r--r--", "root/root"},
	{"/usr/lib/sysusers.d/kapacitor-squadcast.conf", "-rw-r--r--", "root/root"},
	{"/usr/lib/tmpfiles.d/kapacitor-squadcast.conf", "-rw-r--r--", "root/root"},
	{"/etc/kapacitor-squadcast/", "drwxr-x---", "root/kapacitor-squadcast"},
	{"/etc/kapacitor-squadcast/kapacitor-squadcast.toml", "-rw-r-----", "root/kapacitor-squadcast"},
	{"/usr/share/man/man1/kapacitor-squadcast.1.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/man/man1/kapacitor-squadcast-serve.1.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/man/man1/kapacitor-squadcast-outbox.1.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/copyright", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/changelog.gz", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/docs/install.md", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/examples/kapacitor.conf", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/tickscripts/cpu_squadcast.tick", "-rw-r--r--", "root/root"},
	{"/usr/share/doc/kapacitor-squadcast/tickscripts/kapacitor_squadcast_health.tick", "-rw-r--r--", "root/root"},
	{"/usr/share/lintian/overrides/kapacitor-squadcast", "-rw-r--r--", "root/root"},
}

// TestRPMContents checks both .rpms with rpm: the version, every file's
// mode and owner, the config file (noreplace) and the four scriptlets.
func TestRPMContents(t *testing.T) {
	needTools(t, false, "rpm")
	version := packages(t)
	for _, arch := range arches {
		file := pkgPath(built.dir, version, arch, "rpm")
		rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
		assert.Equal(t, version+" 1 "+rpmArch, must(t, "rpm", "-qp", "--qf", "%{VERSION} %{RELEASE} %{ARCH}", file))
		list := must(t, "rpm", "-qlp", "--scripts", file)
		// rpm -qlv cuts owners to 8 characters: the modes and owners in full.
		files := must(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]", file)
		for _, want := range expectedFiles {
			path := strings.TrimSuffix(want.path, "/")
			if strings.Contains(path, "lintian") {
				assert.NotContains(t, list, path, "%s: lintian's overrides are in the .deb only", arch)
				continue
			}
			assert.Contains(t, list, path+"\n", "%s: rpm -qlp", arch)
			assert.Contains(t, files, want.mode+" "+strings.Replace(want.owner, "/", " ", 1)+" "+path+"\n", "%s: rpm file modes and owners", arch)
		}
		for _, want := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
			"systemd-sysusers --replace=/usr/lib/sysusers.d/kapacitor-squadcast.conf", "systemctl try-restart kapacitor-squadcast.service"} {
			assert.Contains(t, list, want, "%s: rpm --scripts", arch)
		}
		flags := must(t, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", file)
		assert.Contains(t, flags, "cn /etc/kapacitor-squadcast/kapacitor-squadcast.toml\n", "%s: %%config(noreplace)", arch)
	}
}

// TestLintian runs lintian on both .debs: no error and no warning but
// those the shipped overrides explain.
func TestLintian(t *testing.T) {
	needTools(t, false, "lintian")
	version := packages(t)
	for _, arch := range arches {
		out, err := runIn(".", "lintian", "--fail-on", "error,warning", pkgPath(built.dir, version, arch, "deb"))
		assert.NoError(t, err, "%s: lintian:\n%s", arch, out)
		assert.NotRegexp(t, `(?m)^[EW]: `, out, "%s: lintian", arch)
	}
}

// TestPreinstCreatesTheSysusersEntries checks that the users preinst
// creates are those of the sysusers.d file the package ships.
func TestPreinstCreatesTheSysusersEntries(t *testing.T) {
	script, err := os.ReadFile("scripts/preinstall.sh")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?s)<<'SYSUSERS'\n(.*?)SYSUSERS\n`).FindSubmatch(script)
	require.NotNil(t, m, "no sysusers here-document in preinstall.sh")
	conf, err := os.ReadFile(filepath.Join(repoRoot, "examples/kapacitor-squadcast.sysusers"))
	require.NoError(t, err)
	var lines []string
	for _, l := range strings.Split(string(conf), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	assert.Equal(t, strings.Join(lines, "\n")+"\n", string(m[1]))
}
