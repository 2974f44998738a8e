package mtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type rig struct {
	e    *Exporter
	clk  *fakeClock
	up   *fakeUploader
	dir  string
	stop func()
	wg   sync.WaitGroup
}

func newRig(t *testing.T, dir string, up *fakeUploader, edit func(*Options)) *rig {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	r := &rig{clk: newFakeClock(upload), up: up, dir: dir}
	o := Options{Mine: mine, Loc: cst, SpoolDir: dir, Uploader: up, Clock: r.clk,
		RetryMin: time.Second, RetryMax: 10 * time.Second, FlushTimeout: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	return r
}

func (r *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	r.wg.Go(func() {
		if err := r.e.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { r.close() })
}

func (r *rig) close() {
	r.e.Close()
	r.wg.Wait()
}

func parsed(t *testing.T, u uploaded) (FileType, *Parsed) {
	t.Helper()
	_, typ, _, err := ParseName(u.name, cst)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(typ, u.data)
	if err != nil {
		t.Fatal(err)
	}
	return typ, p
}

func field(t *testing.T, typ FileType, rec []string, name string) string {
	t.Helper()
	i := FieldIndex(typ, false, name)
	if i < 0 {
		t.Fatalf("%s has no field %q", typ, name)
	}
	return rec[i]
}

func expectType(t *testing.T, u uploaded, want FileType) *Parsed {
	t.Helper()
	typ, p := parsed(t, u)
	if typ != want {
		t.Fatalf("got %s (%s), want a %s", typ, u.name, want)
	}
	return p
}

func coPoint() Point {
	return Point{Code: "CO-1", System: SystemSafety, TypeCode: SensorTypeCO, TypeName: "一氧化碳", Kind: KindAnalog,
		Unit: "ppm", Place: "皮带巷", RangeHigh: Some(500), RangeLow: Some(0), UpperAlarm: Some(24)}
}

// Point definitions are written on start, again when SetPoints brings a
// different set, and not for the same set with only a new data time.
func TestExporter_DefinitionsOnStartAndOnChangeOnly(t *testing.T) {
	r := newRig(t, "", newFakeUploader(), nil)
	r.e.SetPoints([]Point{coPoint(), ch4Point()})
	r.run(t)
	p := expectType(t, r.up.next(t), TypeCDDY)
	if len(p.Body) != 2 || p.Body[0][0] != ch4Code || p.Body[1][0] != "CO-1" {
		t.Fatalf("CDDY body %v, want the methane point then CO-1 (by code)", p.Body)
	}
	same := ch4Point()
	same.DataTime = same.DataTime.Add(time.Hour)
	r.e.SetPoints([]Point{same, coPoint()})
	r.clk.Advance(30 * time.Second)
	expectType(t, r.up.next(t), TypeCDSS) // not a second CDDY
	changed := ch4Point()
	changed.UpperCutoff = Some(1.2)
	r.e.SetPoints([]Point{changed, coPoint()})
	p = expectType(t, r.up.next(t), TypeCDDY)
	if got := field(t, TypeCDDY, p.Body[0], "upper cut-off"); got != "1.2" {
		t.Fatalf("new definitions carry upper cut-off %s, want 1.2", got)
	}
}

// Every interval a real-time file lists every defined point: its latest
// value with type name, place and unit from its definition, or -9999 with
// status 32 (not polled) for a point with no value yet.
func TestExporter_RealtimeEveryIntervalUnknownForUnpolled(t *testing.T) {
	r := newRig(t, "", newFakeUploader(), nil)
	r.e.SetPoints([]Point{ch4Point(), coPoint()})
	r.run(t)
	expectType(t, r.up.next(t), TypeCDDY)
	r.e.Observe(Value{Point: ch4Code, Value: Some(0.52), Status: StatusNormal, Time: upload.Add(29 * time.Second)})
	r.e.Observe(Value{Point: "UNDEFINED", Value: Some(9), Time: upload})
	r.clk.Advance(30 * time.Second)
	u := r.up.next(t)
	if u.name != "140105001234_CDSS_20250301083030.txt" {
		t.Fatalf("name %s", u.name)
	}
	p := expectType(t, u, TypeCDSS)
	want := [][]string{
		{ch4Code, "甲烷", "1#回风巷", "0.52", "%CH4", "0", "2025-03-01 08:30:29"},
		{"CO-1", "一氧化碳", "皮带巷", "-9999", "ppm", "32", "2025-03-01 08:30:30"},
	}
	if fmt.Sprint(p.Body) != fmt.Sprint(want) {
		t.Fatalf("CDSS body\n got %v\nwant %v", p.Body, want)
	}
	if got := p.Header[2]; got != "2025-03-01 08:30:30" {
		t.Fatalf("header time %s", got)
	}
	r.e.Observe(Value{Point: "CO-1", Status: StatusSensorFault, Time: upload.Add(55 * time.Second)})
	r.clk.Advance(30 * time.Second)
	p = expectType(t, r.up.next(t), TypeCDSS)
	if got := strings.Join(p.Body[1][3:6], ";"); got != "-9999;ppm;128" {
		t.Fatalf("fault written %s, want -9999;ppm;128", got)
	}
}

// An abnormal record is written as soon as it is handed over (no waiting
// for a tick), with empty type name, place and unit filled from the
// definition; a statistics batch likewise.
func TestExporter_AbnormalAndStatisticsWrittenWhenGiven(t *testing.T) {
	r := newRig(t, "", newFakeUploader(), nil)
	r.e.SetPoints([]Point{ch4Point()})
	r.run(t)
	expectType(t, r.up.next(t), TypeCDDY)
	s := upload.Add(-2 * time.Minute)
	r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalCutoff, Start: s, End: s.Add(90 * time.Second),
		Max: Some(1.8), MaxTime: s.Add(30 * time.Second), Min: Some(1.5), MinTime: s, Mean: Some(1.62)})
	p := expectType(t, r.up.next(t), TypeYCBJ)
	rec := p.Body[0]
	for name, want := range map[string]string{"sensor type name": "甲烷", "install place": "1#回风巷", "unit": "%CH4",
		"abnormal type": "002", "max": "1.8", "end": "2025-03-01 08:29:30", "entry time": "2025-03-01 08:30:00"} {
		if got := field(t, TypeYCBJ, rec, name); got != want {
			t.Errorf("YCBJ %s = %q, want %q", name, got, want)
		}
	}
	r.e.Stats([]Stat{{Point: ch4Code, From: s, To: s.Add(5 * time.Minute), Max: Some(1.8), MaxTime: s, Min: Some(0.1), MinTime: s, Mean: Some(0.4)}})
	p = expectType(t, r.up.next(t), TypeTJSJ)
	if got := field(t, TypeTJSJ, p.Body[0], "unit"); got != "%CH4" {
		t.Fatalf("TJSJ unit %q", got)
	}
}

// While uploads fail the pusher backs off 1 s, 2 s, 4 s, ... up to
// RetryMax (±10 % jitter), the files stay in the spool, and once the
// server answers every file arrives, oldest first, none lost; after a
// success the back-off starts again from RetryMin.
func TestExporter_FailingUploadsBackOffAndLoseNothing(t *testing.T) {
	up := newFakeUploader()
	var mu sync.Mutex
	failing := true
	up.fail = func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("connection refused")
		}
		return nil
	}
	r := newRig(t, "", up, func(o *Options) { o.Interval = time.Hour }) // no real-time files in the way
	r.e.SetPoints([]Point{ch4Point()})
	r.run(t)
	var waits []time.Duration
	for range 6 {
		d := <-r.clk.afters
		waits = append(waits, d)
		r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
		eventually(t, "abnormal record spooled", func() bool { return r.e.Status().Written[TypeYCBJ] == uint64(len(waits)) })
		r.clk.Advance(d)
	}
	for i, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		want *= time.Second
		if waits[i] < want-want/10 || waits[i] > want+want/10 {
			t.Fatalf("back-off %d = %s, want %s ±10 %% (all: %v)", i, waits[i], want, waits)
		}
	}
	if st := r.e.Status(); st.Spool.Files != 7 || st.Pushed != 0 || st.PushFailures < 6 || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("status while failing %+v", st)
	}
	// The seventh failed try sets its wait on the fake clock; the clock
	// moves only after it has (else a slow pusher sets it after the
	// advance and waits for ever).
	select {
	case <-r.clk.afters:
	case <-time.After(10 * time.Second):
		t.Fatal("no seventh back-off within 10 s")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	r.clk.Advance(time.Minute)
	var names []string
	for range 7 {
		names = append(names, r.up.next(t).name)
	}
	if !strings.Contains(names[0], "_CDDY_") {
		t.Fatalf("first pushed %s, want the definitions", names[0])
	}
	for i := 1; i < len(names); i++ {
		if names[i] <= names[i-1] || !strings.Contains(names[i], "_YCBJ_") {
			t.Fatalf("pushed out of order or wrong kind: %v", names)
		}
	}
	eventually(t, "all confirmed", func() bool { return r.e.Status().Pushed == 7 })
	if st := r.e.Status(); st.Spool.Files != 0 || st.LastError != "" {
		t.Fatalf("status after recovery %+v", st)
	}
	mu.Lock()
	failing = true
	mu.Unlock()
	r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
	if d := <-r.clk.afters; d > time.Second+time.Second/10 {
		t.Fatalf("back-off after a success restarts at %s, want 1 s", d)
	}
}

// A stuck upload (a server that accepts and never answers) does not slow
// the inputs: thousands of calls return while it hangs, the writer keeps
// spooling real-time files, and Close returns within its flush bound.
func TestExporter_InputsDoNotWaitForAStuckUpload(t *testing.T) {
	up := newFakeUploader()
	up.fail = func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() }
	r := newRig(t, "", up, func(o *Options) { o.FlushTimeout = 200 * time.Millisecond })
	r.e.SetPoints([]Point{ch4Point()})
	r.run(t)
	eventually(t, "upload attempt", func() bool { up.mu.Lock(); defer up.mu.Unlock(); return up.attempts > 0 })
	done := make(chan struct{})
	go func() {
		for i := range 5000 {
			r.e.Observe(Value{Point: ch4Code, Value: Some(float64(i) / 1000), Time: upload})
			r.e.SetPoints([]Point{ch4Point()})
			if i%100 == 0 {
				r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
				r.e.Stats([]Stat{{Point: ch4Code, From: upload, To: upload}})
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("inputs blocked behind a stuck upload")
	}
	for i := range 3 {
		r.clk.Advance(30 * time.Second)
		eventually(t, "real-time file spooled", func() bool { return r.e.Status().Written[TypeCDSS] == uint64(i+1) })
	}
	start := time.Now()
	r.close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %s with a stuck upload (flush bound 200 ms)", d)
	}
	if st := r.e.Status(); st.Spool.Files < 3+1+1 {
		t.Fatalf("files lost from the spool: %+v", st.Spool)
	}
}

// Close writes what the inputs hold and pushes it before returning.
func TestExporter_CloseWritesAndPushesPending(t *testing.T) {
	r := newRig(t, "", newFakeUploader(), nil)
	r.e.SetPoints([]Point{ch4Point()})
	r.run(t)
	expectType(t, r.up.next(t), TypeCDDY)
	r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
	r.close()
	expectType(t, r.up.next(t), TypeYCBJ)
	if st := r.e.Status(); st.Spool.Files != 0 {
		t.Fatalf("spool not flushed: %+v", st.Spool)
	}
	if !r.up.closed {
		t.Fatal("uploader not closed")
	}
}

// After a restart the files left in the spool are pushed first, in order,
// then the new run's files.
func TestExporter_RestartPushesSpooledFiles(t *testing.T) {
	dir := t.TempDir()
	down := newFakeUploader()
	down.fail = func(context.Context, string) error { return errors.New("no route to host") }
	r1 := newRig(t, dir, down, nil)
	r1.e.SetPoints([]Point{ch4Point()})
	r1.run(t)
	eventually(t, "writer started", func() bool { return r1.e.Status().Written[TypeCDDY] == 1 })
	for i := range 3 {
		r1.clk.Advance(30 * time.Second)
		eventually(t, "real-time file spooled", func() bool { return r1.e.Status().Written[TypeCDSS] == uint64(i+1) })
	}
	r1.close()
	left := r1.e.spool.Names()
	if len(left) != 4 {
		t.Fatalf("spool after the first run %v", left)
	}

	r2 := newRig(t, dir, newFakeUploader(), nil)
	r2.clk.Advance(10 * time.Minute) // restarted ten minutes later
	r2.e.SetPoints([]Point{ch4Point()})
	r2.run(t)
	for i, want := range left {
		if got := r2.up.next(t).name; got != want {
			t.Fatalf("push %d after restart = %s, want %s", i, got, want)
		}
	}
	if u := r2.up.next(t); u.name != "140105001234_CDDY_20250301084000.txt" {
		t.Fatalf("then %s, want this run's definitions", u.name)
	}
}

// Two files of a kind in the same second get distinct names (the later one
// a second on), and after a restart with the clock behind, new names still
// come after the spooled ones: a file never replaces another.
func TestExporter_NamesNeverRepeat(t *testing.T) {
	dir := t.TempDir()
	r1 := newRig(t, dir, newFakeUploader(), nil)
	r1.e.SetPoints([]Point{ch4Point()})
	r1.run(t)
	expectType(t, r1.up.next(t), TypeCDDY)
	r1.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
	a := r1.up.next(t).name
	r1.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalCutoff, Start: upload})
	b := r1.up.next(t).name
	if a != "140105001234_YCBJ_20250301083000.txt" || b != "140105001234_YCBJ_20250301083001.txt" {
		t.Fatalf("same-second names %s, %s", a, b)
	}
	r1.close()

	down := newFakeUploader()
	down.fail = func(context.Context, string) error { return errors.New("down") }
	r2 := newRig(t, dir, down, nil)
	r2.clk.Advance(time.Hour)
	r2.e.SetPoints([]Point{ch4Point()})
	r2.run(t)
	r2.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
	eventually(t, "spooled", func() bool { return r2.e.Status().Written[TypeYCBJ] == 1 })
	r2.close()
	left := r2.e.spool.Names() // 09:30:00 CDDY and YCBJ

	r3 := newRig(t, dir, down, nil) // the clock is an hour behind them
	r3.e.SetPoints([]Point{ch4Point()})
	r3.run(t)
	r3.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalOverLimit, Start: upload})
	eventually(t, "spooled", func() bool { return r3.e.Status().Written[TypeYCBJ] == 1 })
	r3.close()
	got := r3.e.spool.Names()
	want := []string{"140105001234_CDDY_20250301093000.txt", "140105001234_YCBJ_20250301093000.txt",
		"140105001234_CDDY_20250301093001.txt", "140105001234_YCBJ_20250301093001.txt"}
	if fmt.Sprint(left) != fmt.Sprint(want[:2]) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("spool %v then %v, want %v", left, got, want)
	}
}
