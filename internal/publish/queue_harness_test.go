package publish

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// faults is what a case injects into the fault-injecting store.
type faults struct {
	mu        sync.Mutex
	commitErr error         // returned by every commit while set
	panicNext bool          // the next commit panics inside bbolt
	stall     time.Duration // the next commit stalls this long
	clock     time.Duration // wall-clock offset
}

func (f *faults) set(fn func(*faults)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *faults) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Add(f.clock)
}

func (f *faults) beforeCommit() {
	f.mu.Lock()
	d := f.stall
	f.stall = 0
	f.mu.Unlock()
	time.Sleep(d)
}

func (f *faults) fault(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op != "commit" {
		return nil
	}
	if f.panicNext {
		f.panicNext = false
		panic("injected: bbolt assertion failed")
	}
	return f.commitErr
}

// queueKind is one form of the queue.
type queueKind struct {
	name   string
	inject bool // faults through the hooks (else made real, where the case can)
	memory bool // no file at all
	// group: the fault-injecting file with a 200 ms group-commit window (the agent's
	// default buffer.commit_interval)
	group bool
}

var queueKinds = []queueKind{{name: "bbolt"}, {name: "group-commit", inject: true, group: true}, {name: "fault-injecting", inject: true}, {name: "memory", memory: true}}

// harness is one case's queue and consumer.
type harness struct {
	t    *testing.T
	kind queueKind
	f    *faults
	dir  string
	path string
	q    *store.Store
	p    *Publisher
	c    *consumer
}

func (h *harness) opts() store.Options {
	o := store.Options{Logger: quiet, Now: h.f.now, BeforeCommit: h.f.beforeCommit, MaxAge: time.Hour,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, MinFree: -1}
	if h.kind.inject {
		o.Fault = h.f.fault
	}
	if h.kind.group {
		o.CommitInterval = 200 * time.Millisecond
	}
	return o
}

func newHarness(t *testing.T, k queueKind) *harness {
	h := &harness{t: t, kind: k, f: &faults{}, dir: t.TempDir()}
	h.path = filepath.Join(h.dir, "buffer.db")
	if k.memory {
		blocker := filepath.Join(h.dir, "not-a-dir")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		h.path = filepath.Join(blocker, "buffer.db") // its folder cannot be created
	}
	h.open()
	return h
}

func (h *harness) open() {
	q, err := store.Open(h.path, h.opts())
	if err != nil {
		h.t.Fatal(err)
	}
	h.q = q
	h.t.Cleanup(func() { q.Close() })
	if h.kind.memory {
		if ok, _ := q.Health(); ok {
			h.t.Fatal("the memory-only store says it is healthy")
		}
	}
	p, err := New(q, Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "site-0001", Agent: "gw-01", Logger: quiet})
	if err != nil {
		h.t.Fatal(err)
	}
	h.p = p
	if h.c == nil {
		h.c = newConsumer(h.t)
	}
	h.c.run(h.t, p, q)
}

func (h *harness) close() {
	h.c.stop()
	if err := h.q.Close(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) add(stream store.Stream, n int) []uint64 {
	h.t.Helper()
	var recs []uint64
	for range n {
		now := h.f.now()
		var data []byte
		switch stream {
		case store.Telemetry:
			data = reading(len(recs), now)
		case store.Alarm:
			v, lim := 1.6, 1.5
			data, _ = contract.Marshal(contract.Alarm{AlarmID: fmt.Sprintf("CH4-101/cutoff/high/%d", now.UnixNano()), Sensor: "CH4-101",
				Level: "cutoff", Direction: "high", State: "raised", TS: now.UnixMilli(), Value: &v, Limit: &lim, Outputs: []string{}})
		default:
			data, _ = contract.Marshal(contract.Event{Type: contract.EventClockStep, TS: now.UnixMilli(), Detail: "test"})
		}
		if err := h.q.AppendAsync(stream, now, data, nil); err != nil {
			h.t.Fatal(err)
		}
		id, _ := h.q.LastID(stream)
		recs = append(recs, id)
		h.c.appended(stream, id)
	}
	return recs
}

// drained waits until the consumer has every record appended, or a
// data_loss names it, and checks the stream invariants.
func (h *harness) drained(within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for !h.c.complete(h.q) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not drained within %v: %s", h.kind.name, within, h.c.summary(h.q))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.c.check(h.t, h.q)
}
