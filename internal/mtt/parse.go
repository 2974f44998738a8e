package mtt

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Parsed is a file read back: its header record and body records, each a
// list of fields in file order.
type Parsed struct {
	Header []string
	Body   [][]string
}

var nameRe = regexp.MustCompile(`^([0-9]{12})_(CDDY|CDSS|YCBJ|TJSJ)_([0-9]{14})\.txt$`)

// ParseName splits a file name <mine code>_<TYPE>_<yyyyMMddHHmmss>.txt
// into its parts, the time read in loc. It fails on any other name.
func ParseName(name string, loc *time.Location) (mine string, t FileType, at time.Time, err error) {
	m := nameRe.FindStringSubmatch(name)
	if m == nil {
		return "", "", time.Time{}, fmt.Errorf("mtt: %q is not <12-digit mine code>_<CDDY|CDSS|YCBJ|TJSJ>_<yyyyMMddHHmmss>.txt", name)
	}
	at, err = time.ParseInLocation(NameTimeLayout, m[3], loc)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("mtt: %q: time: %w", name, err)
	}
	return m[1], FileType(m[2]), at, nil
}

// Parse reads a file of kind t strictly: valid UTF-8 without a BOM, no
// line break, every record ended by '~', the file by "||", the header and
// each body record with exactly the fields of HeaderFields and BodyFields.
// Errors name the record (0 = header) and what is wrong.
func Parse(t FileType, data []byte) (*Parsed, error) {
	hf, bf := HeaderFields[t], BodyFields[t]
	if hf == nil {
		return nil, fmt.Errorf("mtt: unknown file type %q", t)
	}
	switch {
	case bytes.HasPrefix(data, []byte("\xEF\xBB\xBF")):
		return nil, fmt.Errorf("mtt: %s: starts with a byte-order mark", t)
	case !utf8.Valid(data):
		return nil, fmt.Errorf("mtt: %s: not valid UTF-8", t)
	case bytes.ContainsAny(data, "\r\n"):
		return nil, fmt.Errorf("mtt: %s: contains a line break", t)
	case !bytes.HasSuffix(data, []byte(RecordEnd+FileEnd)):
		return nil, fmt.Errorf("mtt: %s: does not end with %q", t, RecordEnd+FileEnd)
	}
	body := string(data[:len(data)-len(FileEnd)])
	recs := strings.Split(body, RecordEnd)
	recs = recs[:len(recs)-1] // after the last '~'
	p := &Parsed{}
	for i, rec := range recs {
		if strings.Contains(rec, "|") {
			return nil, fmt.Errorf("mtt: %s record %d: contains '|'", t, i)
		}
		fields := strings.Split(rec, FieldSep)
		want := bf
		if i == 0 {
			want = hf
		}
		if len(fields) != len(want) {
			return nil, fmt.Errorf("mtt: %s record %d: %d fields, want %d (%s)", t, i, len(fields), len(want), strings.Join(want, "; "))
		}
		if i == 0 {
			p.Header = fields
		} else {
			p.Body = append(p.Body, fields)
		}
	}
	if p.Header == nil {
		return nil, fmt.Errorf("mtt: %s: no header record", t)
	}
	return p, nil
}

// FieldIndex is the position of the named field (a name of HeaderFields
// or BodyFields; header selects the header's names) in a record of kind
// t, or -1 if the kind has no such field.
func FieldIndex(t FileType, header bool, name string) int {
	names := BodyFields[t]
	if header {
		names = HeaderFields[t]
	}
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}
