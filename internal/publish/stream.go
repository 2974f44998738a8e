package publish

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

func (p *Publisher) next(sent map[store.Stream]uint64, liveAfter uint64) (store.Message, bool, error) {
	for _, s := range store.Streams {
		out, err := p.st.Outbox(s, sent[s], 1)
		if err != nil {
			return store.Message{}, false, err
		}
		if len(out) > 0 {
			return out[0], true, nil
		}
		maxItems, maxBytes := 1, 0
		if s == store.Telemetry {
			maxItems, maxBytes = p.opts.BatchMax, p.opts.BatchBytes
		}
		m, ok, err := p.st.Form(s, maxItems, maxBytes, p.build(s, liveAfter))
		if err != nil || ok {
			return m, ok, err
		}
	}
	return store.Message{}, false, nil
}

// build returns the BuildFunc that encodes a message of stream s. Buffered
// telemetry items are encoded contract.Reading objects, formed into a v1
// message, a v2 message or both joined (contract.JoinTelemetry), as
// Options.Telemetry says: both encodings of the same records are one
// outbox message, with one seq, one rec range and one acknowledgement; alarm and event
// items are encoded contract.Alarm / contract.Event bodies completed here.
// Every message carries the buffer epoch and its records' numbers: rec
// [first, last] on telemetry and alarms, id on an event.
//
// The historical flag (contract rule): a telemetry message is historical
// when it carries at least one reading that was committed to the buffer
// before the current broker session was established, i.e. buffered while
// the link was down or the agent was not running (its item ID is at most
// liveAfter, the last ID when the session came up). Readings sampled during
// a live session are not historical, even when they wait behind a draining
// backlog. The rule uses the buffer's commit order, not the wall clock, so
// a clock step cannot flip it. A message formed after the session's
// connection was lost (Form may wait for the buffer's commit window) can
// only be delivered in a later session: it is historical too. A message
// formed once is sent again byte-for-byte after a reconnect (same seq,
// same flag).
func (p *Publisher) build(s store.Stream, liveAfter uint64) store.BuildFunc {
	return func(h store.Head, items []store.Item) ([]byte, error) {
		first, last := items[0].ID, items[len(items)-1].ID
		var rec []uint64
		if first > 0 {
			rec = []uint64{first, last}
		}
		switch s {
		case store.Telemetry:
			historical := items[0].ID <= liveAfter || p.linkLost.Load()
			if p.opts.Telemetry == config.TelemetryV2 {
				return p.buildV2(h, items, historical)
			}
			t := contract.Telemetry{V: contract.Version, Agent: p.opts.Agent, Site: p.opts.Site, Seq: h.Seq, Epoch: h.Epoch, Rec: rec,
				Historical: historical, Readings: make([]json.RawMessage, 0, len(items))}
			fresh, size := p.opts.FreshReadingsCanonical, 160
			for _, it := range items {
				t.Readings = append(t.Readings, json.RawMessage(withFaultCode(it.Data)))
				fresh, size = fresh && it.Fresh, size+len(it.Data)+1
			}
			var v1 []byte
			var err error
			if fresh { // in memory, encoded by this process's recorder (contract.AppendReading): joined as they are
				v1 = contract.AppendTelemetry(make([]byte, 0, size), t)
			} else { // read back from the file: Marshal checks each record is JSON
				v1, err = contract.Marshal(t)
			}
			if err != nil || p.opts.Telemetry != config.TelemetryBoth {
				return v1, err
			}
			v2, err := p.buildV2(h, items, historical)
			if err != nil {
				return nil, err
			}
			return contract.JoinTelemetry(v1, v2), nil
		case store.Alarm:
			var a contract.Alarm
			if err := json.Unmarshal(items[0].Data, &a); err != nil {
				return nil, fmt.Errorf("decode buffered alarm: %w", err)
			}
			a.V, a.Seq, a.Epoch, a.Rec, a.Agent, a.Site = contract.Version, h.Seq, h.Epoch, rec, p.opts.Agent, p.opts.Site
			return contract.Marshal(a)
		case store.Statistics:
			var st contract.Stats
			if err := json.Unmarshal(items[0].Data, &st); err != nil {
				return nil, fmt.Errorf("decode buffered statistics: %w", err)
			}
			st.V, st.Seq, st.Epoch, st.Rec, st.Agent, st.Site = contract.Version, h.Seq, h.Epoch, rec, p.opts.Agent, p.opts.Site
			return contract.Marshal(st)
		default:
			var e contract.Event
			if err := json.Unmarshal(items[0].Data, &e); err != nil {
				return nil, fmt.Errorf("decode buffered event: %w", err)
			}
			e.V, e.Seq, e.Epoch, e.ID, e.Agent, e.Site = contract.Version, h.Seq, h.Epoch, first, p.opts.Agent, p.opts.Site
			return contract.Marshal(e)
		}
	}
}

// publishCurrent sends the retained snapshot if a reading changed. It does
// not wait for the PUBACK: a lost snapshot is replaced within a second.

// withFaultCode gives a buffered fault reading without a code (written by
// an agent older than fault codes) the code "unknown", so that every fault
// on the wire has one. Other readings are returned as they are.
func withFaultCode(r []byte) []byte {
	if !bytes.Contains(r, []byte(`"status":"fault"`)) || bytes.Contains(r, []byte(`"code":`)) || len(r) < 2 || r[len(r)-1] != '}' {
		return r
	}
	out := make([]byte, 0, len(r)+17)
	out = append(out, r[:len(r)-1]...)
	return append(out, `,"code":"unknown"}`...)
}
