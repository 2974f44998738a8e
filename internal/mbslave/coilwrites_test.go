package mbslave_test

import (
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// TestBank_CoilWrites records every FC05 write in order, and no failed one.
func TestBank_CoilWrites(t *testing.T) {
	b := mbslave.NewBank()
	b.SetCoil(1, 100, false)
	h := modbus.NewTCPClientHandler(mbslavetest.StartTCP(t, b))
	h.SlaveId, h.Timeout = 1, time.Second
	defer h.Close()
	c := modbus.NewClient(h)
	for _, on := range []uint16{0xFF00, 0x0000, 0xFF00} {
		if _, err := c.WriteSingleCoil(100, on); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WriteSingleCoil(20000, 0xFF00); err == nil { // beyond the unit's size: exception 2
		t.Fatal("write beyond the size accepted")
	}
	got := b.CoilWrites()
	want := []mbslave.CoilWrite{{1, 100, true}, {1, 100, false}, {1, 100, true}}
	if len(got) != len(want) {
		t.Fatalf("writes = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("write %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
