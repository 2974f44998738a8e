package control

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// Export formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// CheckFormat returns an error wrapping ErrInvalid unless format is
// FormatCSV or FormatJSONL.
func CheckFormat(format string) error {
	if format != FormatCSV && format != FormatJSONL {
		return fmt.Errorf("%w: format %q (want csv or jsonl)", ErrInvalid, format)
	}
	return nil
}

// CSVHeader is the first line of a CSV export. Columns by stream:
// telemetry: sensor, type, value, unit, status (reading status), detail
// (fault reason); alarm: sensor, type (level), value, status (raised or
// cleared), detail (limit and outputs); event: type (event type), detail
// (reason, detail, readings lost).
var CSVHeader = []string{"time", "ts", "stream", "state", "seq", "sensor", "type", "value", "unit", "status", "detail"}

// exportPage is how many outbox messages or pending items are read per
// bbolt transaction, so a large buffer is streamed, not loaded whole.
const exportPage = 256

// Export writes every record the buffer holds with a sample time at or
// after since (zero: all), stream by stream (alarm, event, telemetry) and
// within a stream in buffer order: messages waiting for a PUBACK first
// (state "outbox", with their seq), then records not yet in a message
// (state "pending", seq 0). Published and acknowledged records are no
// longer in the buffer. It returns the number of records written.
func Export(ctx context.Context, st *store.Store, since time.Time, format string, w io.Writer) (int, error) {
	if err := CheckFormat(format); err != nil {
		return 0, err
	}
	ex := &exporter{since: since.UnixMilli(), format: format, w: w}
	if since.IsZero() {
		ex.since = 0
	}
	if format == FormatCSV {
		ex.csv = csv.NewWriter(w)
		if err := ex.csv.Write(CSVHeader); err != nil {
			return 0, err
		}
	}
	for _, s := range store.Streams {
		var after uint64
		for {
			if err := ctx.Err(); err != nil {
				return ex.n, err
			}
			msgs, err := st.Outbox(s, after, exportPage)
			if err != nil {
				return ex.n, err
			}
			for _, m := range msgs {
				if err := ex.message(m); err != nil {
					return ex.n, err
				}
				after = m.Seq
			}
			if len(msgs) < exportPage {
				break
			}
		}
		after = 0
		for {
			if err := ctx.Err(); err != nil {
				return ex.n, err
			}
			items, err := st.Pending(s, after, exportPage)
			if err != nil {
				return ex.n, err
			}
			for _, it := range items {
				if err := ex.record(s, "pending", 0, it.TS.UnixMilli(), it.Data); err != nil {
					return ex.n, err
				}
				after = it.ID
			}
			if len(items) < exportPage {
				break
			}
		}
	}
	if ex.csv != nil {
		ex.csv.Flush()
		if err := ex.csv.Error(); err != nil {
			return ex.n, err
		}
	}
	return ex.n, nil
}

// DeadCSVHeader is the first line of a CSV export of the dead letters.
var DeadCSVHeader = []string{"time", "ts", "stream", "rec", "reason", "record"}

// deadRecord is one line of a JSONL export of the dead letters.
type deadRecord struct {
	Stream string          `json:"stream"`
	Rec    uint64          `json:"rec"`
	TS     int64           `json:"ts"`
	Reason string          `json:"reason"`
	Record json.RawMessage `json:"record,omitempty"` // the record as buffered, when it is JSON
	Raw    string          `json:"raw,omitempty"`    // else its bytes, as a Go-quoted string
}

// ExportDead writes the buffer's dead letters (records that could not be
// formed into a message, each reported in a data_loss event with reason
// "unreadable"), stream by stream in record order, and returns how many.
func ExportDead(ctx context.Context, st *store.Store, format string, w io.Writer) (int, error) {
	if err := CheckFormat(format); err != nil {
		return 0, err
	}
	var cw *csv.Writer
	if format == FormatCSV {
		cw = csv.NewWriter(w)
		if err := cw.Write(DeadCSVHeader); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, s := range store.Streams {
		var after uint64
		for {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			dead, err := st.Dead(s, after, exportPage)
			if err != nil {
				return n, err
			}
			for _, d := range dead {
				after = d.Rec
				n++
				if cw != nil {
					row := []string{d.TS.UTC().Format("2006-01-02T15:04:05.000Z"), strconv.FormatInt(d.TS.UnixMilli(), 10),
						string(s), strconv.FormatUint(d.Rec, 10), d.Reason, strconv.Quote(string(d.Data))}
					if err := cw.Write(row); err != nil {
						return n, err
					}
					continue
				}
				line := deadRecord{Stream: string(s), Rec: d.Rec, TS: d.TS.UnixMilli(), Reason: d.Reason}
				if json.Valid(d.Data) {
					line.Record = d.Data
				} else {
					line.Raw = strconv.Quote(string(d.Data))
				}
				b, err := json.Marshal(line)
				if err != nil {
					return n, err
				}
				if _, err := w.Write(append(b, '\n')); err != nil {
					return n, err
				}
			}
			if len(dead) < exportPage {
				break
			}
		}
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}

type exporter struct {
	since  int64
	format string
	w      io.Writer
	csv    *csv.Writer
	n      int
}

// message splits an outbox message into its records: a telemetry message
// carries many readings (its v1 form; a v2-only message is one record),
// an alarm or event message is one record.
func (ex *exporter) message(m store.Message) error {
	if m.Stream != store.Telemetry {
		return ex.record(m.Stream, "outbox", m.Seq, m.OldestTS.UnixMilli(), m.Payload)
	}
	v1, v2 := contract.SplitTelemetry(m.Payload) // mqtt.telemetry both or v2
	if v1 == nil {
		// Compact only: its readings need the registry to be read, so the
		// message is exported whole, as published on …/telemetry/v2.
		return ex.record(m.Stream, "outbox", m.Seq, m.OldestTS.UnixMilli(), v2)
	}
	var t contract.Telemetry
	if err := json.Unmarshal(v1, &t); err != nil {
		return fmt.Errorf("telemetry message seq %d: %w", m.Seq, err)
	}
	for _, raw := range t.Readings {
		var r struct {
			TS int64 `json:"ts"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("telemetry message seq %d: reading: %w", m.Seq, err)
		}
		if err := ex.record(m.Stream, "outbox", m.Seq, r.TS, raw); err != nil {
			return err
		}
	}
	return nil
}

// jsonlRecord is one line of a JSONL export.
type jsonlRecord struct {
	Stream string          `json:"stream"`
	State  string          `json:"state"` // outbox or pending
	Seq    uint64          `json:"seq"`   // message seq; 0 while pending
	TS     int64           `json:"ts"`
	Record json.RawMessage `json:"record"` // the contract body (reading, alarm or event)
}

func (ex *exporter) record(s store.Stream, state string, seq uint64, ts int64, data []byte) error {
	if ts < ex.since {
		return nil
	}
	ex.n++
	if ex.format == FormatJSONL {
		b, err := json.Marshal(jsonlRecord{Stream: string(s), State: state, Seq: seq, TS: ts, Record: data})
		if err != nil {
			return err
		}
		_, err = ex.w.Write(append(b, '\n'))
		return err
	}
	row := []string{time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z"), strconv.FormatInt(ts, 10),
		string(s), state, strconv.FormatUint(seq, 10), "", "", "", "", "", ""}
	switch s {
	case store.Telemetry:
		if _, v2 := contract.SplitTelemetry(data); v2 != nil { // a compact message, whole
			row[10] = "telemetry v2 message " + string(v2)
			break
		}
		var r contract.Reading
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("telemetry record: %w", err)
		}
		row[5], row[6], row[7], row[8], row[9], row[10] = r.Sensor, r.Type, num(r.Value), r.Unit, r.Status, r.Error
	case store.Alarm:
		var a contract.Alarm
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("alarm record: %w", err)
		}
		detail := "limit=" + num(a.Limit)
		if len(a.Outputs) > 0 {
			detail += " outputs=" + strings.Join(a.Outputs, ",")
		}
		if a.Calibration {
			detail += " calibration"
		}
		row[5], row[6], row[7], row[9], row[10] = a.Sensor, a.Level, num(a.Value), a.State, detail
	default:
		var e contract.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return fmt.Errorf("event record: %w", err)
		}
		detail := strings.TrimSpace(e.Reason + " " + e.Detail)
		if e.Readings > 0 {
			detail += fmt.Sprintf(" readings=%d", e.Readings)
		}
		row[6], row[10] = e.Type, detail
	}
	return ex.csv.Write(row)
}

func num(p *float64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

// BufferStatsFrom converts store.Stats of the buffer at path, taken at now.
func BufferStatsFrom(path string, st store.Stats, now time.Time) BufferStats {
	p, o := st.Depth()
	b := BufferStats{Path: path, Pending: p, Outbox: o, Bytes: st.Bytes, FileSize: st.FileSize,
		OldestAgeS: -1, Streams: map[string]StreamStats{}, Epoch: st.Epoch, MemoryBytes: st.MemoryBytes, Degraded: st.Fault}
	if !st.Oldest.IsZero() {
		b.OldestTS = st.Oldest.UnixMilli()
		b.OldestAgeS = now.Sub(st.Oldest).Seconds()
	}
	for name, s := range st.Streams {
		ss := StreamStats{Pending: s.Pending, Outbox: s.Outbox, Memory: s.Memory, Dead: s.Dead, LastSeq: s.LastSeq, LastRec: s.LastRec, Evicted: s.Evicted}
		if !s.Oldest.IsZero() {
			ss.OldestTS = s.Oldest.UnixMilli()
		}
		b.Streams[string(name)] = ss
	}
	return b
}

// FillProbeResult sets res.Registers (holding, input: 2 big-endian bytes
// each) or res.Bits (coil, discrete: packed LSB first) from the raw data
// of a read of res.Table with count items.
func FillProbeResult(res *ProbeResult, data []byte, count int) error {
	switch res.Table {
	case "holding", "input":
		if len(data) != 2*count {
			return fmt.Errorf("%d data bytes for %d registers", len(data), count)
		}
		res.Registers = make([]uint16, count)
		for i := range res.Registers {
			res.Registers[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
	case "coil", "discrete":
		if len(data) != (count+7)/8 {
			return fmt.Errorf("%d data bytes for %d bits", len(data), count)
		}
		res.Bits = make([]bool, count)
		for i := range res.Bits {
			res.Bits[i] = data[i/8]&(1<<(i%8)) != 0
		}
	default:
		return fmt.Errorf("%w: table %q (want holding, input, coil or discrete)", ErrInvalid, res.Table)
	}
	return nil
}

// CheckProbe validates a probe request: slave 0..255 (1..247 on a serial
// bus), a known table, address 0..65535, count 1..125 registers or
// 1..2000 bits (Modbus Application Protocol v1.1b3 §6.1-6.4) within the
// address space.
func CheckProbe(req ProbeRequest) error {
	maxCount := 125
	switch req.Table {
	case "holding", "input":
	case "coil", "discrete":
		maxCount = 2000
	default:
		return fmt.Errorf("%w: table %q (want holding, input, coil or discrete)", ErrInvalid, req.Table)
	}
	if req.Slave < 0 || req.Slave > 255 {
		return fmt.Errorf("%w: slave %d (want 1..247, 0..255 on tcp)", ErrInvalid, req.Slave)
	}
	if req.Address < 0 || req.Address > 65535 {
		return fmt.Errorf("%w: address %d (want 0..65535, 0-based)", ErrInvalid, req.Address)
	}
	if req.Count < 1 || req.Count > maxCount || req.Address+req.Count > 65536 {
		return fmt.Errorf("%w: count %d (want 1..%d %s items within the address space)", ErrInvalid, req.Count, maxCount, req.Table)
	}
	return nil
}
