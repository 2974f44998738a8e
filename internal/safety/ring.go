package safety

// ring is a bounded FIFO. It is not safe for concurrent use: its owner
// guards it. Its buffer starts small and doubles as it fills, up to the
// capacity: the agent's memory follows what is queued (a few hundred
// readings when the consumer keeps up), not the bound (the Core's outbox
// holds 16 384 readings of about 430 bytes: 7 MB).
type ring[T any] struct {
	buf  []T
	head int // index of the oldest element
	n    int
	max  int // capacity
}

// ringStart is the buffer a ring starts with (or its capacity if smaller).
const ringStart = 64

func newRing[T any](capacity int) ring[T] {
	c := max(capacity, 1)
	return ring[T]{buf: make([]T, min(c, ringStart)), max: c}
}

// push appends v; it reports false (and drops v) when the ring holds its
// capacity.
func (r *ring[T]) push(v T) bool {
	if r.n == len(r.buf) {
		if len(r.buf) >= r.max {
			return false
		}
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
	return true
}

// grow doubles the buffer (at most to the capacity), oldest first.
func (r *ring[T]) grow() {
	nb := make([]T, min(2*len(r.buf), r.max))
	k := copy(nb, r.buf[r.head:])
	copy(nb[k:], r.buf[:r.head])
	r.buf, r.head = nb, 0
}

// popTo moves up to limit elements (limit <= 0: all), oldest first, to dst.
func (r *ring[T]) popTo(dst []T, limit int) []T {
	var zero T
	for taken := 0; r.n > 0 && (limit <= 0 || taken < limit); taken++ {
		dst = append(dst, r.buf[r.head])
		r.buf[r.head] = zero
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	return dst
}

func (r *ring[T]) len() int { return r.n }
