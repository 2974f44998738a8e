// Package v2consumer is a consumer of compact telemetry (contract v2)
// written from the README's description alone, as a platform would write
// one: it keeps the …/points registries it has seen by their reg and turns
// a …/telemetry/v2 message back into readings. The tests use it to prove
// that v2 carries exactly what v1 carries; it is not used by the agent.
package v2consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Reading is one reading as a consumer sees it, in either encoding.
type Reading struct {
	Rec    uint64   // record number (0 in messages without rec)
	Sensor string   // sensor id
	TS     int64    // sample time, unix ms
	Value  *float64 // nil for a fault
	Status string   // normal, fault, alarm, ...
	Code   string   // a fault's code, else ""
}

// ErrUnknownRegistry means a message names a registry (reg) the consumer
// has not seen: it must wait for the …/points message with that reg.
var ErrUnknownRegistry = errors.New("v2consumer: registry not seen yet")

// Consumer keeps registries by reg. Safe for concurrent use.
type Consumer struct {
	mu   sync.Mutex
	regs map[string][]sensor
}

type sensor struct {
	id       string
	decimals int
}

// Registry records a retained …/points payload.
func (c *Consumer) Registry(payload []byte) error {
	var p struct {
		Reg     string `json:"reg"`
		Sensors []struct {
			ID       string `json:"id"`
			Index    int    `json:"index"`
			Decimals int    `json:"decimals"`
		} `json:"sensors"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("v2consumer: points: %w", err)
	}
	if p.Reg == "" {
		return errors.New("v2consumer: points without reg (agent older than contract v2)")
	}
	table := make([]sensor, len(p.Sensors))
	for _, s := range p.Sensors {
		if s.Index < 0 || s.Index >= len(table) {
			return fmt.Errorf("v2consumer: points: sensor %s index %d outside the list", s.ID, s.Index)
		}
		table[s.Index] = sensor{id: s.ID, decimals: s.Decimals}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.regs == nil {
		c.regs = map[string][]sensor{}
	}
	c.regs[p.Reg] = table
	return nil
}

// Decode turns a …/telemetry/v2 payload into its readings, in record
// order. It returns ErrUnknownRegistry (wrapped) for a reg not seen yet.
func (c *Consumer) Decode(payload []byte) ([]Reading, error) {
	var m struct {
		V   int                 `json:"v"`
		Rec []uint64            `json:"rec"`
		Reg string              `json:"reg"`
		T0  int64               `json:"t0"`
		D   [][]json.RawMessage `json:"d"`
		S   [][]json.RawMessage `json:"s"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("v2consumer: telemetry: %w", err)
	}
	if m.V != 2 {
		return nil, fmt.Errorf("v2consumer: telemetry v %d, want 2", m.V)
	}
	var table []sensor
	if m.Reg != "" {
		c.mu.Lock()
		t, ok := c.regs[m.Reg]
		c.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: reg %s", ErrUnknownRegistry, m.Reg)
		}
		table = t
	}
	var out []Reading
	ts := m.T0
	for gi, g := range m.D {
		if len(g) < 3 {
			return nil, fmt.Errorf("v2consumer: group %d has %d elements", gi, len(g))
		}
		// dt: one for the group (every value at ts+dt) or one per value,
		// each since the reading before.
		var dts []int64
		if bytes.HasPrefix(g[0], []byte(`[`)) {
			if err := json.Unmarshal(g[0], &dts); err != nil || len(dts) != len(g)-2 {
				return nil, fmt.Errorf("v2consumer: group %d: %d dts for %d values (%v)", gi, len(dts), len(g)-2, err)
			}
		} else {
			var dt int64
			if err := json.Unmarshal(g[0], &dt); err != nil {
				return nil, fmt.Errorf("v2consumer: group %d dt: %w", gi, err)
			}
			dts = make([]int64, len(g)-2)
			dts[0] = dt
		}
		var first int
		var byID string
		if bytes.HasPrefix(g[1], []byte(`"`)) {
			if err := json.Unmarshal(g[1], &byID); err != nil {
				return nil, err
			}
			if len(g) != 3 {
				return nil, fmt.Errorf("v2consumer: group %d by id holds %d values", gi, len(g)-2)
			}
		} else if err := json.Unmarshal(g[1], &first); err != nil {
			return nil, fmt.Errorf("v2consumer: group %d sensor: %w", gi, err)
		}
		for k, raw := range g[2:] {
			ts += dts[k]
			r := Reading{TS: ts, Status: "normal", Sensor: byID}
			dec := 0
			if byID == "" {
				i := first + k
				if i < 0 || i >= len(table) {
					return nil, fmt.Errorf("v2consumer: group %d: sensor index %d not in registry %s", gi, i, m.Reg)
				}
				r.Sensor, dec = table[i].id, table[i].decimals
			}
			v, err := value(raw, dec)
			if err != nil {
				return nil, fmt.Errorf("v2consumer: group %d value %d: %w", gi, k, err)
			}
			r.Value = v
			if len(m.Rec) == 2 {
				r.Rec = m.Rec[0] + uint64(len(out))
			}
			out = append(out, r)
		}
	}
	for _, s := range m.S {
		var j int
		var status, code string
		if len(s) < 2 || json.Unmarshal(s[0], &j) != nil || json.Unmarshal(s[1], &status) != nil || j < 0 || j >= len(out) {
			return nil, fmt.Errorf("v2consumer: bad status entry %s", s)
		}
		if len(s) > 2 {
			if err := json.Unmarshal(s[2], &code); err != nil {
				return nil, err
			}
		}
		out[j].Status, out[j].Code = status, code
	}
	if len(m.Rec) == 2 && m.Rec[1]-m.Rec[0]+1 != uint64(len(out)) {
		return nil, fmt.Errorf("v2consumer: rec %v but %d readings", m.Rec, len(out))
	}
	return out, nil
}

// value decodes one group value: an integer n is n / 10^dec, a string is
// the number it holds, null is a fault.
func value(raw json.RawMessage, dec int) (*float64, error) {
	switch {
	case string(raw) == "null":
		return nil, nil
	case bytes.HasPrefix(raw, []byte(`"`)):
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("not an integer: %s", raw)
	}
	v := float64(n) / math.Pow10(dec)
	return &v, nil
}

// DecodeV1 turns a v1 …/telemetry payload into its readings, numbered by
// rec like Decode's.
func DecodeV1(payload []byte) ([]Reading, error) {
	var m struct {
		Rec      []uint64 `json:"rec"`
		Readings []struct {
			Sensor string   `json:"sensor"`
			TS     int64    `json:"ts"`
			Value  *float64 `json:"value"`
			Status string   `json:"status"`
			Code   string   `json:"code"`
		} `json:"readings"`
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("v2consumer: v1 telemetry: %w", err)
	}
	out := make([]Reading, len(m.Readings))
	for i, r := range m.Readings {
		out[i] = Reading{Sensor: r.Sensor, TS: r.TS, Value: r.Value, Status: r.Status, Code: r.Code}
		if len(m.Rec) == 2 {
			out[i].Rec = m.Rec[0] + uint64(i)
		}
	}
	return out, nil
}
