package mtt

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hazmon/hazmon/internal/config"
)

var (
	cst    = time.FixedZone("UTC+08:00", 8*3600)
	upload = time.Date(2025, 3, 1, 8, 30, 0, 0, cst)
	mine   = Mine{Code: "140105001234", Name: "示例煤矿", SystemModel: "KJ95X", SystemName: "安全监控系统",
		Manufacturer: "示例科技", SafetyMarkValidUntil: time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)}
	enc = Encoder{Mine: mine, Loc: cst}
)

const ch4Code = "14010500123401MN000100000001"

func ch4Point() Point {
	return Point{
		Code: ch4Code, System: SystemSafety, Substation: "001", TypeCode: SensorTypeMethane, TypeName: "甲烷",
		Kind: KindAnalog, Unit: "%CH4", RangeHigh: Some(4), RangeLow: Some(0),
		UpperAlarm: Some(1), UpperAlarmClear: Some(1), UpperCutoff: Some(1.5), UpperRestore: Some(1),
		Place: "1#回风巷", X: Some(12.5), Y: Some(-3), Related: []Relation{{RelCutoff, "BRK-1"}, {RelCutoff, "BRK-2"}},
		DataTime: time.Date(2025, 3, 1, 8, 0, 0, 0, cst),
	}
}

// The point definitions file, byte for byte: the CDDY header (mine code;
// mine name; system model; system name; manufacturer; safety mark valid
// until; upload time), then each point's 24 fields in the networking
// notes' order, absent numbers -9999, '~' after each record, "||" at the
// end, no line break.
func TestEncode_DefinitionsGolden(t *testing.T) {
	fan := Point{Code: "FAN-1", System: SystemSafety, Substation: "001", TypeCode: "1001", Kind: KindSwitch,
		OnText: "开", OffText: "停", Place: "主扇"}
	f := enc.Definitions(upload, []Point{ch4Point(), fan})
	want := "140105001234;示例煤矿;KJ95X;安全监控系统;示例科技;2027-12-31;2025-03-01 08:30:00~" +
		ch4Code + ";01;001;0001;MN;%CH4;4;0;1;1;-9999;-9999;1.5;1;-9999;-9999;;;1#回风巷;12.5;-3;-9999;D:BRK-1,D:BRK-2;2025-03-01 08:00:00~" +
		"FAN-1;01;001;1001;KG;;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;-9999;开;停;主扇;-9999;-9999;-9999;;2025-03-01 08:30:00~" +
		"||"
	if string(f.Data) != want {
		t.Fatalf("CDDY\n got %s\nwant %s", f.Data, want)
	}
	if f.Name != "140105001234_CDDY_20250301083000.txt" || f.Type != TypeCDDY {
		t.Fatalf("name %q type %s", f.Name, f.Type)
	}
	checkFileBytes(t, f)
}

// The real-time values file: header mine code; mine name; time, then
// point code; type name; place; value; unit; status; data time. A fault is
// -9999 with its status bits.
func TestEncode_ValuesGolden(t *testing.T) {
	f := enc.Values(upload, []Value{
		{Point: ch4Code, TypeName: "甲烷", Place: "1#回风巷", Value: Some(0.52), Unit: "%CH4", Status: 0, Time: upload.Add(-2 * time.Second)},
		{Point: "CO-1", TypeName: "一氧化碳", Place: "皮带巷", Unit: "ppm", Status: StatusSensorFault, Time: upload.Add(-time.Second)},
		{Point: "CH4-2", TypeName: "甲烷", Place: "工作面", Value: Some(1.6), Unit: "%CH4", Status: StatusAlarm | StatusPowerCut, Time: upload},
	})
	want := "140105001234;示例煤矿;2025-03-01 08:30:00~" +
		ch4Code + ";甲烷;1#回风巷;0.52;%CH4;0;2025-03-01 08:29:58~" +
		"CO-1;一氧化碳;皮带巷;-9999;ppm;128;2025-03-01 08:29:59~" +
		"CH4-2;甲烷;工作面;1.6;%CH4;3;2025-03-01 08:30:00~||"
	if string(f.Data) != want {
		t.Fatalf("CDSS\n got %s\nwant %s", f.Data, want)
	}
	if f.Name != "140105001234_CDSS_20250301083000.txt" {
		t.Fatalf("name %q", f.Name)
	}
	checkFileBytes(t, f)
}

// The abnormal records file: point code; type name; place; unit; abnormal
// type; start; end; max; max time; min; min time; mean; cause; action;
// entry time; entered by; data time. Free text is cleaned; an ongoing
// episode has an empty end; zero entry and data times are the upload time.
func TestEncode_AbnormalsGolden(t *testing.T) {
	s := time.Date(2025, 3, 1, 8, 10, 0, 0, cst)
	f := enc.Abnormals(upload, []Abnormal{{
		Point: ch4Code, TypeName: "甲烷", Place: "1#回风巷", Unit: "%CH4", Type: AbnormalCutoff,
		Start: s, End: s.Add(95 * time.Second), Max: Some(1.83), MaxTime: s.Add(40 * time.Second),
		Min: Some(1.5), MinTime: s, Mean: Some(1.6666666), Cause: "甲烷超限;断电\n复电", Action: "切断 BRK-1|BRK-2",
		EnteredBy: "gw-01",
	}, {
		Point: "CO-1", Type: AbnormalSensorDisconnected, Start: s, EntryTime: s, DataTime: s,
	}})
	want := "140105001234;示例煤矿;2025-03-01 08:30:00~" +
		ch4Code + ";甲烷;1#回风巷;%CH4;002;2025-03-01 08:10:00;2025-03-01 08:11:35;1.83;2025-03-01 08:10:40;1.5;2025-03-01 08:10:00;1.6667;" +
		"甲烷超限,断电 复电;切断 BRK-1/BRK-2;2025-03-01 08:30:00;gw-01;2025-03-01 08:30:00~" +
		"CO-1;;;;004;2025-03-01 08:10:00;;-9999;;-9999;;-9999;;;2025-03-01 08:10:00;;2025-03-01 08:10:00~||"
	if string(f.Data) != want {
		t.Fatalf("YCBJ\n got %s\nwant %s", f.Data, want)
	}
	if f.Name != "140105001234_YCBJ_20250301083000.txt" {
		t.Fatalf("name %q", f.Name)
	}
	checkFileBytes(t, f)
}

// The statistics file: point code; type name; place; unit; window start;
// window end; max; max time; min; min time; mean.
func TestEncode_StatisticsGolden(t *testing.T) {
	from := time.Date(2025, 3, 1, 8, 25, 0, 0, cst)
	f := enc.Statistics(upload, []Stat{{
		Point: ch4Code, TypeName: "甲烷", Place: "1#回风巷", Unit: "%CH4", From: from, To: from.Add(5 * time.Minute),
		Max: Some(0.61), MaxTime: from.Add(62 * time.Second), Min: Some(0.4), MinTime: from.Add(3 * time.Second), Mean: Some(0.5),
	}})
	want := "140105001234;示例煤矿;2025-03-01 08:30:00~" +
		ch4Code + ";甲烷;1#回风巷;%CH4;2025-03-01 08:25:00;2025-03-01 08:30:00;0.61;2025-03-01 08:26:02;0.4;2025-03-01 08:25:03;0.5~||"
	if string(f.Data) != want {
		t.Fatalf("TJSJ\n got %s\nwant %s", f.Data, want)
	}
	if f.Name != "140105001234_TJSJ_20250301083000.txt" {
		t.Fatalf("name %q", f.Name)
	}
	checkFileBytes(t, f)
}

// Times are written in the encoder's zone, whatever zone they come in; the
// name's time too.
func TestEncode_TimesInTheFilesZone(t *testing.T) {
	utc := time.Date(2025, 3, 1, 0, 30, 0, 0, time.UTC) // 08:30 at UTC+8
	f := Encoder{Mine: mine}.Values(utc, []Value{{Point: "P", Value: Some(1), Time: utc}})
	if !bytes.Contains(f.Data, []byte(";2025-03-01 08:30:00~")) || f.Name != "140105001234_CDSS_20250301083000.txt" {
		t.Fatalf("default zone not UTC+8: %s %s", f.Name, f.Data)
	}
}

// checkFileBytes: UTF-8, no BOM, no line break, no full-width form, ends
// with "~||", and parses back with the field counts of its kind.
func checkFileBytes(t *testing.T, f File) {
	t.Helper()
	if !utf8.Valid(f.Data) || bytes.HasPrefix(f.Data, []byte("\xEF\xBB\xBF")) || bytes.ContainsAny(f.Data, "\r\n") {
		t.Fatalf("%s: not BOM-free single-line UTF-8", f.Name)
	}
	for _, r := range string(f.Data) {
		if (r >= 0xFF01 && r <= 0xFF5E) || r == 0x3000 {
			t.Fatalf("%s: full-width %q", f.Name, r)
		}
	}
	if _, err := Parse(f.Type, f.Data); err != nil {
		t.Fatal(err)
	}
	m, typ, at, err := ParseName(f.Name, cst)
	if err != nil || m != mine.Code || typ != f.Type || !at.Equal(upload) {
		t.Fatalf("ParseName(%s) = %s %s %v %v", f.Name, m, typ, at, err)
	}
}

// Numbers: at most 4 decimals without float noise or exponent, no "-0",
// absent / NaN / Inf as -9999.
func TestNum_String(t *testing.T) {
	for _, c := range []struct {
		n    Num
		want string
	}{
		{Some(0.1 + 0.2), "0.3"}, {Some(123 * 0.01), "1.23"}, {Some(1e7), "10000000"}, {Some(-0.00001), "0"},
		{Some(2.5), "2.5"}, {Some(1.23456), "1.2346"}, {Num{}, "-9999"}, {Some(nan()), "-9999"},
		{Num{V: 3}, "-9999"}, {SomePtr(nil), "-9999"}, {SomePtr(ptr(0.75)), "0.75"},
	} {
		if got := c.n.String(); got != c.want {
			t.Errorf("%+v → %q, want %q", c.n, got, c.want)
		}
	}
}

func nan() float64           { var z float64; return z / z }
func ptr(v float64) *float64 { return &v }

// Free text: separators and line breaks replaced, full-width forms made
// half-width (so a full-width ；cannot smuggle a separator in), BOMs and
// invalid bytes removed, Chinese kept.
func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"甲烷超限;断电":         "甲烷超限,断电",
		"a~b|c":           "a-b/c",
		"一\r\n二\t三":       "一  二 三",
		"１号井（东）；回风":       "1号井(东),回风",
		"\uFEFF示例\u3000矿": "示例 矿",
		"bad\xffbyte":     "bad?byte",
		"  padded  ":      "padded",
		"1#回风巷、工作面。":      "1#回风巷、工作面。",
		"x\u2028y\u0085z": "x y z",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// Config refuses exactly the names and places Clean would have to alter:
// what the operator typed is what the regulator gets.
func TestClean_AgreesWithConfigCheck(t *testing.T) {
	for _, s := range []string{
		"示例煤矿", "KJ95X", "a;b", "a~b", "a|b", "a\nb", "a\tb", "\uFEFFa", "１号", "a\u3000b", "（东）", "ok (east)",
		"bad\xff", " lead", "trail ", "x\u2028y", "、。", "#-_/.,:", "\x7f",
	} {
		rejected := config.MTTTextProblem(s) != ""
		if changed := Clean(s) != s; changed != rejected {
			t.Errorf("%q: Clean changes it %v, config rejects it %v", s, changed, rejected)
		}
	}
}

// Parse refuses what the regulator's parser would: a BOM, a line break, a
// missing "||" or '~', a record with a field too many or too few.
func TestParse_Strict(t *testing.T) {
	good := string(enc.Values(upload, []Value{{Point: "P", Value: Some(1), Time: upload}}).Data)
	if _, err := Parse(TypeCDSS, []byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"bom":         "\xEF\xBB\xBF" + good,
		"line break":  strings.Replace(good, "~", "~\n", 1),
		"no ||":       strings.TrimSuffix(good, "||"),
		"no ~":        strings.TrimSuffix(good, "~||") + "||",
		"extra field": strings.Replace(good, ";0;", ";0;x;", 1),
		"few fields":  strings.Replace(good, ";0;", ";", 1),
		"stray |":     strings.Replace(good, "P;", "P|;", 1),
		"not utf-8":   strings.Replace(good, "P", "\xff", 1),
	} {
		if _, err := Parse(TypeCDSS, []byte(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
	if _, _, _, err := ParseName("14010500123_CDSS_20250301083000.txt", cst); err == nil {
		t.Error("11-digit mine code accepted")
	}
}

// PointCode: mine code + system + value kind + type code + 8-digit
// sequence, 28 characters; a part that does not fit is an error.
func TestPointCode(t *testing.T) {
	c, err := PointCode("140105001234", SystemSafety, KindAnalog, SensorTypeMethane, 7)
	if err != nil || c != "14010500123401MN000100000007" || len(c) != 28 {
		t.Fatalf("PointCode = %q, %v", c, err)
	}
	for _, bad := range []func() error{
		func() error { _, e := PointCode("1401050012", "01", KindAnalog, "0001", 1); return e },
		func() error { _, e := PointCode("140105001234", "1", KindAnalog, "0001", 1); return e },
		func() error { _, e := PointCode("140105001234", "01", "M", "0001", 1); return e },
		func() error { _, e := PointCode("140105001234", "01", KindAnalog, "01", 1); return e },
		func() error { _, e := PointCode("140105001234", "01", KindAnalog, "0001", 0); return e },
	} {
		if bad() == nil {
			t.Error("bad part accepted")
		}
	}
}
