package publish

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// BenchmarkCurrent: one second of 500 sensors at 1 Hz into the current
// snapshot and one message taken from it, against the encoding/json
// snapshot of the same readings it replaces (the whole set marshalled).
func BenchmarkCurrent(b *testing.B) {
	const n = 500
	rs := make([]contract.Reading, n)
	vals := make([]float64, n)
	for i := range rs {
		rs[i] = contract.Reading{Sensor: fmt.Sprintf("T%03d", i), Type: "temperature", Unit: "C", Status: "normal", Value: &vals[i]}
	}
	b.Run("snapshot", func(b *testing.B) {
		d := 1.0
		c := newCurrentSnapshot(Options{Agent: "gw-bench", Site: "bench", CurrentDeadband: &d, CurrentInterval: time.Second})
		now := time.UnixMilli(1764403200000)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			now = now.Add(time.Second)
			for j := range rs {
				vals[j] = 20 + float64((i+j)%3)/10
				rs[j].TS = now.UnixMilli()
				c.update(rs[j])
			}
			if c.take(now) == nil {
				b.Fatal("not due")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		m := map[string]contract.Reading{}
		now := time.UnixMilli(1764403200000)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			now = now.Add(time.Second)
			for j := range rs {
				vals[j] = 20 + float64((i+j)%3)/10
				rs[j].TS = now.UnixMilli()
				m[rs[j].Sensor] = rs[j]
			}
			cur := contract.Current{V: 1, Agent: "gw-bench", Site: "bench", TS: now.UnixMilli()}
			for _, r := range m {
				cur.Readings = append(cur.Readings, r)
			}
			sort.Slice(cur.Readings, func(i, j int) bool { return cur.Readings[i].Sensor < cur.Readings[j].Sensor })
			if _, err := contract.Marshal(cur); err != nil {
				b.Fatal(err)
			}
		}
	})
}
