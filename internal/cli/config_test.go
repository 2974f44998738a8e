package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/configs"
	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/store"
)

// The binary alone gives a technician a config to start from: each example
// is the file of configs/, and it validates.
func TestConfigExample_PrintsTheFilesOfConfigsAndTheyValidate(t *testing.T) {
	for _, e := range configs.Examples {
		args := []string{"config", "example"}
		if e.Name != "" {
			args = append(args, e.Name)
		}
		code, out, errs := hz(t, "", args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errs)
			continue
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "configs", e.File))
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("%v does not print configs/%s", args, e.File)
		}
		if !strings.Contains(out, "CHANGE") || !strings.HasPrefix(out, "# ") {
			t.Errorf("%v: not a commented config", args)
		}
		p := filepath.Join(t.TempDir(), "hazmon.yaml")
		if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out, errs := hz(t, "", "validate", "-c", p); code != 0 || strings.Contains(out, "warning:") {
			t.Errorf("%v does not validate cleanly: exit %d\n%s%s", args, code, out, errs)
		}
	}
	code, _, errs := hz(t, "", "config", "example", "open-pit")
	if code != 1 || !strings.Contains(errs, `no example "open-pit": use one of coal-face, tailings-pond, tank-farm`) {
		t.Errorf("unknown example: exit %d, %q", code, errs)
	}
}

// config keys lists every key the loader knows, each with its type and
// meaning, in 80 columns; --json has the same list.
func TestConfigKeys_ListsEveryKeyIn80Columns(t *testing.T) {
	code, out, errs := hz(t, "", "config", "keys")
	if code != 0 {
		t.Fatalf("config keys: exit %d: %s", code, errs)
	}
	checkWidth(t, "config keys", out)
	heads := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			f := strings.Fields(l)
			heads[f[0]] = l
		}
	}
	keys := config.Keys()
	for _, k := range keys {
		h, ok := heads[k.Path]
		if !ok || !strings.Contains(h, k.Type) {
			t.Errorf("key %s (%s) not listed: %q", k.Path, k.Type, h)
		}
	}
	mustContain(t, "config keys", out, "sensors[].fault_after", "default 2", "mqtt.brokers", "required",
		"Polls in a row without a valid reply")
	if len(heads) != len(keys) {
		t.Errorf("%d keys printed, %d known", len(heads), len(keys))
	}

	code, out, _ = hz(t, "", "config", "keys", "--json")
	var got []config.Key
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got) != len(keys) || got[0].Meaning == "" {
		t.Errorf("config keys --json: exit %d, %d keys", code, len(got))
	}
}

// buffer export says what it exports: what waits to be sent. Its help
// example is one that exports the backlog (no --since), and an export
// that finds nothing says why.
func TestBufferExport_SaysItExportsWhatWaitsToBeSent(t *testing.T) {
	_, help, _ := hz(t, "", "buffer", "export", "--help")
	mustContain(t, "buffer export --help", help, "waiting in the buffer to be sent", "It is not a\nhistory")
	for _, l := range strings.Split(help, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "hazmon buffer export") && strings.Contains(l, "--since") {
			t.Errorf("help example exports only a recent window (nothing while the link is up): %q", l)
		}
	}

	// An empty buffer (everything was acknowledged): nothing, and why.
	file := filepath.Join(t.TempDir(), app.BufferFile)
	st, err := store.Open(file, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, _, errs := hz(t, "", "buffer", "export", "--file", file, "--format", "jsonl")
	if code != 0 || errs != "0 records exported: the buffer holds only what waits to be sent to the broker, and nothing is waiting to be sent: the broker has acknowledged everything\n" {
		t.Errorf("export of an empty buffer: exit %d, %q", code, errs)
	}

	// Records wait (no broker answers), none of them after --since.
	ag := startAgent(t, "tcp://127.0.0.1:1", "")
	waitFor(t, "readings buffered", func() bool {
		bs, err := control.NewClient(ag.socket).BufferStats(context.Background())
		return err == nil && bs.Pending > 0
	})
	since := time.Now().Add(time.Hour).Truncate(time.Second)
	code, _, errs = hz(t, "", "buffer", "export", "--socket", ag.socket, "--since", since.Format(time.RFC3339), "--format", "jsonl")
	if code != 0 || !strings.Contains(errs, "0 records exported: the buffer holds only what waits to be sent to the broker, and nothing waiting to be sent has a sample time at or after "+since.Format(time.RFC3339)) {
		t.Errorf("export since the future: exit %d, %q", code, errs)
	}
	code, _, errs = hz(t, "", "buffer", "export", "--socket", ag.socket, "--format", "jsonl")
	if code != 0 || !strings.Contains(errs, "record(s) exported (what waits to be sent to the broker)") {
		t.Errorf("export of the backlog: exit %d, %q", code, errs)
	}
}

// A mistyped subcommand of a group fails (exit 1, with a suggestion), as
// a mistyped command does: it printed the group's help and exited 0, so a
// script's typo looked like success. The group alone still shows its help.
func TestGroups_AnUnknownSubcommandFails(t *testing.T) {
	for _, c := range []struct {
		args []string
		hint string
	}{
		{[]string{"buffer", "stat"}, "did you mean stats"},
		{[]string{"config", "check"}, `unknown command "check"`},
		{[]string{"output", "tset", "x"}, `unknown command "tset"`},
	} {
		code, _, errs := hz(t, "", c.args...)
		if code == 0 || !strings.Contains(errs, c.hint) {
			t.Errorf("%v: exit %d, stderr %q; want a failure saying %q", c.args, code, errs, c.hint)
		}
	}
	if code, out, _ := hz(t, "", "config"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("config alone: exit %d, %q; want its help", code, out)
	}
}
