package contract

import (
	"errors"
	"fmt"
)

// rawReading is what the v2 encoder needs of an encoded Reading, as
// slices of the record: string contents still JSON-escaped, the value's
// number text as written (nil for null).
type rawReading struct {
	sensor, status, code, value []byte
	ts                          int64
}

var errNotReading = errors.New("contract: buffered record is not a reading object")

// scanReading picks the fields of an encoded Reading (a flat JSON object)
// without encoding/json and without allocating. Fields it does not need
// are skipped; sensor, ts and status are required.
func scanReading(b []byte) (rawReading, error) {
	var r rawReading
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r, errNotReading
	}
	i++
	haveTS := false
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			break
		}
		key, j, ok := scanString(b, i)
		if !ok {
			return r, errNotReading
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return r, errNotReading
		}
		i = skipSpace(b, i+1)
		var val []byte
		isString := i < len(b) && b[i] == '"'
		if isString {
			val, i, ok = scanString(b, i)
		} else {
			val, i, ok = scanLiteral(b, i)
		}
		if !ok {
			return r, errNotReading
		}
		switch string(key) { // no allocation: switch on converted []byte
		case "sensor":
			r.sensor = val
		case "status":
			r.status = val
		case "code":
			r.code = val
		case "value":
			if !isString && string(val) != "null" {
				r.value = val
			}
		case "ts":
			ts, ok := parseInt(val)
			if !ok || isString {
				return r, fmt.Errorf("%w: ts %q", errNotReading, val)
			}
			r.ts, haveTS = ts, true
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			break
		}
		return r, errNotReading
	}
	if len(r.sensor) == 0 || len(r.status) == 0 || !haveTS {
		return r, fmt.Errorf("%w: sensor, ts or status missing", errNotReading)
	}
	return r, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the contents of the JSON string at b[i] (escapes
// kept) and the index after its closing quote.
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, i, false
}

// scanLiteral returns the number, true, false or null at b[i].
func scanLiteral(b []byte, i int) ([]byte, int, bool) {
	j := i
	for j < len(b) {
		c := b[j]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || (c >= 'a' && c <= 'z') {
			j++
			continue
		}
		break
	}
	return b[i:j], j, j > i
}

// parseInt parses a JSON integer of at most 18 digits.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
