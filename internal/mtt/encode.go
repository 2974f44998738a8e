package mtt

import (
	"strconv"
	"strings"
	"time"
)

// Header and body fields of each file kind, in file order (networking
// notes, S; the notes give the CDDY and CDSS headers, and say only that
// every header starts with the mine code and name: the YCBJ and TJSJ
// headers take the CDSS form, U; the TJSJ fields between the point code
// and the window start are not given: type name, place and unit as in
// YCBJ, U). The names are the MT/T meanings, used by tests and messages.
var (
	HeaderFields = map[FileType][]string{
		TypeCDDY: {"mine code", "mine name", "system model", "system name", "manufacturer", "safety mark valid until", "upload time"},
		TypeCDSS: {"mine code", "mine name", "upload time"},
		TypeYCBJ: {"mine code", "mine name", "upload time"},
		TypeTJSJ: {"mine code", "mine name", "upload time"},
	}
	BodyFields = map[FileType][]string{
		TypeCDDY: {"point code", "system code", "substation code", "sensor type code", "value kind", "unit",
			"range high", "range low", "upper alarm", "upper alarm clear", "lower alarm", "lower alarm clear",
			"upper cut-off", "upper restore", "lower cut-off", "lower restore", "on text", "off text",
			"install place", "x", "y", "z", "related points", "data time"},
		TypeCDSS: {"point code", "sensor type name", "install place", "value", "unit", "point status", "data time"},
		TypeYCBJ: {"point code", "sensor type name", "install place", "unit", "abnormal type", "start", "end",
			"max", "max time", "min", "min time", "mean", "cause", "action taken", "entry time", "entered by", "data time"},
		TypeTJSJ: {"point code", "sensor type name", "install place", "unit", "window start", "window end",
			"max", "max time", "min", "min time", "mean"},
	}
)

// File is one encoded file: its name, kind and bytes (UTF-8, no BOM).
type File struct {
	Name string
	Type FileType
	Data []byte
}

// Encoder writes the four file kinds for one mine. Every text field goes
// through Clean, every number through Num.String and every time through
// TimeLayout in Loc.
type Encoder struct {
	Mine Mine
	Loc  *time.Location // zone of every time; nil = UTC+8
}

// DefaultLocation is the zone of the files when none is given: UTC+8
// (networking notes: local time UTC+8, S).
var DefaultLocation = time.FixedZone("UTC+08:00", 8*3600)

func (e Encoder) loc() *time.Location {
	if e.Loc == nil {
		return DefaultLocation
	}
	return e.Loc
}

// FileName is the name of the file of kind t uploaded at at:
// <mine code>_<TYPE>_<yyyyMMddHHmmss>.txt in the encoder's zone.
func (e Encoder) FileName(t FileType, at time.Time) string {
	return e.Mine.Code + "_" + string(t) + "_" + at.In(e.loc()).Format(NameTimeLayout) + ".txt"
}

// record accumulates one file.
type record struct {
	b   strings.Builder
	loc *time.Location
	n   int // fields in the current record
}

func (r *record) text(s string) {
	if r.n > 0 {
		r.b.WriteString(FieldSep)
	}
	r.b.WriteString(Clean(s))
	r.n++
}

func (r *record) num(n Num)        { r.text(n.String()) }
func (r *record) time(t time.Time) { r.text(formatTime(t, r.loc)) }
func (r *record) int(v int)        { r.text(strconv.Itoa(v)) }
func (r *record) end()             { r.b.WriteString(RecordEnd); r.n = 0 }
func (r *record) file() []byte     { r.b.WriteString(FileEnd); return []byte(r.b.String()) }
func (r *record) date(t time.Time) {
	if t.IsZero() {
		r.text("")
		return
	}
	r.text(t.Format(DateLayout))
}

func (e Encoder) start(t FileType, at time.Time) *record {
	r := &record{loc: e.loc()}
	r.text(e.Mine.Code)
	r.text(e.Mine.Name)
	if t == TypeCDDY {
		r.text(e.Mine.SystemModel)
		r.text(e.Mine.SystemName)
		r.text(e.Mine.Manufacturer)
		r.date(e.Mine.SafetyMarkValidUntil)
	}
	r.time(at)
	r.end()
	return r
}

func (e Encoder) finish(t FileType, at time.Time, r *record) File {
	return File{Name: e.FileName(t, at), Type: t, Data: r.file()}
}

// or returns t, or at when t is zero.
func or(t, at time.Time) time.Time {
	if t.IsZero() {
		return at
	}
	return t
}

// Definitions encodes the point definitions file (CDDY) uploaded at at.
func (e Encoder) Definitions(at time.Time, ps []Point) File {
	r := e.start(TypeCDDY, at)
	for _, p := range ps {
		r.text(p.Code)
		r.text(p.System)
		r.text(p.Substation)
		r.text(p.TypeCode)
		r.text(string(p.Kind))
		r.text(p.Unit)
		for _, n := range []Num{p.RangeHigh, p.RangeLow, p.UpperAlarm, p.UpperAlarmClear, p.LowerAlarm,
			p.LowerAlarmClear, p.UpperCutoff, p.UpperRestore, p.LowerCutoff, p.LowerRestore} {
			r.num(n)
		}
		r.text(p.OnText)
		r.text(p.OffText)
		r.text(p.Place)
		r.num(p.X)
		r.num(p.Y)
		r.num(p.Z)
		r.text(relations(p.Related))
		r.time(or(p.DataTime, at))
		r.end()
	}
	return e.finish(TypeCDDY, at, r)
}

func relations(rs []Relation) string {
	parts := make([]string, 0, len(rs))
	for _, x := range rs {
		parts = append(parts, string(x.Type)+":"+Clean(x.Point))
	}
	return strings.Join(parts, ",")
}

// Values encodes the real-time values file (CDSS) uploaded at at.
func (e Encoder) Values(at time.Time, vs []Value) File {
	r := e.start(TypeCDSS, at)
	for _, v := range vs {
		r.text(v.Point)
		r.text(v.TypeName)
		r.text(v.Place)
		r.num(v.Value)
		r.text(v.Unit)
		r.int(v.Status)
		r.time(v.Time)
		r.end()
	}
	return e.finish(TypeCDSS, at, r)
}

// Abnormals encodes the abnormal records file (YCBJ) uploaded at at.
func (e Encoder) Abnormals(at time.Time, as []Abnormal) File {
	r := e.start(TypeYCBJ, at)
	for _, a := range as {
		r.text(a.Point)
		r.text(a.TypeName)
		r.text(a.Place)
		r.text(a.Unit)
		r.text(a.Type)
		r.time(a.Start)
		r.time(a.End)
		r.num(a.Max)
		r.time(a.MaxTime)
		r.num(a.Min)
		r.time(a.MinTime)
		r.num(a.Mean)
		r.text(a.Cause)
		r.text(a.Action)
		r.time(or(a.EntryTime, at))
		r.text(a.EnteredBy)
		r.time(or(a.DataTime, at))
		r.end()
	}
	return e.finish(TypeYCBJ, at, r)
}

// Statistics encodes the statistics file (TJSJ) uploaded at at.
func (e Encoder) Statistics(at time.Time, ss []Stat) File {
	r := e.start(TypeTJSJ, at)
	for _, s := range ss {
		r.text(s.Point)
		r.text(s.TypeName)
		r.text(s.Place)
		r.text(s.Unit)
		r.time(s.From)
		r.time(s.To)
		r.num(s.Max)
		r.time(s.MaxTime)
		r.num(s.Min)
		r.time(s.MinTime)
		r.num(s.Mean)
		r.end()
	}
	return e.finish(TypeTJSJ, at, r)
}
