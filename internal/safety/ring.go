package safety

// ring is a bounded FIFO. It is not safe for concurrent use: its owner
// guards it.
type ring[T any] struct {
	buf  []T
	head int // index of the oldest element
	n    int
}

func newRing[T any](capacity int) ring[T] { return ring[T]{buf: make([]T, max(capacity, 1))} }

// push appends v; it reports false (and drops v) when the ring is full.
func (r *ring[T]) push(v T) bool {
	if r.n == len(r.buf) {
		return false
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
	return true
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
