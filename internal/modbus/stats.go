package modbus

import (
	"slices"
	"time"
)

// Statistics windows.
const (
	// RTTWindow is how many of the latest transactions the round-trip time
	// percentiles of BusStats are taken over.
	RTTWindow = 256
	// RateWindow is the length of the window (between one and two of
	// them) that BusStats rates and utilisation are computed over.
	RateWindow = 10 * time.Second
)

// RTTBuckets are the upper bounds of RTTHistogram's buckets: from a Modbus
// TCP reply on a LAN (about 1 ms) to the longest bus timeout (config
// buses[].timeout, at most 30 s; a timed-out transaction counts with the
// time it waited).
var RTTBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// RTTHistogram counts a bus's transactions (failed ones included) by
// round-trip time since Run started. It is a fixed-size value: recording
// a transaction does not allocate, and BusStats copies it whole.
type RTTHistogram struct {
	// Counts[i] is the transactions with RTTBuckets[i-1] < rtt <=
	// RTTBuckets[i] (not cumulative); the last one counts those above the
	// largest bound.
	Counts [len(RTTBuckets) + 1]uint64
	Sum    time.Duration // total round-trip time
}

// Count returns the transactions recorded.
func (h *RTTHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

func (h *RTTHistogram) observe(rtt time.Duration) {
	i := 0
	for i < len(RTTBuckets) && rtt > RTTBuckets[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += rtt
}

// BusStats are a bus's counters since Run started, and its recent rates.
type BusStats struct {
	Requests  uint64        // transactions sent on the wire, retries included
	Errors    uint64        // transactions that returned no data (timeouts, exceptions, CRC, framing, I/O)
	Busy      uint64        // exception 6 replies (counted in Errors too)
	Timeouts  uint64        // transactions without a reply (counted in Errors too)
	Missed    uint64        // poll ticks skipped because the bus was behind schedule
	LastError string        // the last transaction or connect error, "" if none yet
	LastRTT   time.Duration // duration of the last transaction, request to reply
	Connected bool          // whether the port/connection is open
	RTT       RTTHistogram  // every transaction's round-trip time

	// MissedPolls are reads that failed for communication (timeout, CRC,
	// malformed frame, gateway exception 10/11, busy) while their sensors
	// were below fault_after: no reading was emitted, the last one stands.
	MissedPolls uint64
	// Retries are reads sent again at once after a missed reply (counted
	// in Requests too).
	Retries uint64

	Sensors int // sensors on the bus
	Reads   int // read requests per full poll cycle after coalescing (one per sensor without it)
	Split   int // coalesced reads currently done sensor by sensor after an exception

	// Load is the bus time the schedule asks for per second of wall time,
	// estimated from the recent time on the wire of each read (1 = the bus
	// is full). Above LoadTarget the bus is Overloaded: on-time sensors
	// (Options.OnTime) stay on their interval and Stretched sensors are
	// polled at a whole multiple of theirs.
	Load       float64
	Overloaded bool
	Stretched  int

	RequestsPerSec float64       // transactions per second over the rate window
	ErrorsPerSec   float64       // failed transactions per second over the rate window
	RTTP50         time.Duration // round-trip time percentiles over the last RTTWindow transactions
	RTTP90         time.Duration
	RTTP99         time.Duration
	// Utilisation is time on the wire / wall time over the rate window: for
	// RTU computed from the frame sizes at the baud rate (11 bits a
	// character) plus t3.5 before each frame; for TCP the round-trip time.
	Utilisation float64
}

// window is a snapshot of the counters at the start of a rate window.
type window struct {
	start    time.Time
	requests uint64
	errors   uint64
	wire     time.Duration
}

// meter accumulates the per-transaction figures without allocating. The
// Poller's mu guards it.
type meter struct {
	wire      time.Duration // total time on the wire
	rtt       [RTTWindow]time.Duration
	rttN      int // transactions recorded (capped at RTTWindow for reading)
	rttI      int // next slot
	prev, cur window
}

func (m *meter) reset(now time.Time) {
	*m = meter{}
	m.prev.start, m.cur.start = now, now
}

// add records one transaction. st holds the totals after it.
func (m *meter) add(st *BusStats, rtt, wire time.Duration, now time.Time) {
	st.RTT.observe(rtt)
	m.wire += wire
	m.rtt[m.rttI] = rtt
	m.rttI = (m.rttI + 1) % RTTWindow
	m.rttN = min(m.rttN+1, RTTWindow)
	if now.Sub(m.cur.start) >= RateWindow {
		m.prev = m.cur
		m.cur = window{start: now, requests: st.Requests, errors: st.Errors, wire: m.wire}
	}
}

// fill computes the windowed figures into st.
func (m *meter) fill(st *BusStats, now time.Time) {
	if el := now.Sub(m.prev.start).Seconds(); el > 0 && !m.prev.start.IsZero() {
		st.RequestsPerSec = float64(st.Requests-m.prev.requests) / el
		st.ErrorsPerSec = float64(st.Errors-m.prev.errors) / el
		st.Utilisation = (m.wire - m.prev.wire).Seconds() / el
	}
	if m.rttN == 0 {
		return
	}
	var buf [RTTWindow]time.Duration
	r := buf[:m.rttN]
	copy(r, m.rtt[:m.rttN])
	slices.Sort(r)
	pct := func(p int) time.Duration { return r[(len(r)-1)*p/100] }
	st.RTTP50, st.RTTP90, st.RTTP99 = pct(50), pct(90), pct(99)
}

// wireTime is the time one RTU transaction holds the line: the request
// and reply frames at 11 bits a character, each preceded by a t3.5
// silence (Modbus over Serial Line v1.02 §2.5.1.1).
func wireTime(baud, reqBytes, replyBytes int) time.Duration {
	return time.Duration(reqBytes+replyBytes)*CharTime(baud) + 2*FrameGap(baud)
}

// WireLimit is the most polls per second an RTU line at baud can carry
// for reads of n registers (FC03/FC04: request 8 bytes, reply 5 + 2n
// bytes, a t3.5 silence before each frame), ignoring the slave's
// turnaround. At 9600 baud and n = 10 it is about 21.8.
func WireLimit(baud, n int) float64 {
	return 1 / wireTime(baud, 8, 5+2*n).Seconds()
}
