package app

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// TestApp_RefusedRecordsReported: records the buffer refuses (queue full,
// write error) are counted and reported in one data_loss event with exact
// counts and time span; nothing is dropped silently.
func TestApp_RefusedRecordsReported(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "buffer.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.errLog.every = time.Hour
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := range 7 {
		a.refused(store.Telemetry, t0.Add(time.Duration(i)*time.Second), store.ErrBusy)
	}
	a.refused(store.Telemetry, t0.Add(-time.Second), errors.New("write /var/lib/hazmon/buffer.db: no space left on device"))
	a.reportLoss()
	a.reportLoss() // nothing new: no second event

	deadline := time.Now().Add(5 * time.Second)
	var items []store.Item
	for len(items) == 0 && time.Now().Before(deadline) {
		if items, err = st.Pending(store.Event, 0, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(items) != 1 {
		t.Fatalf("events = %d, want 1", len(items))
	}
	var e contract.Event
	if err := json.Unmarshal(items[0].Data, &e); err != nil {
		t.Fatal(err)
	}
	if e.Type != "data_loss" || e.Readings != 8 || e.FromTS != t0.Add(-time.Second).UnixMilli() ||
		e.ToTS != t0.Add(6*time.Second).UnixMilli() || e.Reason != LossWriteError {
		t.Fatalf("event = %+v", e)
	}
	// The published form validates once the publisher adds v, seq, agent, site.
	e.V, e.Seq, e.Agent, e.Site = 1, 1, "gw", "site"
	b, _ := contract.Marshal(e)
	if err := contract.Validate("event", b); err != nil {
		t.Fatal(err)
	}
}

func TestApp_BufferStatsShowRefusals(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "buffer.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{st: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a.errLog.every = time.Hour
	a.refused(store.Alarm, time.Now(), errors.New("write buffer.db: no space left on device"))
	a.refused(store.Alarm, time.Now(), store.ErrBusy)
	bs, err := (*controlBackend)(a).BufferStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if bs.NotStored != 2 || bs.LastError != store.ErrBusy.Error() {
		t.Fatalf("buffer stats: not stored %d, last error %q", bs.NotStored, bs.LastError)
	}
}
