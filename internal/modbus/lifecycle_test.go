package modbus

import (
	"context"
	"errors"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// Run stops within about one transaction timeout of cancel, even with a
// request on the wire; afterwards Read fails with ErrClosed and a second
// Run is refused.
func TestPoller_StopAndClosed(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetFault(1, mbslave.Fault{Silent: true})
	dev := mbslavetest.StartRTU(t, bank, 0)
	s := &sink{}
	p, err := NewPoller(config.Bus{Name: "b", Protocol: "rtu", Device: dev, Timeout: ms(1000)},
		[]config.Sensor{{ID: "S", Bus: "b", Slave: 1, Table: TableHolding, Format: "uint16", Interval: ms(100)}}, s.emit, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for bank.Requests(1) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel (timeout is 1 s)")
	}
	if _, err := p.Read(context.Background(), 1, TableHolding, 0, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after stop: %v, want ErrClosed", err)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
	if st := p.Stats(); st.Connected {
		t.Errorf("stats after stop %+v", st)
	}
}

// BenchmarkRTU_ReadHolding compares a 10-register FC03 transaction at
// 115200 baud (slave paced at line speed) through our transporter and
// through goburrow's own, which sleeps a computed delay instead of reading
// to the end of the frame.
func BenchmarkRTU_ReadHolding(b *testing.B) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	dev := mbslavetest.StartRTU(b, bank, 115200)
	b.Run("hazmon", func(b *testing.B) {
		h, cl, _ := rtuClient(b, dev, 115200, time.Second)
		h.SlaveId = 1
		for b.Loop() {
			if _, err := cl.ReadHoldingRegisters(0, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goburrow", func(b *testing.B) {
		h := gmodbus.NewRTUClientHandler(dev)
		h.BaudRate, h.DataBits, h.Parity, h.StopBits = 115200, 8, "N", 1
		h.SlaveId = 1
		h.Timeout = time.Second
		if err := h.Connect(); err != nil {
			b.Skipf("goburrow cannot open the pty: %v", err)
		}
		defer h.Close()
		cl := gmodbus.NewClient(h)
		for b.Loop() {
			if _, err := cl.ReadHoldingRegisters(0, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
}
