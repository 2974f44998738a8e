package e2e

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

const boltPage = 4096

// oldBacklog writes n fault readings of sensor OLD-1 (a backlog left by an
// earlier run: fault readings carry no value, so the subscriber's value
// checks leave them alone) into the buffer file in dataDir, and returns
// the sample time of the first.
func oldBacklog(t *testing.T, dataDir string, n int) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, "buffer.db"), store.Options{Logger: slog.New(slog.DiscardHandler), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range n {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		b, _ := contract.Marshal(contract.Reading{Sensor: "OLD-1", Type: "flow", TS: ts.UnixMilli(), Unit: "m3/h", Status: "fault",
			Error: "timeout while the link was down, padding the record to a realistic size"})
		if err := st.AppendAsync(store.Telemetry, ts, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// leafPages lists the leaf pages bbolt uses in the closed file (opened
// writable: page types need the freelist loaded).
func leafPages(t *testing.T, path string) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []int
	_ = db.View(func(tx *bolt.Tx) error {
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
	return ids
}

func garbagePages(t *testing.T, path string, ids []int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(11, 13))
	junk := make([]byte, boltPage)
	for _, id := range ids {
		for i := range junk {
			junk[i] = byte(rng.UintN(256))
		}
		if _, err := f.WriteAt(junk, int64(id)*boltPage); err != nil {
			t.Fatal(err)
		}
	}
}

// Through the real binary and Mosquitto: a buffer file damaged in three
// ways (pages in the middle overwritten, the file truncated, both meta
// pages overwritten) is found at start, moved aside, the readable records
// salvaged and sent, a buffer_reset event reports the counts, and the
// agent runs on (one process, no restart) publishing live readings.
func TestBufferDamage_QuarantinedSalvagedAgentRuns(t *testing.T) {
	const backlog = 3000
	damage := map[string]func(t *testing.T, path string){
		"middle pages overwritten": func(t *testing.T, path string) {
			p := leafPages(t, path)
			garbagePages(t, path, p[len(p)/2:len(p)/2+3])
		},
		"truncated": func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2/boltPage*boltPage); err != nil {
				t.Fatal(err)
			}
		},
		"meta pages overwritten": func(t *testing.T, path string) { garbagePages(t, path, []int{0, 1}) },
	}
	for _, name := range []string{"middle pages overwritten", "truncated", "meta pages overwritten"} {
		t.Run(name, func(t *testing.T) {
			b := brokertest.Start(t)
			s := startSite(t, 2)
			rec := newRecorder(t, b, "bureau-damage", s)
			dataDir := t.TempDir()
			oldBacklog(t, dataDir, backlog)
			damage[name](t, filepath.Join(dataDir, "buffer.db"))
			cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 2, Interval: "100ms"}.write(t)
			a := startAgent(t, cfg)
			started := time.Now()
			rec.until(t, "the buffer_reset event and live readings", func() bool {
				if len(rec.eventsOf(contract.EventBufferReset)) == 0 {
					return false
				}
				for sensor, ts := range perSensor(rec.snapshot()) {
					if strings.HasPrefix(sensor, "FT-") && ts[len(ts)-1] > started.Add(time.Second).UnixMilli() {
						return true
					}
				}
				return false
			})
			e := rec.eventsOf(contract.EventBufferReset)[0]
			if e.Reason != "corrupt" || e.Salvaged == nil || e.Epoch != 2 {
				t.Fatalf("buffer_reset = %+v", e)
			}
			if m, _ := filepath.Glob(filepath.Join(dataDir, "buffer.db.corrupt-*")); len(m) != 1 {
				t.Fatalf("damaged file not moved aside: %v", m)
			}
			// The salvaged backlog arrives (all of what the event counts).
			rec.until(t, "the salvaged readings", func() bool {
				n := 0
				for k := range rec.snapshot() {
					if k.sensor == "OLD-1" {
						n++
					}
				}
				return int64(n) == *e.Salvaged
			})
			if e.Lost != nil && *e.Salvaged+*e.Lost != backlog {
				t.Fatalf("salvaged %d + lost %d != %d records the file held", *e.Salvaged, *e.Lost, backlog)
			}
			if name == "middle pages overwritten" && (*e.Salvaged == 0 || e.Lost == nil || *e.Lost == 0) {
				t.Fatalf("three damaged pages: %+v", e)
			}
			time.Sleep(2 * time.Second) // still running, one process
			select {
			case <-a.done:
				t.Fatalf("the agent exited: %v", a.err)
			default:
			}
			if n := strings.Count(a.log.String(), `"msg":"hazmon running"`); n != 1 {
				t.Fatalf("hazmon started %d times", n)
			}
			a.term()
			rec.check(t)
			lost := "unknown"
			if e.Lost != nil {
				lost = fmt.Sprint(*e.Lost)
			}
			t.Logf("%s: salvaged %d of %d, lost %s: %s", name, *e.Salvaged, backlog, lost, e.Detail)
		})
	}
}

// A data_dir where the buffer file cannot be created (buffer.db is a
// directory; or data_dir itself lies under a file, as on a read-only or
// broken card): the agent monitors and publishes live readings, says
// buffer_fault, and reports the buffer degraded.
func TestBufferUnwritable_AgentPublishesLive(t *testing.T) {
	for _, name := range []string{"buffer.db is a directory", "data_dir under a file"} {
		t.Run(name, func(t *testing.T) {
			b := brokertest.Start(t)
			s := startSite(t, 2)
			rec := newRecorder(t, b, "bureau-rofs", s)
			dataDir := t.TempDir()
			sock := filepath.Join(dataDir, "hazmon.sock")
			switch name {
			case "buffer.db is a directory":
				if err := os.Mkdir(filepath.Join(dataDir, "buffer.db"), 0o755); err != nil {
					t.Fatal(err)
				}
			default:
				file := filepath.Join(dataDir, "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				dataDir = filepath.Join(file, "data")
			}
			cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 2, Interval: "100ms"}.write(t)
			a := startAgent(t, cfg)
			started := time.Now()
			rec.until(t, "live readings and the buffer_fault event", func() bool {
				n := 0
				for _, ts := range perSensor(rec.snapshot()) {
					if ts[len(ts)-1] > started.Add(2*time.Second).UnixMilli() {
						n++
					}
				}
				return n == 2 && len(rec.eventsOf(contract.EventBufferFault)) > 0
			})
			e := rec.eventsOf(contract.EventBufferFault)[0]
			if e.Reason != "not_a_file" {
				t.Fatalf("buffer_fault = %+v", e)
			}
			if name == "buffer.db is a directory" { // the control socket lives in the data_dir
				code, out := hazmonCLI(t, "buffer", "stats", "--socket", sock, "--json")
				if code != 0 || !strings.Contains(out, `"degraded": "buffer file unusable`) {
					t.Fatalf("buffer stats (exit %d):\n%s", code, out)
				}
			}
			a.term()
			rec.check(t)
			t.Logf("%s: %d live readings published from memory; %s", name, len(rec.snapshot()), e.Detail)
		})
	}
}
