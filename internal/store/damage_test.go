package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
)

const pageSize = 4096

// filled is a buffer file with a known content: n telemetry records of
// ~120 bytes (the first 400 formed into outbox messages of 100) and 20
// alarms, closed.
type filled struct {
	path    string
	records int64  // records it holds (pending and in the outbox)
	lastSeq uint64 // telemetry seq of the last message formed
}

func fillFile(t *testing.T, n int) filled {
	t.Helper()
	path := filepath.Join(t.TempDir(), "buffer.db")
	s, err := Open(path, Options{Logger: quiet, Now: fixedNow, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 100)
	for i := range n {
		if err := s.AppendAsync(Telemetry, t0.Add(time.Duration(i)*time.Millisecond), []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)), nil); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, s, Alarm, 0, 20) // waits for the commit of everything before
	var last uint64
	for range 4 {
		m, ok, err := s.Form(Telemetry, 100, 0, joinBuild)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		last = m.Seq
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return filled{path: path, records: int64(n + 20), lastSeq: last}
}

// inUsePages returns the ids of the file's pages bbolt uses (not free,
// not meta), in order.
func inUsePages(t *testing.T, path string) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []int
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "leaf" || p.Type == "branch" {
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func overwritePages(t *testing.T, path string, ids []int, seed uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	junk := make([]byte, pageSize)
	for _, id := range ids {
		for i := range junk {
			junk[i] = byte(rng.UintN(256))
		}
		if _, err := f.WriteAt(junk, int64(id)*pageSize); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRecovered opens the damaged file and checks: no panic escapes, the
// file is moved aside, the counts add up, the buffer_reset event says
// them, and the fresh file takes records and continues seq.
func checkRecovered(t *testing.T, f filled, wantSalvaged bool) *Reset {
	t.Helper()
	s := open(t, f.path, Options{Logger: testLogger(t)})
	r := s.Reset()
	if r == nil {
		t.Fatal("damaged file opened without a reset")
	}
	if m, _ := filepath.Glob(f.path + ".corrupt-*"); len(m) != 1 || m[0] != r.MovedTo {
		t.Fatalf("moved aside: %v, reset %+v", m, r)
	}
	if wantSalvaged && r.Salvaged == 0 {
		t.Fatalf("nothing salvaged: %+v", r)
	}
	if r.Lost >= 0 && r.Salvaged+r.Lost != f.records {
		t.Fatalf("salvaged %d + lost %d != %d records held", r.Salvaged, r.Lost, f.records)
	}
	if r.Epoch != 2 {
		t.Fatalf("epoch %d after the first reset, want 2", r.Epoch)
	}
	// The buffer_reset event is the first event of the new epoch.
	m, ok, err := s.Form(Event, 1, 0, func(h Head, items []Item) ([]byte, error) {
		var e contract.Event
		if err := json.Unmarshal(items[0].Data, &e); err != nil {
			return nil, err
		}
		e.Seq, e.Epoch, e.ID, e.Agent, e.Site = h.Seq, h.Epoch, items[0].ID, "gw-01", "site-0001"
		return contract.Marshal(e)
	})
	if err != nil || !ok {
		t.Fatalf("no event after the reset: %v %v", ok, err)
	}
	if err := contract.Validate(contract.KindEvent, m.Payload); err != nil {
		t.Fatal(err)
	}
	var e contract.Event
	_ = json.Unmarshal(m.Payload, &e)
	if e.Type != contract.EventBufferReset || e.Salvaged == nil || *e.Salvaged != r.Salvaged || (r.Lost >= 0) != (e.Lost != nil) || e.Epoch != 2 {
		t.Fatalf("buffer_reset event %s for reset %+v", m.Payload, r)
	}
	// Later writes work, seq goes on after what was formed before.
	if err := s.Append(context.Background(), Telemetry, t0, []byte(`{"n":"after"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		m, ok, err := s.Form(Telemetry, 1000, 0, joinBuild)
		if err != nil || !ok {
			t.Fatalf("form after the reset: %v %v", ok, err)
		}
		if m.Seq <= f.lastSeq {
			t.Fatalf("seq %d after the reset, the damaged file had formed %d", m.Seq, f.lastSeq)
		}
		if strings.Contains(string(m.Payload), `"after"`) {
			break
		}
	}
	s.Close()
	s = open(t, f.path, Options{})
	if s.Reset() != nil {
		t.Fatalf("the fresh file is damaged too: %+v", s.Reset())
	}
	t.Logf("reset %+v", *r)
	return r
}

// Pages in the middle overwritten (a power cut during a write on an SD
// card): the open check finds them, the file is quarantined and every
// record outside the damaged pages salvaged.
func TestStore_DamagedMiddlePagesSalvaged(t *testing.T) {
	f := fillFile(t, 6000)
	pages := inUsePages(t, f.path)
	mid := len(pages) / 2
	overwritePages(t, f.path, pages[mid:mid+3], 1)
	r := checkRecovered(t, f, true)
	if r.Lost <= 0 || r.Salvaged < f.records/2 {
		t.Fatalf("3 pages of %d damaged: salvaged %d, lost %d of %d", len(pages), r.Salvaged, r.Lost, f.records)
	}
}

// A truncated file (the card lost the tail): found before bbolt maps it
// (its high water mark is past the end), quarantined, and what is left
// readable salvaged (pages past the end are outside the file but inside
// bbolt's mapping: touching them is a fault that only panic-on-fault turns
// into a recoverable panic). When the root page was in the lost tail
// nothing can be found from the file's structure: nothing salvaged, the
// loss unknown.
func TestStore_TruncatedFileSalvaged(t *testing.T) {
	f := fillFile(t, 6000)
	fi, err := os.Stat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.path, fi.Size()/2/pageSize*pageSize); err != nil {
		t.Fatal(err)
	}
	r := checkRecovered(t, f, false)
	if r.Lost < 0 && r.Salvaged > 0 {
		t.Fatalf("salvaged %d records without knowing what the file held", r.Salvaged)
	}
}

// Both meta pages damaged: bbolt cannot open the file at all. It is moved
// aside and a fresh one started; what it held is unknown.
func TestStore_DamagedMetaPagesReset(t *testing.T) {
	f := fillFile(t, 2000)
	overwritePages(t, f.path, []int{0, 1}, 3)
	r := checkRecovered(t, f, false)
	if r.Lost != -1 {
		t.Fatalf("lost = %d for a file whose meta pages are gone, want unknown (-1)", r.Lost)
	}
}

// A file damaged while the agent runs (a page overwritten under it): the
// next operation that meets it reports damage instead of crashing, the
// writer moves the file aside and salvages it, and the buffer goes on.
func TestStore_DamageAtRunTimeResets(t *testing.T) {
	f := fillFile(t, 6000)
	s := open(t, f.path, Options{})
	pages := inUsePagesOpen(t, s)
	mid := len(pages) / 2
	overwritePages(t, f.path, pages[mid:mid+4], 5)
	deadline := time.Now().Add(30 * time.Second)
	for s.Reset() == nil {
		if time.Now().After(deadline) {
			t.Fatal("damage at run time never reset the file")
		}
		_, _, _ = s.Form(Telemetry, 100, 0, joinBuild)
		_, _ = s.Stats()
		_ = s.AppendAsync(Telemetry, t0, []byte(`{"live":1}`), nil)
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Append(context.Background(), Telemetry, t0, []byte(`{"n":"after"}`)); err != nil {
		t.Fatal(err)
	}
	t.Logf("run-time reset %+v", *s.Reset())
}

func inUsePagesOpen(t *testing.T, s *Store) []int {
	t.Helper()
	var ids []int
	err := s.view(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "leaf" {
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

const envFaultHelper = "HAZMON_STORE_FAULT_HELPER"

// TestFaultHelper is not a test: re-executed by
// TestStore_PanicOnFaultMatters, it reads a bbolt file truncated under its
// mapping, with guard ("guard") or with a bare recover ("bare").
func TestFaultHelper(t *testing.T) {
	mode, path := os.Getenv(envFaultHelper), os.Getenv(envHelperPath)
	if mode == "" {
		t.Skip("helper process for TestStore_PanicOnFaultMatters")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	if err := os.Truncate(path, 2*pageSize); err != nil { // the pages go, the mapping stays
		fmt.Println("truncate:", err)
		os.Exit(3)
	}
	read := func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(itemsBucket(Telemetry)).ForEach(func(k, v []byte) error { return nil })
		})
	}
	switch mode {
	case "guard":
		fmt.Println("guard:", guard(read))
	default:
		func() {
			defer func() { fmt.Println("bare recover:", recover()) }()
			fmt.Println("bare:", read())
		}()
	}
	os.Exit(0)
}

// Reading a page outside the file through bbolt's mapping is a fault
// (SIGBUS): with a bare recover the process dies ("fatal error" /
// "unexpected fault address"), under guard (panic-on-fault) it is an
// error reporting damage.
func TestStore_PanicOnFaultMatters(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, mode := range []string{"guard", "bare"} {
		f := fillFile(t, 6000)
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultHelper$")
		cmd.Env = append(os.Environ(), envFaultHelper+"="+mode, envHelperPath+"="+f.path)
		out, err := cmd.CombinedOutput()
		switch mode {
		case "guard":
			if err != nil || !strings.Contains(string(out), "guard: buffer file damaged") {
				t.Fatalf("under guard: %v\n%s", err, out)
			}
		default:
			if err == nil || !strings.Contains(string(out), "fault") {
				t.Fatalf("a bare recover survived the fault (the test proves nothing): %v\n%s", err, out)
			}
		}
		t.Logf("%s: %v: %s", mode, err, firstLine(string(out)))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// testLogger logs the store's errors into the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
