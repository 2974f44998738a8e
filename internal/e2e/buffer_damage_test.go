package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// The eviction a consumer can audit. The agent process with a 1 MiB
// buffer, 10 sensors every 20 ms and the broker down until the buffer
// has overflowed; then the broker returns. A consumer written from the
// README alone (recConsumer: it keys records by stream and rec, nothing
// else) finds every gap in rec, and for each the data_loss event with the
// same stream whose rec range covers it; and every data_loss range is a
// gap (nothing in it arrived).
func TestBufferCap_ConsumerFindsEveryGap(t *testing.T) {
	b := brokertest.Start(t)
	s := startSite(t, 10)
	rec := newRecorder(t, b, "bureau-gaps", s)
	rc := newRecConsumer(t, b)
	dataDir := t.TempDir()
	cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 10, Interval: "20ms",
		SensorName: "GAS-DETECTOR-WITH-A-LONG-TAG-FOR-THE-BUFFER-CAP", Unit: "normal-cubic-metres-per-hour-at-20C-101kPa",
		MaxBytes: 1 << 20}.write(t)
	a := startAgent(t, cfg)
	rec.until(t, "live readings", func() bool { return len(rec.snapshot()) >= 50 })
	b.Stop()
	deadline := time.Now().Add(wait)
	for len(a.logLines("buffer evicted records")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the 1 MiB buffer did not overflow within %v", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // keep overflowing
	backAt := time.Now()
	b.Start()
	rec.until(t, "readings sampled 2 s after the link came back", func() bool {
		for _, ts := range perSensor(rec.snapshot()) {
			if len(ts) == 0 || ts[len(ts)-1] < backAt.Add(2*time.Second).UnixMilli() {
				return false
			}
		}
		return true
	})
	a.term()
	rec.check(t)
	var gaps []span
	eventually(func() bool { gaps = rc.unexplainedGaps(); return len(gaps) == 0 })
	if len(gaps) > 0 {
		t.Fatalf("gaps in rec no data_loss event explains: %v\n%s", gaps, rc.summary())
	}
	if rc.named() == 0 {
		t.Fatalf("no data_loss event names any record: %s", rc.summary())
	}
	if bad := rc.lossesNotGaps(); len(bad) > 0 {
		t.Fatalf("data_loss ranges with records that did arrive: %v", bad)
	}
	t.Log(rc.summary())
}

// span is an inclusive range of record numbers.
type span struct{ from, to uint64 }

// recConsumer is the README's consumer: per (epoch, stream) it keeps the
// record numbers received (telemetry and alarms "rec":[first,last], events
// "id"), deduplicating repeats, and the data_loss events' (stream, rec).
// A gap is a record number below the highest received that never came; a
// gap is explained when a data_loss event of that stream names it.
type recConsumer struct {
	mu     sync.Mutex
	got    map[string]map[uint64]bool // stream → recs received
	losses []contract.Event
	msgs   int
}

func newRecConsumer(t *testing.T, b *brokertest.Broker) *recConsumer {
	c := &recConsumer{got: map[string]map[uint64]bool{}}
	ch := b.Subscribe(t, "bureau-readme", topics)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ch:
				c.add(m)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *recConsumer) add(m brokertest.Message) {
	stream := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
	var h struct {
		Rec    []uint64 `json:"rec"`
		ID     uint64   `json:"id"`
		Type   string   `json:"type"`
		Stream string   `json:"stream"`
	}
	if json.Unmarshal(m.Payload, &h) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs++
	if c.got[stream] == nil {
		c.got[stream] = map[uint64]bool{}
	}
	switch stream {
	case contract.KindTelemetry, contract.KindAlarm:
		if len(h.Rec) == 2 {
			for r := h.Rec[0]; r <= h.Rec[1]; r++ {
				c.got[stream][r] = true
			}
		}
	case contract.KindEvent:
		c.got[stream][h.ID] = true
		if h.Type == contract.EventDataLoss {
			var e contract.Event
			_ = json.Unmarshal(m.Payload, &e)
			c.losses = append(c.losses, e)
		}
	}
}

func (c *recConsumer) unexplainedGaps() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []span
	for stream, got := range c.got {
		var top uint64
		for r := range got {
			top = max(top, r)
		}
		for r := uint64(1); r <= top; r++ {
			if got[r] || c.explains(stream, r) {
				continue
			}
			if n := len(out); n > 0 && out[n-1].to+1 == r {
				out[n-1].to = r
			} else {
				out = append(out, span{r, r})
			}
		}
	}
	return out
}

func (c *recConsumer) explains(stream string, r uint64) bool {
	for _, e := range c.losses {
		if e.Stream == stream && len(e.Rec) == 2 && r >= e.Rec[0] && r <= e.Rec[1] {
			return true
		}
	}
	return false
}

func (c *recConsumer) lossesNotGaps() []contract.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad []contract.Event
	for _, e := range c.losses {
		for r := e.Rec[0]; len(e.Rec) == 2 && r <= e.Rec[1]; r++ {
			if c.got[e.Stream][r] {
				bad = append(bad, e)
				break
			}
		}
	}
	return bad
}

// named is how many records the data_loss events name.
func (c *recConsumer) named() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, e := range c.losses {
		if len(e.Rec) == 2 {
			n += e.Rec[1] - e.Rec[0] + 1
		}
	}
	return n
}

func (c *recConsumer) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lost uint64
	for _, e := range c.losses {
		if len(e.Rec) == 2 {
			lost += e.Rec[1] - e.Rec[0] + 1
		}
	}
	return fmt.Sprintf("README consumer: %d messages, %d telemetry records, %d data_loss events naming %d records",
		c.msgs, len(c.got[contract.KindTelemetry]), len(c.losses), lost)
}
