package mbslave_test

import (
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// TestBank_DropEveryThirdReply: with DropEvery(3) the 3rd and 6th
// requests get no reply (the client times out) and the others do; a
// dropped write is still executed, as when a reply is lost on the line.
func TestBank_DropEveryThirdReply(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 7)
	b.DropEvery(1, 3)
	h := modbus.NewTCPClientHandler(mbslavetest.StartTCP(t, b))
	h.SlaveId, h.Timeout = 1, 200*time.Millisecond
	defer h.Close()
	c := modbus.NewClient(h)
	var lost []int
	for i := 1; i <= 6; i++ {
		var err error
		if i == 3 {
			_, err = c.WriteSingleCoil(5, 0xFF00)
		} else {
			_, err = c.ReadHoldingRegisters(0, 1)
		}
		if err != nil {
			lost = append(lost, i)
			h.Close() // goburrow reads a late reply as the next one's; start clean
		}
	}
	if len(lost) != 2 || lost[0] != 3 || lost[1] != 6 {
		t.Fatalf("requests without a reply: %v, want [3 6]", lost)
	}
	if b.Dropped(1) != 2 || !b.Coil(1, 5) {
		t.Errorf("dropped %d, coil 5 = %v; want 2 dropped, the dropped write executed", b.Dropped(1), b.Coil(1, 5))
	}
	b.DropEvery(1, 0)
	for range 4 {
		if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
			t.Fatalf("after DropEvery(1, 0): %v", err)
		}
	}
}
