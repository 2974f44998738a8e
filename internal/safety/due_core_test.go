package safety

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// stampLane records each command with its Core's clock; the test drives
// the Core by hand, so nothing confirms by itself.
type stampLane struct {
	clk  *fakeClock
	log  *[]string
	last Command
}

func (l *stampLane) Command(c Command) {
	l.last = c
	*l.log = append(*l.log, fmt.Sprintf("%v command %+v", l.clk.Now().Sub(t0), c))
}

// lockstepCore is one of two Cores the lockstep test steps by hand, the
// way Run would: on a wake-up (a reading, an observation, a request) and
// on its tickers.
type lockstepCore struct {
	c     *Core
	clk   *fakeClock
	src   *Source
	lanes map[string]*stampLane
	log   []string
	items []Item

	everyTick bool // tick every TickEvery whatever fastTicks says
}

func newLockstepCore(t *testing.T, spec Spec, opts Options) *lockstepCore {
	t.Helper()
	lc := &lockstepCore{clk: &fakeClock{now: t0}, lanes: map[string]*stampLane{}}
	lanes := map[string]Lane{}
	for _, o := range spec.Outputs {
		l := &stampLane{clk: lc.clk, log: &lc.log}
		lc.lanes[o.Name], lanes[o.Name] = l, l
	}
	opts.Clock = lc.clk
	c, err := New(spec, lanes, opts)
	if err != nil {
		t.Fatal(err)
	}
	lc.c, lc.src = c, c.NewSource("test")
	return lc
}

// step runs one loop iteration (a wake-up or a tick) and logs what the
// Core put out; readings still queued wake it again, as in Run.
func (lc *lockstepCore) step() {
	lc.c.step()
	for len(lc.c.wake) > 0 {
		<-lc.c.wake
		lc.c.step()
	}
	if lc.everyTick { // the loop before IdleTickEvery
		lc.c.st.fast = true
		lc.c.st.nextTick = lc.c.nextTick(lc.clk.Now())
	}
	lc.items = lc.c.Outbox().Take(lc.items[:0])
	at := lc.clk.Now().Sub(t0)
	for _, it := range lc.items {
		switch it.Kind {
		case ItemReading:
			lc.log = append(lc.log, fmt.Sprintf("%v reading %s %s", at, it.Reading.Sensor, it.Reading.Status))
		case ItemAlarm:
			a := it.Alarm
			lc.log = append(lc.log, fmt.Sprintf("%v alarm %s %s %s %s at %v outputs %v: %s", at, a.ID, a.Sensor, a.Level, a.State, a.Time.Sub(t0), a.Outputs, a.Reason))
		case ItemEvent:
			e := it.Event
			lc.log = append(lc.log, fmt.Sprintf("%v event %s %s%s at %v: %s", at, e.Type, e.Sensor, e.Output, e.Time.Sub(t0), e.Detail))
		}
	}
}

// call runs a request (TestCut, Restore, Calibrate) the way Run serves it.
func (lc *lockstepCore) call(req func(ctx context.Context) error) {
	served := make(chan struct{})
	go func() { defer close(served); lc.c.serve(<-lc.c.reqs) }()
	err := req(context.Background())
	<-served
	if err != nil {
		lc.log = append(lc.log, fmt.Sprintf("%v refused: %v", lc.clk.Now().Sub(t0), err))
	}
	lc.step()
}

// TestCore_IdleTicksChangeNothing runs two Cores side by side on the same
// random readings, lane observations and technicians' requests, with
// outputs (heartbeats, feed checks, confirmations, tests), a start-up
// hold and settle, calibration and short on-delays: one ticks every
// TickEvery, as the loop did before IdleTickEvery, the other every
// IdleTickEvery and every TickEvery only while fastTicks says so. Every
// command, alarm, event and reading status must be the same at the same
// time: nothing timed falls due while the second one ticks slowly.
func TestCore_IdleTicksChangeNothing(t *testing.T) {
	pick := func(rng *rand.Rand, ds ...time.Duration) time.Duration { return ds[rng.IntN(len(ds))] }
	ms := time.Millisecond
	for seed := range uint64(150) {
		rng := rand.New(rand.NewPCG(seed, 11))
		spec := faceSpec(
			OutputSpec{Name: "K1", Feed: []string{"", "F1"}[rng.IntN(2)], FeedTimeout: pick(rng, 0, 300*ms, time.Second), Heartbeat: pick(rng, 0, 300*ms, time.Second, 2500*ms)},
			OutputSpec{Name: "K2", Feed: []string{"", "F2"}[rng.IntN(2)], FeedTimeout: pick(rng, 0, 700*ms), Heartbeat: pick(rng, 0, 0, 1700*ms)},
		)
		spec.Sensors[0].StaleAfter = pick(rng, 0, time.Second, 2500*ms)
		spec.Sensors = append(spec.Sensors, SensorRules{Sensor: "G", Resolution: 0.1,
			StaleAfter: pick(rng, 0, 1500*ms), FaultUnlockAfter: pick(rng, 50*ms, time.Second), Rules: []Rule{
				{Level: LevelAlarm, Above: f(1), For: pick(rng, 0, 50*ms, 150*ms, 800*ms), Outputs: []string{"K2"}, OnFault: OnFaultCut},
			}})
		opts := Options{RestartSettle: pick(rng, 700*ms, 3*time.Second)}
		if hold := pick(rng, 0, 1300*ms, 4*time.Second); hold > 0 {
			opts.HoldUntil, opts.HoldReason = t0.Add(hold), "unclean stop"
		}
		if rng.IntN(2) == 0 { // active at the last stop: cleared at the settle if not raised again
			opts.PreviousAlarms = []Alarm{{ID: "GONE/fault/1000", Sensor: "GONE", Level: "fault", State: StateRaised}}
		}
		ref, lazy := newLockstepCore(t, spec, opts), newLockstepCore(t, spec, opts)
		ref.everyTick = true
		both := []*lockstepCore{ref, lazy}
		for _, lc := range both {
			lc.step() // Run steps once before it waits
		}
		for step := range 2000 { // 20 s in 10 ms steps
			at := time.Duration(step) * 10 * ms
			for _, lc := range both {
				lc.clk.advance(at - lc.clk.Now().Sub(t0))
			}
			if at%TickEvery == 0 && at > 0 {
				ref.step()
				if lazy.c.st.fast || at%IdleTickEvery == 0 { // the tickers Run waits on
					lazy.step()
				}
			}
			at += 5 * ms // inputs between the ticks: a reading at a tick's very instant is luck
			for _, lc := range both {
				lc.clk.advance(5 * ms)
			}
			now := t0.Add(at)
			switch n := rng.IntN(1000); {
			case n < 40:
				r := reading.Reading{Sensor: []string{"CH4", "G", "F1", "F2"}[rng.IntN(4)], Time: now, Status: reading.StatusNormal}
				switch rng.IntN(7) {
				case 0:
					r.Status, r.Err = reading.StatusFault, "timeout"
				case 1:
					r.Value = math.NaN()
				case 2, 3:
					r.Value = float64(rng.IntN(2)) // a feed contact
				default:
					r.Value = []float64{0.5, 1.2, 1.7}[rng.IntN(3)]
				}
				for _, lc := range both {
					lc.src.Offer(r)
					lc.step()
				}
			case n < 90:
				name := []string{"K1", "K2"}[rng.IntN(2)]
				kind := rng.IntN(4)
				for _, lc := range both {
					last := lc.lanes[name].last
					ob := Observation{Output: name, Gen: last.Gen, Known: true, Energised: !last.Cut}
					switch kind {
					case 0, 1:
						ob.Confirmed = true
					case 2:
						ob.Err = "no reply"
					case 3:
						ob.Energised, ob.Mismatch, ob.Err = false, !last.Cut, "read back cut"
					}
					lc.c.Observe(ob)
					lc.step()
				}
			case n < 93:
				name, d := []string{"K1", "K2"}[rng.IntN(2)], pick(rng, 150*ms, 900*ms, 3*time.Second)
				for _, lc := range both {
					lc.call(func(ctx context.Context) error { return lc.c.TestCut(ctx, name, d) })
				}
			case n < 95:
				name := []string{"K1", "K2"}[rng.IntN(2)]
				for _, lc := range both {
					lc.call(func(ctx context.Context) error { _, err := lc.c.Restore(ctx, name); return err })
				}
			case n < 96:
				until := now.Add(pick(rng, 0, 400*ms, 2*time.Second))
				for _, lc := range both {
					lc.call(func(ctx context.Context) error { return lc.c.Calibrate(ctx, "G", until) })
				}
			}
		}
		for i := range max(len(ref.log), len(lazy.log)) {
			if i >= len(ref.log) || i >= len(lazy.log) || ref.log[i] != lazy.log[i] {
				lo := max(0, i-3)
				t.Fatalf("seed %d: first difference at entry %d\nticking every TickEvery:\n%q\nticking idle when nothing is near:\n%q",
					seed, i, ref.log[lo:min(i+3, len(ref.log))], lazy.log[lo:min(i+3, len(lazy.log))])
			}
		}
	}
}

// TestStep_TicksOnceForEveryTickDespiteLateWakeUps: a ticker's wake-up is
// late by a varying amount, and a reading can wake the loop just after a
// tick; neither may make the next tick wait a whole TickEvery more (the
// loop used to tick only when TickEvery had passed since its last tick,
// so a wake-up 0.1 ms less late than the one before skipped a tick and a
// timer could run out up to 200 ms before it was acted on).
func TestStep_TicksOnceForEveryTickDespiteLateWakeUps(t *testing.T) {
	spec := faceSpec(OutputSpec{Name: "K1", Heartbeat: 300 * time.Millisecond}) // the loop ticks every TickEvery
	lc := newLockstepCore(t, spec, Options{})
	ticks := 0
	stepAt := func(at time.Duration, want bool) {
		t.Helper()
		lc.clk.advance(at - lc.clk.Now().Sub(t0))
		before := lc.c.st.lastTick
		lc.step()
		if ticked := !lc.c.st.lastTick.Equal(before); ticked != want {
			t.Fatalf("step at %v: ticked %v, want %v", at, ticked, want)
		}
		if want {
			ticks++
		}
	}
	ms := time.Millisecond
	stepAt(100*ms+900*time.Microsecond, true) // a late wake-up
	stepAt(200*ms+100*time.Microsecond, true) // a less late one, 99.2 ms after
	stepAt(201*ms, false)                     // a reading just after a tick
	stepAt(300*ms, true)                      // on time
	stepAt(350*ms, false)                     // a reading between ticks
	stepAt(399*ms+999*time.Microsecond, false)
	stepAt(400*ms, true)
	stepAt(400*ms, false) // a second wake-up at the same instant
	if ticks != 4 {
		t.Fatalf("%d ticks, want 4", ticks)
	}
}

// TestHeartbeat_LateWakeUpsDoNotStretchThePeriod: each toggle is dated by
// the tick it falls on, so wake-ups late by a varying amount give a 1 s
// heartbeat every 1 s, not 1.1 s every other time.
func TestHeartbeat_LateWakeUpsDoNotStretchThePeriod(t *testing.T) {
	lc := newLockstepCore(t, faceSpec(OutputSpec{Name: "K1", Heartbeat: time.Second}), Options{})
	var beats []time.Duration
	last := uint64(0)
	for k := 1; k <= 40; k++ {
		late := 500 * time.Microsecond
		switch k % 20 {
		case 1:
			late = 900 * time.Microsecond
		case 11:
			late = 100 * time.Microsecond // 0.8 ms less late than the beat before
		}
		lc.clk.advance(time.Duration(k)*TickEvery + late - lc.clk.Now().Sub(t0))
		lc.step()
		if b := lc.lanes["K1"].last.Beat; b != last {
			last = b
			beats = append(beats, time.Duration(k)*TickEvery)
		}
	}
	for i := 1; i < len(beats); i++ {
		if d := beats[i] - beats[i-1]; d != time.Second {
			t.Fatalf("toggles at %v: %v apart; want 1 s", beats, d)
		}
	}
	if len(beats) < 3 {
		t.Fatalf("toggles at %v; want one a second", beats)
	}
}
