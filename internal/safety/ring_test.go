package safety

import "testing"

// A ring grows as it fills, keeps FIFO order across growth with its
// oldest element anywhere in the buffer, and refuses past its capacity.
func TestRing_GrowsToItsCapacityInOrderThenRefuses(t *testing.T) {
	const capacity = 300
	r := newRing[int](capacity)
	if len(r.buf) != ringStart {
		t.Fatalf("new ring of capacity %d holds a buffer of %d, want %d", capacity, len(r.buf), ringStart)
	}
	next, want := 0, 0
	for range 10 { // wrap the head around before growing
		for range 40 {
			if !r.push(next) {
				t.Fatalf("push %d refused with %d queued", next, r.len())
			}
			next++
		}
		for _, v := range r.popTo(nil, 35) {
			if v != want {
				t.Fatalf("popped %d, want %d", v, want)
			}
			want++
		}
	}
	for r.len() < capacity {
		if !r.push(next) {
			t.Fatalf("push %d refused with %d of %d queued", next, r.len(), capacity)
		}
		next++
	}
	if r.push(next) || len(r.buf) != capacity {
		t.Fatalf("full ring: push accepted or buffer %d (capacity %d)", len(r.buf), capacity)
	}
	for _, v := range r.popTo(nil, 0) {
		if v != want {
			t.Fatalf("popped %d, want %d", v, want)
		}
		want++
	}
	if want != next {
		t.Fatalf("popped up to %d, pushed up to %d", want, next)
	}
}
