package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// 20 kill -9 at random moments while 4 sensors are polled every 50 ms.
//
// "Committed" is judged from outside: after each kill the buffer file is
// opened read-only and fully checked (it must open cleanly, no reset), and
// every reading it holds is committed by definition, as is every reading
// the subscriber had already received. After the last restart all of them
// must reach the subscriber. Readings never committed may only be missing
// right around a kill (the batch being written and the poll in flight):
// any longer gap in a sensor's series must cover a kill. The recorder
// checks seq across restarts: a new seq is always above every seq seen
// before, a repeat is byte-identical.
func TestCrash_KillNineUnderLoad(t *testing.T) {
	b := brokertest.Start(t)
	// Every other round the link goes dead (silently) half-way, so the
	// kill finds a backlog: pending readings and messages in flight.
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := startSite(t, 4)
	rec := newRecorder(t, b, "bureau-crash", s)
	dataDir := t.TempDir()
	file := filepath.Join(dataDir, "buffer.db")
	cfg := agentConfig{Brokers: []string{"tcp://" + proxy.Addr()}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 4, Interval: "50ms", BatchMax: 10}.write(t)

	type window struct{ from, to int64 } // kill → next agent running, unix ms
	var kills []window
	committed := map[key]bool{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	const rounds = 20
	for round := 0; round < rounds; round++ {
		a := startAgent(t, cfg)
		if len(kills) > 0 {
			kills[len(kills)-1].to = time.Now().UnixMilli()
		}
		run := time.Duration(200+rng.IntN(1300)) * time.Millisecond
		dead := round%2 == 1
		if dead {
			time.Sleep(run / 2)
			proxy.SetBlackhole(true)
			time.Sleep(run / 2)
		} else {
			time.Sleep(run)
		}
		before := rec.snapshot()
		killAt := time.Now()
		a.kill()
		proxy.SetBlackhole(false)
		proxy.CutAll()
		kills = append(kills, window{from: killAt.UnixMilli(), to: time.Now().Add(wait).UnixMilli()})

		inFile := fileReadings(t, file)
		for k := range inFile {
			committed[k] = true
		}
		for k := range before {
			committed[k] = true
		}
		if m, _ := filepath.Glob(file + ".corrupt-*"); len(m) > 0 {
			t.Fatalf("round %d: the buffer was moved aside after kill -9: %v", round, m)
		}
		t.Logf("round %d: killed after %v running (dead link: %v); %d readings in the file, %d received so far",
			round, run, dead, len(inFile), len(before))
	}
	a := startAgent(t, cfg)
	kills[len(kills)-1].to = time.Now().UnixMilli()
	rec.until(t, "every committed reading", func() bool {
		got := rec.snapshot()
		for k := range committed {
			if _, ok := got[k]; !ok {
				return false
			}
		}
		return true
	})
	a.term()
	rec.check(t)

	got := rec.snapshot()
	// Gaps: a reading was lost only if it was never committed; that may
	// happen only in the moments before a kill.
	coveredByKill := func(from, to int64) bool {
		for _, k := range kills {
			// The lost readings were sampled before the kill (at most a
			// commit batch and a poll) and the next ones after the restart.
			if from >= k.from-1500 && from <= k.from+100 && to >= k.from && to <= k.to+2000 {
				return true
			}
		}
		return false
	}
	var gaps []string
	for sensor, ts := range perSensor(got) {
		for i := 1; i < len(ts); i++ {
			if ts[i]-ts[i-1] > 400 && !coveredByKill(ts[i-1], ts[i]) {
				gaps = append(gaps, sensor+": "+time.UnixMilli(ts[i-1]).Format(time.StampMilli)+" → "+time.UnixMilli(ts[i]).Format(time.StampMilli))
			}
		}
	}
	sort.Strings(gaps)
	if len(gaps) > 0 {
		t.Fatalf("readings missing outside any kill window:\n%s", strings.Join(gaps, "\n"))
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	t.Logf("%d kills: %d committed readings all delivered; %d readings, %d messages, %d exact repeats, max seq %v",
		rounds, len(committed), len(got), rec.msgs, rec.repeats, rec.maxSeq)
}
