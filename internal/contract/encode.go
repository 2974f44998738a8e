package contract

import (
	"encoding/json"
	"math"
	"strconv"
)

// Hand-written JSON appenders for what is encoded per reading (the
// buffered telemetry record, the current snapshot's entries, the v2
// values): no reflection, no allocation beyond the buffer's growth.

// AppendReading appends r encoded exactly as Marshal encodes it (same
// fields, order, escapes and number format). The value must be finite or
// nil (FromReading makes a non-finite value a null fault).
func AppendReading(b []byte, r Reading) []byte {
	b = append(b, `{"sensor":`...)
	b = AppendString(b, r.Sensor)
	b = append(b, `,"type":`...)
	b = AppendString(b, r.Type)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	b = append(b, `,"value":`...)
	if r.Value == nil {
		b = append(b, "null"...)
	} else {
		b = AppendJSONFloat(b, *r.Value)
	}
	b = append(b, `,"unit":`...)
	b = AppendString(b, r.Unit)
	b = append(b, `,"status":`...)
	b = AppendString(b, r.Status)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = AppendString(b, r.Error)
	}
	if r.Code != "" {
		b = append(b, `,"code":`...)
		b = AppendString(b, r.Code)
	}
	return append(b, '}')
}

// AppendString appends s as a JSON string as encoding/json writes it:
// printable ASCII directly, anything else (escapes, HTML characters,
// non-ASCII) through encoding/json itself.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJSONFloat appends a finite float64 f as encoding/json writes it:
// the shortest form that reads back the same, with an exponent below 1e-6
// and from 1e21, e-07 written e-7. The v2 telemetry and the current
// snapshot encoders both use it.
func AppendJSONFloat(b []byte, f float64) []byte {
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 → e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// AppendTelemetry appends the v1 telemetry message t encoded exactly as
// Marshal encodes it, provided each of t.Readings is itself exactly
// Marshal's encoding of a Reading (AppendReading's output): such readings
// are joined as they are, where Marshal scans and compacts every one.
// The caller vouches for the readings; for records read back from the
// buffer file (which keeps no checksum) use Marshal, which rejects
// malformed JSON.
func AppendTelemetry(b []byte, t Telemetry) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(t.V), 10)
	b = append(b, `,"agent":`...)
	b = AppendString(b, t.Agent)
	b = append(b, `,"site":`...)
	b = AppendString(b, t.Site)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, t.Seq, 10)
	if t.Epoch != 0 {
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, t.Epoch, 10)
	}
	if len(t.Rec) > 0 {
		b = append(b, `,"rec":[`...)
		for i, r := range t.Rec {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, r, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"historical":`...)
	b = strconv.AppendBool(b, t.Historical)
	b = append(b, `,"readings":`...)
	if t.Readings == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range t.Readings {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, r...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
