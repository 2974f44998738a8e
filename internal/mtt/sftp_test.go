package mtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mtt/sshdtest"
)

// sftpRig is an exporter pushing to a real sshd through the test's proxy.
type sftpRig struct {
	e      *Exporter
	srv    *sshdtest.Server
	mu     sync.Mutex
	pushed []string
	wg     sync.WaitGroup
	once   sync.Once
	closed chan struct{}
}

func newSFTPRig(t *testing.T, srv *sshdtest.Server, edit func(*Options)) *sftpRig {
	t.Helper()
	up, err := NewSFTP(SFTPOptions{Address: srv.Proxy.Addr, User: srv.User, KeyFile: srv.KeyFile,
		KnownHostsFile: sshdtest.KnownHosts(t, srv.Proxy.Addr, srv.HostPub), RemoteDir: srv.Inbox,
		Timeout: 20 * time.Second, MineCode: mine.Code})
	if err != nil {
		t.Fatal(err)
	}
	r := &sftpRig{srv: srv, closed: make(chan struct{})}
	o := Options{Mine: mine, Loc: cst, SpoolDir: t.TempDir(), Uploader: up, Interval: time.Second,
		RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, FlushTimeout: 5 * time.Second,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPushed: func(name string) { r.mu.Lock(); r.pushed = append(r.pushed, name); r.mu.Unlock() }}
	if edit != nil {
		edit(&o)
	}
	if r.e, err = New(o); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *sftpRig) run(t *testing.T) {
	r.wg.Go(func() { _ = r.e.Run(context.Background()) })
	t.Cleanup(func() { r.close(t) })
}

// close stops the exporter and waits for Run, failing (not hanging) the
// test if that takes more than 20 s.
func (r *sftpRig) close(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		go func() { r.e.Close(); r.wg.Wait(); close(r.closed) }()
	})
	select {
	case <-r.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20 s")
	}
}

func (r *sftpRig) pushedNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pushed)
}

func (r *sftpRig) pushedKind(t FileType) int {
	n := 0
	for _, name := range r.pushedNames() {
		if strings.Contains(name, "_"+string(t)+"_") {
			n++
		}
	}
	return n
}

// inbox reads every file on the server: it fails on a leftover temporary
// file, and parses each file back (name, UTF-8, separators, field counts,
// header mine code and name, header time = name time).
func inboxFiles(s *sshdtest.Server, t *testing.T) map[string]*Parsed {
	t.Helper()
	ents, err := os.ReadDir(s.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Parsed{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			t.Fatalf("temporary file %s left on the server", name)
		}
		code, typ, at, err := ParseName(name, cst)
		if err != nil || code != mine.Code {
			t.Fatalf("server file %s: %v", name, err)
		}
		data, err := os.ReadFile(filepath.Join(s.Inbox, name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(typ, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h := HeaderFields[typ]
		if p.Header[0] != mine.Code || p.Header[1] != mine.Name || p.Header[len(h)-1] != at.Format(TimeLayout) {
			t.Fatalf("%s: header %v", name, p.Header)
		}
		out[name] = p
	}
	return out
}

// wantFields checks a record field by field.
func wantFields(t *testing.T, what string, typ FileType, rec []string, want map[string]string) {
	t.Helper()
	for name, v := range want {
		if got := field(t, typ, rec, name); got != v {
			t.Errorf("%s: %s = %q, want %q", what, name, got, v)
		}
	}
}

// A real OpenSSH server receives the four kinds; every file on it parses
// back field by field, nothing is left under a temporary name, and every
// confirmed file is there exactly once.
func TestSFTP_RealServerReceivesEveryKind(t *testing.T) {
	srv := sshdtest.Start(t)
	r := newSFTPRig(t, srv, nil)
	now := time.Now()
	r.e.SetPoints([]Point{ch4Point(), coPoint()})
	r.e.Observe(Value{Point: ch4Code, Value: Some(0.52), Status: StatusNormal, Time: now})
	r.e.Observe(Value{Point: "CO-1", Value: Some(12), Status: StatusNormal, Time: now})
	start := now.Add(-2 * time.Minute).Truncate(time.Second)
	r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalCutoff, Start: start, End: start.Add(95 * time.Second),
		Max: Some(1.83), MaxTime: start.Add(40 * time.Second), Min: Some(1.5), MinTime: start, Mean: Some(1.62),
		Cause: "甲烷超限", Action: "切断 BRK-1", EnteredBy: "gw-01"})
	r.e.Stats([]Stat{{Point: ch4Code, From: start, To: start.Add(5 * time.Minute), Max: Some(1.83), MaxTime: start.Add(40 * time.Second),
		Min: Some(0.4), MinTime: start, Mean: Some(0.7)}})
	r.run(t)
	eventually(t, "all four kinds confirmed", func() bool {
		return r.pushedKind(TypeCDDY) > 0 && r.pushedKind(TypeCDSS) > 0 && r.pushedKind(TypeYCBJ) > 0 && r.pushedKind(TypeTJSJ) > 0
	})
	r.close(t)
	files := inboxFiles(srv, t)
	pushed := r.pushedNames()
	if len(files) != len(pushed) {
		t.Fatalf("%d files on the server, %d confirmed: %v", len(files), len(pushed), pushed)
	}
	t1 := func(x time.Time) string { return x.In(cst).Format(TimeLayout) }
	for name, p := range files {
		_, typ, _, _ := ParseName(name, cst)
		switch typ {
		case TypeCDDY:
			if h := strings.Join(p.Header[:6], ";"); h != "140105001234;示例煤矿;KJ95X;安全监控系统;示例科技;2027-12-31" {
				t.Errorf("CDDY header %s", h)
			}
			wantFields(t, name, typ, p.Body[0], map[string]string{"point code": ch4Code, "system code": "01",
				"substation code": "001", "sensor type code": "0001", "value kind": "MN", "unit": "%CH4",
				"range high": "4", "range low": "0", "upper alarm": "1", "upper alarm clear": "1",
				"lower alarm": "-9999", "lower alarm clear": "-9999", "upper cut-off": "1.5", "upper restore": "1",
				"lower cut-off": "-9999", "lower restore": "-9999", "on text": "", "off text": "",
				"install place": "1#回风巷", "x": "12.5", "y": "-3", "z": "-9999",
				"related points": "D:BRK-1,D:BRK-2", "data time": "2025-03-01 08:00:00"})
			wantFields(t, name, typ, p.Body[1], map[string]string{"point code": "CO-1", "sensor type code": "0004", "upper alarm": "24"})
		case TypeCDSS:
			wantFields(t, name, typ, p.Body[0], map[string]string{"point code": ch4Code, "sensor type name": "甲烷",
				"install place": "1#回风巷", "value": "0.52", "unit": "%CH4", "point status": "0", "data time": t1(now)})
			wantFields(t, name, typ, p.Body[1], map[string]string{"point code": "CO-1", "value": "12", "unit": "ppm", "point status": "0"})
		case TypeYCBJ:
			wantFields(t, name, typ, p.Body[0], map[string]string{"point code": ch4Code, "sensor type name": "甲烷",
				"install place": "1#回风巷", "unit": "%CH4", "abnormal type": "002", "start": t1(start),
				"end": t1(start.Add(95 * time.Second)), "max": "1.83", "max time": t1(start.Add(40 * time.Second)),
				"min": "1.5", "min time": t1(start), "mean": "1.62", "cause": "甲烷超限", "action taken": "切断 BRK-1",
				"entered by": "gw-01"})
		case TypeTJSJ:
			wantFields(t, name, typ, p.Body[0], map[string]string{"point code": ch4Code, "unit": "%CH4",
				"window start": t1(start), "window end": t1(start.Add(5 * time.Minute)), "max": "1.83",
				"max time": t1(start.Add(40 * time.Second)), "min": "0.4", "min time": t1(start), "mean": "0.7"})
		}
	}
}

// The server unreachable for a while: files pile up in the spool, none
// leaves it; once it is back every one arrives exactly once, in full, with
// the methane excursion recorded while it was down.
func TestSFTP_ServerDownThenBackLosesNothing(t *testing.T) {
	srv := sshdtest.Start(t)
	r := newSFTPRig(t, srv, nil)
	r.e.SetPoints([]Point{ch4Point(), coPoint()})
	r.e.Observe(Value{Point: ch4Code, Value: Some(0.3), Time: time.Now()})
	r.run(t)
	eventually(t, "first real-time file confirmed", func() bool { return r.pushedKind(TypeCDSS) > 0 })

	srv.Proxy.Down()
	base := r.e.Status().Written[TypeCDSS]
	for i, v := range []float64{0.9, 1.6, 1.83, 1.2} {
		r.e.Observe(Value{Point: ch4Code, Value: Some(v), Status: StatusAlarm | StatusPowerCut, Time: time.Now()})
		eventually(t, "real-time file spooled while down", func() bool { return r.e.Status().Written[TypeCDSS] >= base+uint64(i)+1 })
	}
	r.e.Abnormal(Abnormal{Point: ch4Code, Type: AbnormalCutoff, Start: time.Now().Add(-4 * time.Second), End: time.Now(), Max: Some(1.83)})
	eventually(t, "abnormal record spooled", func() bool { return r.e.Status().Written[TypeYCBJ] == 1 })
	spooled := r.e.spool.Names()
	if len(spooled) < 5 {
		t.Fatalf("spool while down %v, want ≥ 4 real-time files and the abnormal record", spooled)
	}
	if st := r.e.Status(); st.LastError == "" || st.PushFailures == 0 {
		t.Fatalf("no failed upload recorded while down: %+v", st)
	}

	srv.Proxy.Up(t)
	eventually(t, "spool drained", func() bool {
		names := r.pushedNames()
		for _, n := range spooled {
			if !slices.Contains(names, n) {
				return false
			}
		}
		return true
	})
	r.close(t)
	files := inboxFiles(srv, t)
	pushed := r.pushedNames()
	if len(files) != len(pushed) {
		t.Fatalf("%d files on the server, %d confirmed (a duplicate or a loss): %v", len(files), len(pushed), pushed)
	}
	maxSeen := false
	for _, n := range spooled {
		p, ok := files[n]
		if !ok {
			t.Fatalf("%s spooled while down never reached the server", n)
		}
		if strings.Contains(n, "_CDSS_") && field(t, TypeCDSS, p.Body[0], "value") == "1.83" &&
			field(t, TypeCDSS, p.Body[0], "point status") == "3" {
			maxSeen = true
		}
		if strings.Contains(n, "_YCBJ_") && field(t, TypeYCBJ, p.Body[0], "max") != "1.83" {
			t.Errorf("abnormal record max %s", field(t, TypeYCBJ, p.Body[0], "max"))
		}
	}
	if !maxSeen {
		t.Error("the excursion's 1.83 % CH4 with alarm + power cut is in no real-time file")
	}
}

// A connection cut halfway through an upload leaves the file in the spool,
// only a temporary file on the server and nothing under the final name;
// the retry replaces it with the whole file and no temporary file remains.
func TestSFTP_CutMidUploadLeavesNoPartialFile(t *testing.T) {
	srv := sshdtest.Start(t)
	r := newSFTPRig(t, srv, func(o *Options) { o.Interval = time.Hour })
	var ps []Point
	for i := range 5000 {
		p := ch4Point()
		p.Code = fmt.Sprintf("%s01MN0001%08d", mine.Code, i+1)
		ps = append(ps, p)
	}
	r.e.SetPoints(ps)
	stalled := srv.Proxy.Stall(256 << 10)
	r.run(t)
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upload never got 256 KiB through")
	}
	name := r.e.spool.Names()[0]
	tmp := filepath.Join(srv.Inbox, "."+name+".tmp")
	eventually(t, "partial temporary file on the server", func() bool {
		fi, err := os.Stat(tmp)
		return err == nil && fi.Size() > 0
	})
	srv.Proxy.Down()
	srv.Proxy.Unstall()
	if _, err := os.Stat(filepath.Join(srv.Inbox, name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a partial upload is visible under its final name: %v", err)
	}
	if !slices.Contains(r.e.spool.Names(), name) {
		t.Fatal("the file left the spool without a confirmed upload")
	}
	srv.Proxy.Up(t)
	eventually(t, "definitions confirmed after the cut", func() bool { return r.pushedKind(TypeCDDY) == 1 })
	r.close(t)
	files := inboxFiles(srv, t) // fails on a leftover temporary file
	if p := files[name]; p == nil || len(p.Body) != 5000 {
		t.Fatalf("server copy of %s incomplete", name)
	}
}

// A server that stops answering in the middle of an upload (the link
// stalls, nothing is closed) holds neither the inputs nor Close: the
// upload is abandoned at the flush bound and the file stays spooled.
func TestSFTP_StalledServerDoesNotHangClose(t *testing.T) {
	srv := sshdtest.Start(t)
	r := newSFTPRig(t, srv, func(o *Options) { o.Interval = time.Hour; o.FlushTimeout = time.Second })
	var ps []Point
	for i := range 5000 {
		p := ch4Point()
		p.Code = fmt.Sprintf("%s01MN0001%08d", mine.Code, i+1)
		ps = append(ps, p)
	}
	r.e.SetPoints(ps)
	stalled := srv.Proxy.Stall(256 << 10)
	r.run(t)
	select {
	case <-stalled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upload never got 256 KiB through")
	}
	r.e.Observe(Value{Point: ps[0].Code, Value: Some(1), Time: time.Now()})
	r.e.Abnormal(Abnormal{Point: ps[0].Code, Type: AbnormalOverLimit, Start: time.Now()})
	start := time.Now()
	r.close(t)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Close took %s against a stalled server (flush bound 1 s)", d)
	}
	if got := kinds(r.e.spool.Names()); !strings.HasPrefix(got, "CDDY") || !strings.Contains(got, "YCBJ") {
		t.Fatalf("spool after Close %s, want the definitions and the abnormal record kept", got)
	}
}
