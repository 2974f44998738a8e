package app

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/store"
)

// ioErrorProxy relays Modbus TCP to target and, on every nth request
// (one client write = one request: the poller waits for each reply),
// closes both connections instead of forwarding it: an I/O error at the
// agent.
type ioErrorProxy struct {
	ln       net.Listener
	requests atomic.Int64
	cuts     atomic.Int64
	wg       sync.WaitGroup
}

func newIOErrorProxy(t *testing.T, target string, nth int64) *ioErrorProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ioErrorProxy{ln: ln}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns[c], conns[up] = true, true
			mu.Unlock()
			p.wg.Add(2)
			go func() { // agent → slave
				defer p.wg.Done()
				defer c.Close()
				defer up.Close()
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if p.requests.Add(1)%nth == 0 {
							p.cuts.Add(1)
							return
						}
						if _, err := up.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { // slave → agent
				defer p.wg.Done()
				defer c.Close()
				buf := make([]byte, 512)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// S4: polling survives a long outage. No broker for the whole run and an
// I/O error on every 50th Modbus request: polling and rules stay alive and
// the backlog stays within its cap. Scaled: 13 h of 1 Hz polling (about
// 47 000 polls per sensor) is replaced by 20 sensors polled every 20 ms
// into the smallest cap the config accepts (1 MiB), so the buffer reaches
// its cap within seconds and keeps overflowing for 4 s more; the I/O error
// rate (1 in 50 requests) is the case's own.
func TestCases_S4LongOutageWithIOErrors(t *testing.T) {
	const sensors = 20
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	for i := 0; i < sensors; i++ {
		bank.SetHolding(1, uint16(i*200), 50)
	}
	proxy := newIOErrorProxy(t, mbslavetest.StartTCP(t, bank), 50)
	var sb strings.Builder
	for i := 0; i < sensors; i++ {
		// Registers 200 apart: adjacent ones would coalesce into one request; one
		// request per sensor keeps the request count (and the 1-in-50
		// errors) per reading as in the field.
		fmt.Fprintf(&sb, "  - {id: PRESSURE-TRANSMITTER-WITH-A-LONG-TAG-%02d, type: pressure, bus: plc, slave: 1, table: holding, address: %d, format: uint16, unit: kPa, interval: 20ms, range: [0, 1000], rules: [{level: alarm, above: 100}]}\n", i, i*200)
	}
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-s4, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:%d"], keepalive: 2s, connect_timeout: 500ms}
buffer: {max_bytes: 1048576}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
sensors:
%s`, t.TempDir(), freePort(t), proxy.ln.Addr().String(), sb.String()))
	a, _ := runApp(t, cfg)

	stats := func() store.Stats {
		st, err := a.buffer().Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitFor(t, 120*time.Second, "the buffer reaching its 1 MiB cap", func() bool { return stats().Streams[store.Telemetry].Evicted > 0 })
	time.Sleep(4 * time.Second) // keep overflowing
	st := stats()
	if st.Bytes > cfg.Buffer.MaxBytes {
		t.Fatalf("backlog %d bytes, above its cap %d", st.Bytes, cfg.Buffer.MaxBytes)
	}
	if proxy.cuts.Load() < 5 {
		t.Fatalf("only %d I/O errors injected: the case was not exercised", proxy.cuts.Load())
	}
	// Polling is alive at the end: requests keep reaching the slave and
	// readings keep entering the buffer (the evicted count grows).
	r0, ev0 := bank.Requests(1), st.Streams[store.Telemetry].Evicted
	waitFor(t, 10*time.Second, "polling still running", func() bool {
		return bank.Requests(1) > r0+100 && stats().Streams[store.Telemetry].Evicted > ev0+100
	})
	// Rules are alive: one sensor crosses its alarm limit; the alarm is
	// raised and buffered (the broker is still absent).
	// (The I/O errors also raise and clear fault alarms: look for the
	// level "alarm" of sensor 07 itself.)
	bank.SetHolding(1, 7*200, 150)
	waitFor(t, 10*time.Second, "the alarm of a sensor above its limit", func() bool {
		items, err := a.buffer().Pending(store.Alarm, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			d := string(it.Data)
			if strings.Contains(d, `"sensor":"PRESSURE-TRANSMITTER-WITH-A-LONG-TAG-07"`) && strings.Contains(d, `"level":"alarm"`) && strings.Contains(d, `"state":"raised"`) {
				return true
			}
		}
		return false
	})
	if st := stats(); st.Bytes > cfg.Buffer.MaxBytes {
		t.Fatalf("backlog %d bytes, above its cap %d", st.Bytes, cfg.Buffer.MaxBytes)
	}
	t.Logf("%d Modbus requests, %d I/O errors, %d readings evicted, buffer %d bytes (cap %d)",
		proxy.requests.Load(), proxy.cuts.Load(), stats().Streams[store.Telemetry].Evicted, stats().Bytes, cfg.Buffer.MaxBytes)
}
