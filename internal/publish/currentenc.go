package publish

import (
	"encoding/json"
	"strconv"

	"github.com/hazmon/hazmon/internal/contract"
)

// appendReading appends r encoded exactly as contract.Marshal encodes it
// (same fields, order and number format), without reflection. The value
// must be finite or nil.
func appendReading(b []byte, r contract.Reading) []byte {
	b = append(b, `{"sensor":`...)
	b = appendString(b, r.Sensor)
	b = append(b, `,"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	b = append(b, `,"value":`...)
	if r.Value == nil {
		b = append(b, "null"...)
	} else {
		b = contract.AppendJSONFloat(b, *r.Value)
	}
	b = append(b, `,"unit":`...)
	b = appendString(b, r.Unit)
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if r.Code != "" {
		b = append(b, `,"code":`...)
		b = appendString(b, r.Code)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string as encoding/json writes it:
// printable ASCII directly, anything else (escapes, HTML characters,
// non-ASCII) through encoding/json itself.
func appendString(b []byte, s string) []byte {
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
