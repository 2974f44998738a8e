package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unitDirectives parses a systemd unit into "Section.Key" → values in order.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, l)
			}
			m[section+"."+k] = append(m[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUnitDirectives pins the unit's contract with the agent and the board:
// notify + watchdog, the paths install.sh creates, the user, and hardening
// that still reaches serial ports and GPIO chips.
func TestUnitDirectives(t *testing.T) {
	m := unitDirectives(t, filepath.Join(repoRoot(t), "scripts/hazmon.service"))
	want := map[string][]string{
		"Service.Type":                    {"notify"},
		"Service.ExecStart":               {"/usr/local/bin/hazmon run --config /etc/hazmon/hazmon.yaml"},
		"Service.ExecReload":              {"/bin/kill -HUP $MAINPID"},
		"Service.WatchdogSec":             {"30s"},
		"Service.Restart":                 {"on-failure"},
		"Service.RestartSec":              {"2s"},
		"Service.User":                    {"hazmon"},
		"Service.Group":                   {"hazmon"},
		"Service.SupplementaryGroups":     {"dialout gpio"},
		"Service.RuntimeDirectory":        {"hazmon"},
		"Service.StateDirectory":          {"hazmon"},
		"Service.NoNewPrivileges":         {"yes"},
		"Service.ProtectSystem":           {"strict"},
		"Service.ReadWritePaths":          {"/var/lib/hazmon"},
		"Service.ProtectHome":             {"yes"},
		"Service.PrivateTmp":              {"yes"},
		"Service.DevicePolicy":            {"closed"},
		"Service.ProtectKernelTunables":   {"yes"},
		"Service.ProtectControlGroups":    {"yes"},
		"Service.RestrictAddressFamilies": {"AF_UNIX AF_INET AF_INET6"},
		"Service.LockPersonality":         {"yes"},
		"Service.MemoryDenyWriteExecute":  {"yes"},
		"Service.RestrictRealtime":        {"yes"},
		"Service.SystemCallArchitectures": {"native"},
		"Unit.StartLimitIntervalSec":      {"0"},
		"Install.WantedBy":                {"multi-user.target"},
	}
	for k, v := range want {
		if !slices.Equal(m[k], v) {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	for _, dev := range []string{"char-ttyUSB rw", "char-ttyACM rw", "char-ttyS rw", "char-ttyAMA rw", "char-gpiochip rw"} {
		if !slices.Contains(m["Service.DeviceAllow"], dev) {
			t.Errorf("DeviceAllow lacks %q (have %q)", dev, m["Service.DeviceAllow"])
		}
	}
	// PrivateDevices would hide /dev/ttyUSB* and /dev/gpiochip* altogether.
	if v := m["Service.PrivateDevices"]; len(v) > 0 && v[len(v)-1] == "yes" {
		t.Error("PrivateDevices=yes hides the serial ports and GPIO chips")
	}
}

// TestUnitVerifies runs scripts/verify-unit.sh on the unit, and on a copy
// with a misspelt key to show the check can fail.
func TestUnitVerifies(t *testing.T) {
	root := repoRoot(t)
	unit := filepath.Join(root, "scripts/hazmon.service")
	out, code := script(t, nil, "verify-unit.sh", unit)
	if strings.Contains(out, "SKIP") {
		t.Skip(strings.TrimSpace(out))
	}
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("verify-unit.sh hazmon.service: exit %d\n%s", code, out)
	}

	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, say string }{
		{"unknown_key", "LockPersonality=yes", "LockPersonalty=yes", "Unknown key 'LockPersonalty'"},
		{"bad_type", "Type=notify\n", "Type=notfy\n", "notfy"},
		{"bad_device_rights", "DeviceAllow=char-ttyS rw", "DeviceAllow=char-ttyS rwz", "rwz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(b), tc.from) {
				t.Fatalf("unit has no %q to break", tc.from)
			}
			bad := filepath.Join(t.TempDir(), "hazmon.service")
			if err := os.WriteFile(bad, []byte(strings.Replace(string(b), tc.from, tc.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := script(t, nil, "verify-unit.sh", bad)
			if code != 1 || !strings.Contains(out, tc.say) {
				t.Fatalf("broken unit: exit %d, want 1 naming %q:\n%s", code, tc.say, out)
			}
		})
	}
}
