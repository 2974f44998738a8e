package mbslave

import (
	"testing"
	"time"
)

// TestSlip_KeepsTheLargestOvershootUntilReset: Slip is the worst overshoot
// noted since ResetSlip; a timing met early counts as none.
func TestSlip_KeepsTheLargestOvershootUntilReset(t *testing.T) {
	b := NewBank()
	b.slip.note(3*time.Millisecond, 5*time.Millisecond)
	if got := b.Slip(); got != 0 {
		t.Fatalf("early write: slip %v, want 0", got)
	}
	b.slip.note(9*time.Millisecond, 5*time.Millisecond)
	b.slip.note(6*time.Millisecond, 5*time.Millisecond)
	if got := b.Slip(); got != 4*time.Millisecond {
		t.Fatalf("slip %v, want the larger 4ms", got)
	}
	b.ResetSlip()
	if got := b.Slip(); got != 0 {
		t.Fatalf("after ResetSlip: %v", got)
	}
}
