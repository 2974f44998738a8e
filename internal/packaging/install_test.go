package packaging

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	return root
}

// buildHazmon builds cmd/hazmon as make build does (static) into a temp dir.
func buildHazmon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hazmon")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/hazmon")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hazmon: %v\n%s", err, out)
	}
	return bin
}

// script runs a repo script with extra environment and returns its output
// and exit code.
func script(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", name), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
		return "", -1
	}
}

func mustInstall(t *testing.T, dest string, args ...string) string {
	t.Helper()
	out, code := script(t, []string{"DESTDIR=" + dest}, "install.sh", args...)
	if code != 0 {
		t.Fatalf("DESTDIR=%s install.sh %v: exit %d\n%s", dest, args, code, out)
	}
	return out
}

func wantMode(t *testing.T, path string, dir bool, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("want %s: %v", path, err)
	}
	if fi.IsDir() != dir || fi.Mode().Perm() != mode {
		t.Errorf("%s: dir=%v mode %#o, want dir=%v mode %#o", path, fi.IsDir(), fi.Mode().Perm(), dir, mode)
	}
}

func wantSame(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s differs from %s", got, want)
	}
}

func wantGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: still there after uninstall (err %v)", p, err)
		}
	}
}

func TestInstallDestdir(t *testing.T) {
	root := repoRoot(t)
	bin := buildHazmon(t)
	dest := t.TempDir()
	var (
		binDst  = filepath.Join(dest, "usr/local/bin/hazmon")
		etc     = filepath.Join(dest, "etc/hazmon")
		cfg     = filepath.Join(etc, "hazmon.yaml")
		state   = filepath.Join(dest, "var/lib/hazmon")
		unit    = filepath.Join(dest, "etc/systemd/system/hazmon.service")
		udev    = filepath.Join(dest, "etc/udev/rules.d/60-hazmon-gpio.rules")
		modules = filepath.Join(dest, "etc/modules-load.d/hazmon.conf")
	)

	out := mustInstall(t, dest, "--binary", bin)
	wantMode(t, binDst, false, 0o755)
	wantSame(t, binDst, bin)
	wantMode(t, etc, true, 0o750)
	wantMode(t, cfg, false, 0o640)
	wantSame(t, cfg, filepath.Join(root, "configs/example.yaml"))
	wantMode(t, state, true, 0o750)
	wantMode(t, unit, false, 0o644)
	wantSame(t, unit, filepath.Join(root, "scripts/hazmon.service"))
	wantMode(t, udev, false, 0o644)
	if b, _ := os.ReadFile(udev); !strings.Contains(string(b), `KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"`) {
		t.Errorf("udev rule:\n%s", b)
	}
	if b, _ := os.ReadFile(modules); !strings.Contains(string(b), "\nusbserial\ncdc_acm\n") {
		t.Errorf("modules-load file:\n%s", b)
	}
	// Nothing on the real system is touched under DESTDIR; the output says what was skipped.
	for _, want := range []string{"skipped: groupadd --system gpio", "useradd --system", "usermod -a -G dialout,gpio hazmon",
		"skipped: chown hazmon:hazmon " + state, "skipped: systemctl daemon-reload; systemctl enable hazmon.service",
		"installed " + cfg} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	// The installed binary runs and accepts the installed config.
	if o, err := exec.Command(binDst, "validate", "--config", cfg).CombinedOutput(); err != nil || !strings.Contains(string(o), "valid") {
		t.Errorf("installed hazmon validate --config installed hazmon.yaml: %v\n%s", err, o)
	}

	// A second install (an upgrade) replaces the binary but never the site's config.
	edited := []byte("# site config edited by the technician\n")
	if err := os.WriteFile(cfg, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "hazmon")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newer, append(b, "upgrade"...), 0o755); err != nil {
		t.Fatal(err)
	}
	out = mustInstall(t, dest, "--binary", newer, "--config", filepath.Join(root, "configs/coal-face.yaml"))
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
		t.Errorf("second install overwrote %s:\n%s", cfg, got)
	}
	if !strings.Contains(out, "kept existing "+cfg) {
		t.Errorf("second install does not say it kept the config:\n%s", out)
	}
	wantSame(t, binDst, newer)
	if _, err := os.Stat(binDst + ".new"); err == nil {
		t.Errorf("%s.new left behind", binDst)
	}

	// Uninstall keeps the config and the buffer (readings not yet sent).
	buffer := filepath.Join(state, "buffer.db")
	if err := os.WriteFile(buffer, []byte("unsent readings"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, code := script(t, []string{"DESTDIR=" + dest}, "install.sh", "--uninstall"); code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, o)
	}
	wantGone(t, binDst, unit, udev, modules)
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
		t.Errorf("uninstall changed %s", cfg)
	}
	if got, _ := os.ReadFile(buffer); string(got) != "unsent readings" {
		t.Errorf("uninstall lost the buffer: %q", got)
	}

	// --purge removes them too.
	if o, code := script(t, []string{"DESTDIR=" + dest}, "install.sh", "--uninstall", "--purge"); code != 0 {
		t.Fatalf("uninstall --purge: exit %d\n%s", code, o)
	}
	wantGone(t, etc, state)
}

func TestInstallArguments(t *testing.T) {
	dest := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"purge_without_uninstall", []string{"--purge"}, 2, "--purge goes with --uninstall"},
		{"unknown_flag", []string{"--frobnicate"}, 2, "unknown argument --frobnicate"},
		{"missing_binary", []string{"--binary", filepath.Join(dest, "nope")}, 1, "no hazmon binary at"},
		{"missing_config", []string{"--binary", "/bin/true", "--config", filepath.Join(dest, "nope.yaml")}, 1, "no config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := script(t, []string{"DESTDIR=" + dest}, "install.sh", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.say) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.say, out)
			}
		})
	}
	// A failed install leaves nothing behind.
	if _, err := os.Stat(filepath.Join(dest, "usr/local/bin/hazmon")); err == nil {
		t.Error("a failed install put a binary in place")
	}
}

// TestInstallLive runs install.sh without DESTDIR, as on a board: useradd,
// groupadd, usermod and chown for real. It runs in a private mount
// namespace with /etc, /usr and /var overlaid on temp dirs, so the machine
// running the test is not changed. Needs root and unshare.
func TestInstallLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare -m, overlay mounts)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found")
	}
	root := repoRoot(t)
	bin := buildHazmon(t)
	tmp := t.TempDir()
	probe := exec.Command("unshare", "-m", "true")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("no private mount namespace here: %v %s", err, out)
	}
	sh := `set -e
mount --make-rprivate /
for d in etc usr var; do
	mkdir -p "$T/$d/up" "$T/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/$d/up,workdir=$T/$d/work" "/$d"
done
echo "== install"
"$R/scripts/install.sh" --binary "$B"
echo "== groups $(id -nG hazmon)"
echo "== shell $(getent passwd hazmon | cut -d: -f7)"
stat -c '== stat %U:%G %a %n' /etc/hazmon /etc/hazmon/hazmon.yaml /var/lib/hazmon /usr/local/bin/hazmon
echo "== again"
"$R/scripts/install.sh" --binary "$B"
echo "== uninstall"
"$R/scripts/install.sh" --uninstall
id hazmon >/dev/null && echo "== user kept"
test -d /var/lib/hazmon && echo "== state kept"
"$R/scripts/install.sh" --uninstall --purge
id hazmon >/dev/null 2>&1 || echo "== user removed"
test -e /var/lib/hazmon || echo "== state removed"
`
	cmd := exec.Command("unshare", "-m", "bash", "-c", sh)
	cmd.Env = append(os.Environ(), "T="+tmp, "R="+root, "B="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "mount") && !strings.Contains(string(out), "== install") {
			t.Skipf("overlay mounts not allowed here: %v\n%s", err, out)
		}
		t.Fatalf("live install: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"created system user hazmon",
		"== shell /usr/sbin/nologin",
		"== stat root:hazmon 750 /etc/hazmon\n",
		"== stat root:hazmon 640 /etc/hazmon/hazmon.yaml\n",
		"== stat hazmon:hazmon 750 /var/lib/hazmon\n",
		"== stat root:root 755 /usr/local/bin/hazmon\n",
		"kept existing /etc/hazmon/hazmon.yaml",
		"== user kept", "== state kept", "== user removed", "== state removed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("live install output lacks %q:\n%s", want, s)
		}
	}
	groups := ""
	for _, l := range strings.Split(s, "\n") {
		if g, ok := strings.CutPrefix(l, "== groups "); ok {
			groups = " " + g + " "
		}
	}
	for _, g := range []string{"hazmon", "dialout", "gpio"} {
		if !strings.Contains(groups, " "+g+" ") {
			t.Errorf("user hazmon groups %q lack %s", groups, g)
		}
	}
	if strings.Count(s, "created system user hazmon") != 1 {
		t.Errorf("second install created the user again:\n%s", s)
	}
}
