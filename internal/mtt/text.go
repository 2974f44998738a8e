package mtt

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Separators of the files (networking notes, S): fields are separated by
// FieldSep, each record ends with RecordEnd, the file ends with FileEnd.
// No line breaks: a file is one line.
const (
	FieldSep  = ";"
	RecordEnd = "~"
	FileEnd   = "||"
)

// Unknown is written for a value that is unknown or abnormal (a fault, a
// point not polled yet) and for an absent number (a limit the point does
// not have, no coordinates): networking notes, S.
const Unknown = "-9999"

// TimeLayout is the form of every time in the files, in the exporter's
// zone (networking notes: yyyy-MM-dd HH:mm:ss, local time UTC+8, S); a
// zero time is written as an empty field.
const TimeLayout = "2006-01-02 15:04:05"

// DateLayout is the form of a date field (the safety mark's expiry; U: the
// notes give no form, so the date part of TimeLayout).
const DateLayout = "2006-01-02"

// NameTimeLayout is the time in a file's name (yyyyMMddHHmmss).
const NameTimeLayout = "20060102150405"

// MaxDecimals is the number of decimals a value is written with at most
// (trailing zeros dropped): finer than any mine sensor's resolution
// (0.01 % CH4, 1 ppm CO), so the file never shows float noise such as
// 0.30000000000000004.
const MaxDecimals = 4

// Num is an optional number: the zero Num is absent and is written Unknown.
type Num struct {
	V  float64 // the number, meaningful when OK
	OK bool    // the number is present
}

// Some returns the present number v (NaN and ±Inf are absent: Unknown).
func Some(v float64) Num {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Num{}
	}
	return Num{V: v, OK: true}
}

// SomePtr returns *p as a present number, absent when p is nil (hazmon's
// config writes optional limits as *float64).
func SomePtr(p *float64) Num {
	if p == nil {
		return Num{}
	}
	return Some(*p)
}

// String is the number as written in a file: at most MaxDecimals
// decimals, no exponent, Unknown when absent.
func (n Num) String() string {
	if !n.OK || math.IsNaN(n.V) || math.IsInf(n.V, 0) {
		return Unknown
	}
	p := math.Pow10(MaxDecimals)
	v := math.Round(n.V*p) / p
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// Clean makes free text fit for a field (an install place, a cause, an
// action, an operator's name): the files separate fields with ';', end
// records with '~' and the file with "||", hold no line breaks and no
// full-width characters (networking notes, S). Clean
//   - turns full-width ASCII forms (U+FF01..U+FF5E) into their half-width
//     letters and the ideographic space (U+3000) into a space;
//   - then replaces ';' with ',', '~' with '-', '|' with '/';
//   - replaces each line break, tab and other control character with a
//     space, drops byte-order marks, and each invalid UTF-8 byte with '?';
//   - trims leading and trailing spaces.
//
// Chinese text (ideographs, CJK punctuation such as 、。) is kept as it is.
// Config texts (mine name, places) are refused at load time instead
// (config.MTTTextProblem): Clean(s) == s exactly when they are accepted.
func Clean(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			b.WriteByte('?')
			continue
		}
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			r -= 0xFEE0
		case r == 0x3000:
			r = ' '
		}
		switch {
		case r == ';':
			r = ','
		case r == '~':
			r = '-'
		case r == '|':
			r = '/'
		case r == 0xFEFF:
			continue
		case r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029:
			r = ' '
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// formatTime writes t in loc as TimeLayout; a zero t is an empty field.
func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(TimeLayout)
}
