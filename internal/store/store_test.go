package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

var t0 = time.UnixMilli(1_700_000_000_000)

var quiet = slog.New(slog.DiscardHandler)

// fixedNow is the tests' clock: one hour after t0, so t0 samples are fresh.
func fixedNow() time.Time { return t0.Add(time.Hour) }

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *Store, st Stream, first, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := first; i < first+n; i++ {
		if err := s.Append(ctx, st, t0.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// joinBuild is a BuildFunc that makes "seq:item,item,..." payloads.
func joinBuild(h Head, items []Item) ([]byte, error) {
	seq := h.Seq
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = string(it.Data)
	}
	return []byte(fmt.Sprintf("%d:%s", seq, strings.Join(parts, ","))), nil
}

func TestStore_AppendFormAckRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s, err := Open(path, Options{Logger: quiet, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, Telemetry, 0, 10)
	var formed []Message
	for {
		m, ok, err := s.Form(Telemetry, 4, 0, joinBuild)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		formed = append(formed, m)
	}
	want := []string{
		`1:{"n":0},{"n":1},{"n":2},{"n":3}`,
		`2:{"n":4},{"n":5},{"n":6},{"n":7}`,
		`3:{"n":8},{"n":9}`,
	}
	if len(formed) != len(want) {
		t.Fatalf("formed %d messages, want %d", len(formed), len(want))
	}
	for i, m := range formed {
		if string(m.Payload) != want[i] || m.Seq != uint64(i+1) {
			t.Errorf("message %d = seq %d %q, want %q", i, m.Seq, m.Payload, want[i])
		}
	}
	if !formed[1].OldestTS.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("OldestTS = %v, want %v", formed[1].OldestTS, t0.Add(4*time.Second))
	}
	if err := s.Ack(Telemetry, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(Telemetry, 1); err != nil { // a repeated PUBACK is harmless
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, Options{})
	out, err := s.Outbox(Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || string(out[0].Payload) != want[1] || string(out[1].Payload) != want[2] {
		t.Fatalf("outbox after restart = %+v, want seq 2 and 3 unchanged", out)
	}
	if out2, _ := s.Outbox(Telemetry, 2, 0); len(out2) != 1 || out2[0].Seq != 3 {
		t.Fatalf("Outbox(after=2) = %+v, want only seq 3", out2)
	}
	appendN(t, s, Telemetry, 10, 1)
	m, ok, err := s.Form(Telemetry, 4, 0, joinBuild)
	if err != nil || !ok {
		t.Fatalf("Form after restart: ok=%v err=%v", ok, err)
	}
	if m.Seq != 4 {
		t.Fatalf("seq after restart = %d, want 4 (strictly increasing across reopen)", m.Seq)
	}
	// Streams have independent seqs.
	appendN(t, s, Alarm, 0, 1)
	if m, _, _ := s.Form(Alarm, 1, 0, joinBuild); m.Seq != 1 {
		t.Fatalf("first alarm seq = %d, want 1", m.Seq)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if tel := st.Streams[Telemetry]; tel.Outbox != 3 || tel.Pending != 0 || tel.LastSeq != 4 {
		t.Fatalf("telemetry stats = %+v, want outbox 3, pending 0, last seq 4", tel)
	}
	if !st.Oldest.Equal(t0) { // alarm item 0 is the oldest sample
		t.Fatalf("oldest = %v, want %v", st.Oldest, t0)
	}
	if st.FileSize == 0 || st.Bytes == 0 {
		t.Fatalf("stats sizes = %+v", st)
	}
}

func TestStore_FormMaxBytes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), Options{})
	appendN(t, s, Telemetry, 0, 5) // each item is 8 bytes: {"n":0}
	m, _, err := s.Form(Telemetry, 100, 20, joinBuild)
	if err != nil {
		t.Fatal(err)
	}
	if m.Items != 2 {
		t.Fatalf("items with maxBytes 20 = %d, want 2", m.Items)
	}
	m, _, _ = s.Form(Telemetry, 100, 1, joinBuild) // the first item always goes
	if m.Items != 1 {
		t.Fatalf("items with maxBytes 1 = %d, want 1", m.Items)
	}
}

// A record that cannot be formed (a flipped bit: bbolt keeps no checksum
// on data pages) goes to the dead letters with the reason, a data_loss
// event (unreadable) names its stream and rec, and the stream goes on.
func TestStore_UnformableRecordDeadLettered(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), Options{})
	appendN(t, s, Telemetry, 0, 3)
	poison := func(h Head, items []Item) ([]byte, error) {
		for _, it := range items {
			if string(it.Data) == `{"n":1}` {
				return nil, errors.New("boom")
			}
		}
		return joinBuild(h, items)
	}
	var got []string
	for {
		m, ok, err := s.Form(Telemetry, 10, 0, poison)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%d:[%d,%d]", m.Seq, m.First, m.Last))
	}
	if want := []string{"1:[1,1]", "2:[3,3]"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages %v, want %v (rec 2 dead-lettered, the stream goes on)", got, want)
	}
	dead, err := s.Dead(Telemetry, 0, 0)
	if err != nil || len(dead) != 1 || dead[0].Rec != 2 || !strings.Contains(dead[0].Reason, "boom") || string(dead[0].Data) != `{"n":1}` {
		t.Fatalf("dead letters = %+v (%v), want rec 2 with the reason", dead, err)
	}
	evs := dataLoss(t, s)
	if len(evs) != 1 || evs[0].Reason != ReasonUnreadable || evs[0].Stream != "telemetry" || fmt.Sprint(evs[0].Rec) != "[2 2]" || evs[0].Readings != 1 {
		t.Fatalf("data_loss = %+v, want one unreadable telemetry rec [2,2]", evs)
	}
	s.Close()
	s = open(t, s.Path(), Options{})
	if dead, _ := s.Dead(Telemetry, 0, 0); len(dead) != 1 {
		t.Fatalf("dead letters after reopen: %+v", dead)
	}
}

func TestStore_SecondOpenerFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	open(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: time.Second, Logger: quiet})
	took := time.Since(start)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open err = %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "buffer in use by the running agent") {
		t.Fatalf("message %q lacks the operator text", err)
	}
	if took > 10*time.Second { // generous: the lock wait is 1 s
		t.Fatalf("second Open took %v", took)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the running agent's file was touched: %v", err)
	}
}

func TestStore_CorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "buffer.db")
	s := open(t, path, Options{})
	appendN(t, s, Telemetry, 0, 3)
	for range 3 {
		if _, ok, err := s.Form(Telemetry, 1, 0, joinBuild); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	s.Close()
	garbage := bytes.Repeat([]byte("not a bbolt file "), 4096)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_123, 0)
	s = open(t, path, Options{Now: func() time.Time { return now }})
	r := s.Reset()
	if r == nil {
		t.Fatal("Reset() = nil for a garbage file")
	}
	if r.MovedTo != path+".corrupt-1700000123" || r.Epoch != 2 || r.Salvaged != 0 || r.Lost != -1 {
		t.Fatalf("reset = %+v", r)
	}
	if got, err := os.ReadFile(r.MovedTo); err != nil || !bytes.Equal(got, garbage) {
		t.Fatalf("moved-aside file not kept intact: %v", err)
	}
	appendN(t, s, Telemetry, 3, 1)
	m, ok, err := s.Form(Telemetry, 1, 0, joinBuild)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// seq and rec go on from the high-water mark kept beside the file.
	if m.Seq != 4 || m.First != 4 || s.Epoch() != 2 {
		t.Fatalf("after reset: seq %d rec %d epoch %d, want seq 4 rec 4 epoch 2", m.Seq, m.First, s.Epoch())
	}
}

func TestStore_CleanFileNoReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	s.Close()
	s = open(t, path, Options{})
	if s.Reset() != nil {
		t.Fatalf("Reset on a clean file: %+v", s.Reset())
	}
}

// dataLoss reads the pending data_loss events of s.
func dataLoss(t *testing.T, s *Store) []contract.Event {
	t.Helper()
	var evs []contract.Event
	for {
		m, ok, err := s.Form(Event, 1, 0, func(_ Head, items []Item) ([]byte, error) { return items[0].Data, nil })
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return evs
		}
		var ev contract.Event
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == contract.EventDataLoss {
			ev.Agent, ev.Site, ev.Seq = "gw-01", "site-0001", m.Seq
			b, _ := contract.Marshal(ev)
			if err := contract.Validate(contract.KindEvent, b); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
}

func TestStore_EvictMaxBytes(t *testing.T) {
	const maxBytes = 2000
	s := open(t, filepath.Join(t.TempDir(), "b.db"), Options{MaxBytes: maxBytes, Now: func() time.Time { return t0.Add(time.Hour) }})
	appendN(t, s, Alarm, 0, 2)
	// 150 telemetry items of 8+8+8 bytes accounted each; far over the cap.
	ctx := context.Background()
	for i := 0; i < 150; i++ {
		if err := s.Append(ctx, Telemetry, t0.Add(time.Duration(100+i)*time.Second), []byte(fmt.Sprintf("%08d", i))); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > maxBytes+400 { // at most the last data_loss record over the cap
		t.Fatalf("accounted bytes %d, cap %d", st.Bytes, maxBytes)
	}
	if st.Streams[Alarm].Pending != 2 || st.Streams[Alarm].Evicted != 0 {
		t.Fatalf("alarms evicted before telemetry: %+v", st.Streams[Alarm])
	}
	tel := st.Streams[Telemetry]
	if tel.Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	if int(tel.Evicted)+tel.Pending != 150 {
		t.Fatalf("evicted %d + pending %d != 150 appended", tel.Evicted, tel.Pending)
	}
	// The survivors are the newest, in order; the losses are reported exactly.
	var first int
	m, ok, err := s.Form(Telemetry, 1000, 0, joinBuild)
	if err != nil || !ok {
		t.Fatalf("Form: ok=%v err=%v", ok, err)
	}
	fmt.Sscanf(strings.SplitN(string(m.Payload), ":", 2)[1], "%d", &first)
	if first != int(tel.Evicted) || m.Items != tel.Pending {
		t.Fatalf("survivors start at %d (%d items), want %d", first, m.Items, tel.Evicted)
	}
	var sum int64
	from, to := int64(-1), int64(0)
	for _, ev := range dataLoss(t, s) {
		if ev.Reason != ReasonBufferFull {
			t.Fatalf("reason %q", ev.Reason)
		}
		sum += ev.Readings
		if from < 0 {
			from = ev.FromTS
		}
		to = ev.ToTS
	}
	if sum != int64(tel.Evicted) {
		t.Fatalf("data_loss readings sum %d, evicted %d", sum, tel.Evicted)
	}
	if from != t0.Add(100*time.Second).UnixMilli() || to != t0.Add(time.Duration(100+tel.Evicted-1)*time.Second).UnixMilli() {
		t.Fatalf("data_loss span %d..%d, want first..last evicted sample", from, to)
	}
}

// MaxAge counts run time on the monotonic clock: telemetry committed more
// than MaxAge of run time ago is evicted (counted, with its rec range),
// alarms never; the run time carries over a restart.
func TestStore_EvictMaxAge(t *testing.T) {
	var mu sync.Mutex
	var mono time.Duration
	clock := func() time.Duration { mu.Lock(); defer mu.Unlock(); return mono }
	step := func(d time.Duration) { mu.Lock(); mono += d; mu.Unlock() }
	path := filepath.Join(t.TempDir(), "b.db")
	s := open(t, path, Options{MaxAge: time.Hour, Mono: clock})
	appendN(t, s, Telemetry, 0, 4)
	appendN(t, s, Alarm, 0, 1)
	step(40 * time.Minute)
	s.Close()
	mu.Lock()
	mono = 0 // a new process: its monotonic clock starts again
	mu.Unlock()
	s = open(t, path, Options{MaxAge: time.Hour, Mono: clock}) // run time goes on from 40 min
	appendN(t, s, Telemetry, 4, 1)                             // at 40 min
	step(30 * time.Minute)                                     // 70 min: the first four are 70 min old, the fifth 30
	appendN(t, s, Telemetry, 5, 1)
	evs := dataLoss(t, s)
	if len(evs) != 1 {
		t.Fatalf("data_loss events = %+v, want 1", evs)
	}
	ev := evs[0]
	if ev.Readings != 4 || ev.Reason != ReasonMaxAge || ev.Stream != "telemetry" || fmt.Sprint(ev.Rec) != "[1 4]" ||
		ev.FromTS != t0.UnixMilli() || ev.ToTS != t0.Add(3*time.Second).UnixMilli() {
		t.Fatalf("data_loss = %+v, want 4 readings rec 1..4 from t0 to t0+3s, max_age", ev)
	}
	st, _ := s.Stats()
	if st.Streams[Telemetry].Pending != 2 || st.Streams[Telemetry].Evicted != 4 || st.Streams[Alarm].Pending != 1 {
		t.Fatalf("stats = %+v, want 2 telemetry pending, 4 evicted, the alarm kept", st.Streams)
	}
}

func TestStore_ClosedRejects(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "b.db"), Options{})
	s.Close()
	if err := s.AppendAsync(Telemetry, t0, []byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := s.AppendAsync("bogus", t0, nil, nil); err == nil {
		t.Fatal("unknown stream accepted")
	}
	if _, ok, err := s.Form(Telemetry, 10, 0, nil); ok || !errors.Is(err, ErrClosed) {
		t.Fatalf("form after close: ok %v, err %v; want ErrClosed", ok, err)
	}
}

func TestStore_ConcurrentAppendsAllCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	s := open(t, path, Options{})
	var wg sync.WaitGroup
	const workers, per = 8, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := s.Append(context.Background(), Telemetry, time.Now(), []byte(fmt.Sprintf("%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	if st.Streams[Telemetry].Pending != workers*per {
		t.Fatalf("pending %d, want %d", st.Streams[Telemetry].Pending, workers*per)
	}
}
