package publish

import (
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// M2: order after a reconnect. Readings seq 0..59 at 1 Hz, the port to the
// broker blocked (traffic silently dropped, no reset) from seq 10 to 40.
// Scaled 10× in time: one reading every 100 ms (6 s instead of 60 s), the
// block lasts 3 s, with a 1 s PUBACK timeout so the dead link is noticed
// inside the block as it would be with the default timeout in 30 s. One
// reading per message (BatchMax 1), so every reading has its own seq. The
// checker fails on any new seq lower than one the subscriber already has;
// all 60 readings arrive, in order, with their original timestamps.
func TestCases_M2OrderAfterReconnect(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m2", "hazmon/v1/site-0001/gw-01/#")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	start := time.Now()
	ts := func(i int) time.Time { return start.Add(time.Duration(i) * 100 * time.Millisecond) }
	p, _ := startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.Addr()}, BatchMax: 1,
		KeepAlive: time.Second, ConnectTimeout: time.Second, PublishTimeout: time.Second})
	c := newChecker(t)
	c.until(sub, "online", func() bool { return lastIs(c.statuses, "online") })
	msgs := make(chan brokertest.Message, 1000)
	go func() { // keep reading while the readings are produced
		for m := range sub {
			msgs <- m
		}
	}()
	dropped := false
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for i := 0; i < 60; i++ {
		<-tk.C
		switch i {
		case 10:
			proxy.SetBlackhole(true)
		case 40:
			dropped = !p.Link().Connected || p.Link().LastError != ""
			proxy.SetBlackhole(false)
			proxy.CutAll() // the half-open connections of the blocked period
		}
		appendReadings(t, s, i, 1, ts)
	}
	c.until(msgs, "all 60 readings", func() bool { return len(c.order) == 60 })
	c.checkReadings(60, ts)
	if !dropped {
		t.Error("the link never noticed the block: the case was not exercised")
	}
	if c.maxSeq["telemetry"] < 60 {
		t.Errorf("max telemetry seq %d, want >= 60 (one message per reading)", c.maxSeq["telemetry"])
	}
}
