package control

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/store"
)

// A record that cannot be formed is in `buffer export --dead`, from the
// running store and from the file read directly, with its rec and reason.
func TestExportDead_ShowsUnformableRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	st, err := store.Open(path, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ts := time.UnixMilli(1_700_000_000_000)
	for _, d := range []string{`{"ok":1}`, "\x01not json", `{"ok":2}`} {
		if err := st.Append(ctx, store.Telemetry, ts, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	build := func(h store.Head, items []store.Item) ([]byte, error) {
		for _, it := range items {
			if !strings.HasPrefix(string(it.Data), "{") {
				return nil, errors.New("decode buffered reading: invalid character")
			}
		}
		return []byte("msg"), nil
	}
	for {
		_, ok, err := st.Form(store.Telemetry, 10, 0, build)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	check := func(via string, s *store.Store) {
		var sb strings.Builder
		n, err := ExportDead(ctx, s, FormatJSONL, &sb)
		if err != nil || n != 1 {
			t.Fatalf("%s: %d dead letters (%v):\n%s", via, n, err, sb.String())
		}
		line := sb.String()
		for _, want := range []string{`"stream":"telemetry"`, `"rec":2`, `invalid character`, `"raw":"\"\\x01not json\""`} {
			if !strings.Contains(line, want) {
				t.Fatalf("%s: %s lacks %s", via, line, want)
			}
		}
		sb.Reset()
		if n, err := ExportDead(ctx, s, FormatCSV, &sb); err != nil || n != 1 || !strings.HasPrefix(sb.String(), strings.Join(DeadCSVHeader, ",")) {
			t.Fatalf("%s csv: %d %v\n%s", via, n, err, sb.String())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := st.Dead(store.Telemetry, 0, 0)
		if len(d) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	check("running store", st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	check("file", ro)
}
