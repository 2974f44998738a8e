package contract

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"

	"github.com/hazmon/hazmon/internal/reading"
)

// Compact telemetry (contract v2), published on
// {prefix}/{site}/{agent}/telemetry/v2 by an agent with
// mqtt.telemetry: v2 or both. It carries the same records as the v1
// telemetry message of the same seq (same rec, epoch, seq and historical
// flag), in a form that costs about a tenth of the bytes:
//
//		{"v":2,"agent":"gw-01","site":"site-0001","seq":7,"epoch":1,"rec":[101,105],
//		 "historical":false,"reg":"3f2a9c0d1b7e4a55","t0":1700000000000,
//		 "d":[[0,0,52,48,null],[1000,0,53,"0.4871"]],"s":[[2,"fault","timeout"],[4,"alarm"]]}
//
//	  - reg is the Reg of the retained …/points registry whose sensor
//	    indexes and decimals the message uses ("" when the agent had none:
//	    then every sensor is named by its id).
//	  - d is a list of groups [dt, sensor, value, value, ...]: readings of
//	    the sensors sensor, sensor+1, ... (registry indexes) sampled at one
//	    time, dt ms after the reading before (the first: after t0; negative
//	    after a clock step). Readings of consecutive sensors sampled at
//	    different times (one request per sensor) share a group with a list
//	    of dts, one per value, each since the reading before:
//	    [[dt, dt, ...], sensor, value, ...]. A sensor missing from the
//	    registry is named by its id (a string) and its group holds one
//	    value.
//	  - a value is an integer n, meaning n / 10^decimals of the sensor's
//	    registry entry; or a string holding the value as a JSON number,
//	    exactly as v1 writes it, when it is not a whole number of those
//	    steps (a float sensor's 0.4871, a sensor missing from the registry);
//	    or null for a fault.
//	  - readings are in record order: the j-th value of the message (over
//	    all groups) is record rec[0]+j, so v1 and v2 readings match by rec.
//	  - s lists the readings whose status is not normal, by that position
//	    j: [j, status] or, for a fault, [j, "fault", code]. A reading not
//	    listed is normal. v2 does not carry the fault's text (v1 "error").
const (
	KindTelemetryV2 = "telemetry/v2"
	VersionV2       = 2
)

// TelemetryV2Index is the registry table a v2 message indexes: each
// sensor's index and decimals, and the registry's Reg. Build it with
// NewTelemetryV2Index; it is read-only afterwards.
type TelemetryV2Index struct {
	reg      string
	index    map[string]int
	decimals []int
}

// RegHash is the Reg of a registry's sensor table: 16 hex digits of the
// SHA-256 of the ids and decimals in index order. It changes when a sensor
// is added, removed, moved or rescaled, and only then.
func RegHash(sensors []PointSensor) string {
	h := sha256.New()
	for _, s := range sensors {
		h.Write([]byte(s.ID))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, int64(s.Decimals), 10))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// NewTelemetryV2Index builds the table of sensors (in index order) with
// Reg RegHash(sensors).
func NewTelemetryV2Index(sensors []PointSensor) *TelemetryV2Index {
	x := &TelemetryV2Index{reg: RegHash(sensors), index: make(map[string]int, len(sensors)), decimals: make([]int, len(sensors))}
	for i, s := range sensors {
		x.index[s.ID] = i
		x.decimals[i] = s.Decimals
	}
	return x
}

// Reg returns the table's registry hash ("" for a nil index).
func (x *TelemetryV2Index) Reg() string {
	if x == nil {
		return ""
	}
	return x.reg
}

// lookup returns a sensor's index and decimals (ok false: not in the table).
func (x *TelemetryV2Index) lookup(id []byte) (idx, dec int, ok bool) {
	if x == nil {
		return 0, 0, false
	}
	i, ok := x.index[string(id)] // no allocation: map lookup by converted []byte
	if !ok {
		return 0, 0, false
	}
	return i, x.decimals[i], true
}

// TelemetryHead is what a telemetry message carries besides its readings.
type TelemetryHead struct {
	Seq, Epoch  uint64
	First, Last uint64 // rec range (First 0: none, as in records older than rec)
	Historical  bool
}

// TelemetryV2Encoder appends v2 messages from buffered v1 reading records
// (encoded Reading objects) into reused buffers, without encoding/json.
// It is not safe for concurrent use.
type TelemetryV2Encoder struct {
	prefix  []byte // {"v":2,"agent":"..","site":"..","seq":
	buf     []byte
	st      []byte // the "s" list under construction
	scratch []byte // AddValue's fields
	// the open group: its sensor (index or quoted id), one dt per value
	// (since the reading before), the values written so far
	open   bool
	varied bool // its readings are not all at one time
	head   []byte
	dts    []int64
	vals   []byte
	n      int // readings added
	lastTS int64
	next   int // index the next reading continues the open group with (-1: none open)
	x      *TelemetryV2Index
}

// NewTelemetryV2Encoder returns an encoder for the agent and site.
func NewTelemetryV2Encoder(agent, site string) *TelemetryV2Encoder {
	p := []byte(`{"v":2,"agent":`)
	p = appendJSONString(p, agent)
	p = append(p, `,"site":`...)
	p = appendJSONString(p, site)
	p = append(p, `,"seq":`...)
	return &TelemetryV2Encoder{prefix: p}
}

// Begin starts a message with head h indexed by x (nil: no registry; every
// sensor is named by its id).
func (e *TelemetryV2Encoder) Begin(h TelemetryHead, x *TelemetryV2Index) {
	e.x, e.n, e.next, e.open, e.varied = x, 0, -1, false, false
	e.st, e.dts, e.vals = e.st[:0], e.dts[:0], e.vals[:0]
	b := append(e.buf[:0], e.prefix...)
	b = strconv.AppendUint(b, h.Seq, 10)
	if h.Epoch > 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, h.Epoch, 10)
	}
	if h.First > 0 {
		b = append(b, `,"rec":[`...)
		b = strconv.AppendUint(b, h.First, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, h.Last, 10)
		b = append(b, ']')
	}
	b = append(b, `,"historical":`...)
	b = strconv.AppendBool(b, h.Historical)
	b = append(b, `,"reg":"`...)
	b = append(b, x.Reg()...)
	b = append(b, `","t0":`...)
	e.buf = b
}

// Add appends one buffered reading record (an encoded Reading). It returns
// an error, and appends nothing, for a record that is not one.
func (e *TelemetryV2Encoder) Add(record []byte) error {
	r, err := scanReading(record)
	if err != nil {
		return err
	}
	e.add(r)
	return nil
}

// AddValue appends one reading given by its fields (for records that are
// not encoded Readings): sample time ts (unix ms), value v (ignored for a
// fault), status and, for a fault, code. The output is the same as Add's
// for the Reading that FromReading makes of them: a value is written as
// encoding/json writes it before it is turned into an integer.
func (e *TelemetryV2Encoder) AddValue(sensor string, ts int64, v float64, status, code string) {
	nonFinite := math.IsNaN(v) || math.IsInf(v, 0)
	switch {
	case status == string(reading.StatusFault):
		if code == "" {
			code = string(nonFiniteCode(v))
		}
	case nonFinite:
		status, code = string(reading.StatusFault), string(nonFiniteCode(v))
	}
	sc := append(e.scratch[:0], sensor...)
	sc = append(sc, status...)
	sc = append(sc, code...)
	a, b, c := len(sensor), len(sensor)+len(status), len(sc)
	if status != string(reading.StatusFault) {
		sc = AppendJSONFloat(sc, v)
	}
	e.scratch = sc
	r := rawReading{sensor: sc[:a], status: sc[a:b], code: sc[b:c], ts: ts}
	if len(sc) > c {
		r.value = sc[c:]
	}
	e.add(r)
}

func (e *TelemetryV2Encoder) add(r rawReading) {
	idx, dec, known := e.x.lookup(r.sensor)
	if e.n == 0 {
		e.buf = strconv.AppendInt(e.buf, r.ts, 10)
		e.buf = append(e.buf, `,"d":[`...)
		e.lastTS = r.ts
	}
	// A group goes on with the next sensor. Its readings share one time,
	// or (one request per sensor) each has its own: a run of two or more
	// at one time ends at the first reading at another, which starts a
	// group of its own.
	sameRunEnds := r.ts != e.lastTS && len(e.dts) >= 2 && !e.varied
	if !known || idx != e.next || e.n == 0 || sameRunEnds {
		e.closeGroup()
		e.open = true
		e.head = e.head[:0]
		if known {
			e.head = strconv.AppendInt(e.head, int64(idx), 10)
		} else {
			e.head = append(e.head, '"')
			e.head = append(e.head, r.sensor...)
			e.head = append(e.head, '"')
		}
	}
	if len(e.dts) > 0 && r.ts != e.lastTS {
		e.varied = true
	}
	e.dts = append(e.dts, r.ts-e.lastTS)
	e.lastTS = r.ts
	v := e.vals
	if len(e.dts) > 1 {
		v = append(v, ',')
	}
	fault := bytes.Equal(r.status, statusFault)
	switch n, ok := decimalInt(r.value, dec); {
	case fault || r.value == nil:
		v = append(v, "null"...)
	case known && ok:
		v = strconv.AppendInt(v, n, 10)
	default:
		v = append(v, '"')
		v = append(v, r.value...)
		v = append(v, '"')
	}
	e.vals = v
	e.next = -1
	if known {
		e.next = idx + 1
	}
	if fault || !bytes.Equal(r.status, statusNormal) {
		if len(e.st) > 0 {
			e.st = append(e.st, ',')
		}
		e.st = append(e.st, '[')
		e.st = strconv.AppendInt(e.st, int64(e.n), 10)
		e.st = append(e.st, `,"`...)
		e.st = append(e.st, r.status...)
		e.st = append(e.st, '"')
		if fault {
			e.st = append(e.st, `,"`...)
			if len(r.code) == 0 {
				e.st = append(e.st, "unknown"...)
			} else {
				e.st = append(e.st, r.code...)
			}
			e.st = append(e.st, '"')
		}
		e.st = append(e.st, ']')
	}
	e.n++
}

// closeGroup writes the open group: [dt, sensor, values...] when its
// readings share one time, [[dt, dt, ...], sensor, values...] (one dt per
// value, each since the reading before) when they do not.
func (e *TelemetryV2Encoder) closeGroup() {
	if !e.open {
		return
	}
	b := e.buf
	if b[len(b)-1] != '[' {
		b = append(b, ',')
	}
	b = append(b, '[')
	if !e.varied {
		b = strconv.AppendInt(b, e.dts[0], 10)
	} else {
		b = append(b, '[')
		for i, d := range e.dts {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, ']')
	}
	b = append(b, ',')
	b = append(b, e.head...)
	b = append(b, ',')
	b = append(b, e.vals...)
	e.buf = append(b, ']')
	e.open, e.varied, e.dts, e.vals = false, false, e.dts[:0], e.vals[:0]
}

// Finish closes the message and appends it to dst. A message needs at
// least one reading: Finish on an empty one returns dst unchanged.
func (e *TelemetryV2Encoder) Finish(dst []byte) []byte {
	if e.n == 0 {
		return dst
	}
	e.closeGroup()
	dst = append(dst, e.buf...)
	dst = append(dst, ']')
	if len(e.st) > 0 {
		dst = append(dst, `,"s":[`...)
		dst = append(dst, e.st...)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

var (
	statusNormal = []byte("normal")
	statusFault  = []byte("fault")
)

// decimalInt converts the JSON number text v to the integer n with
// v = n / 10^dec exactly, if there is one within 15 digits (so that a
// consumer's float64(n) / 10^dec is the double that parsing v gives).
func decimalInt(v []byte, dec int) (int64, bool) {
	if len(v) == 0 || dec < 0 || dec > 15 {
		return 0, false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	var n int64
	digits, frac, inFrac := 0, 0, false
	for _, c := range v {
		switch {
		case c == '.' && !inFrac:
			inFrac = true
		case c >= '0' && c <= '9':
			if inFrac {
				if frac == dec {
					if c != '0' {
						return 0, false
					}
					continue
				}
				frac++
			}
			if n > 0 || c != '0' {
				digits++
			}
			n = n*10 + int64(c-'0')
			if digits > 15 {
				return 0, false
			}
		default:
			return 0, false // an exponent: not worth the trouble
		}
	}
	for ; frac < dec; frac++ {
		n *= 10
		if digits++; n > 0 && digits > 15 {
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}
