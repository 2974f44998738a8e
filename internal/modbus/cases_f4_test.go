package modbus

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// F4: slaves 1 and 2 on one serial port, both scheduled in the same
// millisecond every 500 ms; slave 2 is dead (no reply, 1 s timeout). The
// slave end of the pty reads every request frame and stamps its arrival:
// the poller must never start a request while another transaction is
// open, so after a request to the dead slave 2 nothing arrives for the
// whole 1 s timeout, and after a request to slave 1 nothing arrives
// before its reply was sent. Slave 1 is delayed by at most one timeout,
// and slave 2 backs off (fewer probes than ticks).
func TestCases_F4OneTransactionAtATime(t *testing.T) {
	sl, dev := newScriptSlave(t)
	req1 := fromHex(t, "01 03 00 00 00 01 84 0A")
	req2 := fromHex(t, "02 03 00 00 00 01 84 39")
	type arrival struct {
		slave    byte
		at, done time.Time // first byte in; reply written (zero for slave 2)
	}
	var mu sync.Mutex
	var log []arrival
	stop := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		buf := make([]byte, 8)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sl.f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := sl.f.Read(buf[:1])
			if n == 0 || err != nil {
				continue
			}
			at := time.Now()
			sl.f.SetReadDeadline(time.Now().Add(time.Second))
			got := 1
			for got < 8 {
				n, err := sl.f.Read(buf[got:])
				got += n
				if err != nil {
					break
				}
			}
			a := arrival{slave: buf[0], at: at}
			switch {
			case got == 8 && bytes.Equal(buf, req1):
				time.Sleep(5 * time.Millisecond) // the slave's turnaround
				a.done, _ = sl.send(withCRC(1, 3, 2, 0, 42))
			case got == 8 && bytes.Equal(buf, req2): // dead: no reply
			default:
				t.Errorf("garbled request on the wire: % X (two requests at once?)", buf[:got])
			}
			mu.Lock()
			log = append(log, a)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-served })
	sensors := []config.Sensor{
		{ID: "S1", Bus: "b", Slave: 1, Table: TableHolding, Format: "uint16", Interval: ms(500)},
		{ID: "S2", Bus: "b", Slave: 2, Table: TableHolding, Format: "uint16", Interval: ms(500)},
	}
	const timeout = time.Second
	_, s := startPoller(t, config.Bus{Name: "b", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: config.Duration(timeout)}, sensors)
	time.Sleep(8 * time.Second)

	mu.Lock()
	arrivals := append([]arrival(nil), log...)
	mu.Unlock()
	probes := 0
	for i := 1; i < len(arrivals); i++ {
		prev, cur := arrivals[i-1], arrivals[i]
		switch prev.slave {
		case 2:
			// The transaction with the dead slave stays open for the whole
			// timeout (a little slack for the pty's own clock).
			if gap := cur.at.Sub(prev.at); gap < timeout-50*time.Millisecond {
				t.Errorf("request to slave %d arrived %v after the unanswered request to slave 2 (timeout %v): two transactions open at once", cur.slave, gap, timeout)
			}
		case 1:
			if cur.at.Before(prev.done) {
				t.Errorf("request to slave %d arrived before slave 1's reply was sent", cur.slave)
			}
		}
	}
	var last1 time.Time
	for _, a := range arrivals {
		if a.slave == 2 {
			probes++
			continue
		}
		// Slave 1 waits at most one tick plus one timeout of slave 2 (plus slack).
		if !last1.IsZero() && a.at.Sub(last1) > 500*time.Millisecond+timeout+time.Second {
			t.Errorf("slave 1 requests %v apart", a.at.Sub(last1))
		}
		last1 = a.at
	}
	// ~16 ticks in 8 s; backoff 1 s, 2 s, 4 s after each timeout gives 2..4 probes.
	if probes < 2 || probes > 4 {
		t.Errorf("slave 2 got %d requests in 8 s, want 2..4 (backing off)", probes)
	}
	rs := s.of("S1")
	if len(rs) < 8 {
		t.Errorf("slave 1: %d readings in 8 s, want >= 8", len(rs))
	}
	for _, r := range rs {
		if !r.Valid() || r.Value != 42 {
			t.Fatalf("slave 1 reading %+v", r)
		}
	}
	for _, r := range s.of("S2") {
		if r.Status != reading.StatusFault {
			t.Fatalf("slave 2 reading %+v, want a fault", r)
		}
	}
	t.Logf("%d requests on the wire, %d to the dead slave 2", len(arrivals), probes)
}
