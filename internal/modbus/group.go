package modbus

import (
	"cmp"
	"slices"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/decode"
)

// Coalescing limits and defaults.
const (
	// MaxReadRegisters and MaxReadBits are the most registers (FC03/FC04)
	// and coils or discrete inputs (FC01/FC02) one request may read
	// (Modbus Application Protocol v1.1b3 §6.1-6.4).
	MaxReadRegisters = 125
	MaxReadBits      = 2000

	// DefaultMaxGap is the largest run of unused registers a coalesced
	// read may span when config.Bus.MaxGap is nil: at 9600 baud one more
	// request costs 13 bytes of frame plus two t3.5 silences, about the
	// wire time of 11 unused registers.
	DefaultMaxGap = 10

	// SplitHold is how long a coalesced read that drew an exception is
	// done sensor by sensor before the merged read is tried again.
	SplitHold = 5 * time.Minute
)

// point is one sensor.
type point struct {
	cfg        config.Sensor
	spec       decode.Spec
	slave      byte
	table      string
	addr       uint16
	count      uint16
	interval   time.Duration // the sensor's poll interval; its schedule is its group's
	onTime     bool          // Options.OnTime: its reads are never stretched
	faultAfter int           // failed polls in a row before a communication fault (config fault_after)

	fails int // polls in a row that failed for communication (bus goroutine)
}

// group is one read request: sensors of one slave, table and interval
// whose registers lie close together, read together on one grid.
type group struct {
	slave   byte
	table   string
	addr    uint16 // first register or bit
	count   uint16 // registers or bits
	members []*point

	interval time.Duration
	onTime   bool          // holds an on-time sensor: never stretched, picked first
	stretch  int64         // polled every stretch-th tick of the grid (1 = on time)
	cost     time.Duration // recent time on the wire of one poll (EWMA)
	start    time.Time     // grid origin, with a monotonic reading
	next     time.Time     // next tick on the grid

	splitUntil time.Time // read sensor by sensor until then (after an exception)
}

func isBits(table string) bool { return table == TableCoil || table == TableDiscrete }

// firstRequest is the request g's next poll starts with: the merged read,
// or its first sensor's while it is split.
func (g *group) firstRequest() request {
	if len(g.members) > 1 && !g.splitUntil.IsZero() {
		pt := g.members[0]
		return request{slave: pt.slave, table: pt.table, addr: pt.addr, count: pt.count}
	}
	return request{slave: g.slave, table: g.table, addr: g.addr, count: g.count}
}

// buildGroups coalesces points into read requests. Points of the same
// slave, table and interval are sorted by address and merged while the
// request stays within MaxReadRegisters (MaxReadBits) and the run of
// unused addresses between two of them is at most maxGap; maxGap < 0
// gives one request per point.
func buildGroups(points []*point, maxGap int) []*group {
	type key struct {
		slave    byte
		table    string
		interval time.Duration
	}
	byKey := map[key][]*point{}
	var keys []key
	for _, pt := range points {
		k := key{pt.slave, pt.table, pt.interval}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], pt)
	}
	var out []*group
	for _, k := range keys {
		pts := byKey[k]
		slices.SortStableFunc(pts, func(a, b *point) int { return cmp.Compare(a.addr, b.addr) })
		limit := MaxReadRegisters
		if isBits(k.table) {
			limit = MaxReadBits
		}
		var g *group
		for _, pt := range pts {
			end := int(pt.addr) + int(pt.count)
			if g != nil && maxGap >= 0 {
				gEnd := int(g.addr) + int(g.count)
				if int(pt.addr)-gEnd <= maxGap && max(gEnd, end)-int(g.addr) <= limit {
					g.count = uint16(max(gEnd, end) - int(g.addr))
					g.members = append(g.members, pt)
					g.onTime = g.onTime || pt.onTime
					continue
				}
			}
			g = &group{slave: k.slave, table: k.table, addr: pt.addr, count: pt.count,
				members: []*point{pt}, interval: k.interval, onTime: pt.onTime, stretch: 1}
			out = append(out, g)
		}
	}
	return out
}

// value decodes pt from data read starting at address base.
func (pt *point) value(data []byte, base uint16) (float64, error) {
	off := int(pt.addr - base)
	if isBits(pt.table) {
		return pt.spec.Bit(data[off>>3]>>(off&7)&1 == 1)
	}
	return pt.spec.Bytes(data[2*off : 2*off+2*int(pt.count)])
}
