package decode

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
)

func TestSpec_Registers(t *testing.T) {
	type tc struct {
		name    string
		spec    Spec
		words   []uint16
		want    float64
		tol     float64 // 0: exact
		wantErr error   // kind; nil = success
		msg     string  // expected error message, if set
	}
	sp := func(format, order string) Spec { return Spec{Format: format, Order: order, Scale: 1} }
	scaled := func(format string, scale, offset float64) Spec {
		return Spec{Format: format, Scale: scale, Offset: offset}
	}
	ranged := func(format string, scale, lo, hi float64) Spec {
		return Spec{Format: format, Scale: scale, Min: lo, Max: hi, HasRange: true}
	}
	noval := func(format string, codes ...int64) Spec {
		return Spec{Format: format, Scale: 1, NoValue: codes}
	}
	cases := []tc{
		// D1: IEEE-754 word-swapped float.
		{name: "D1/float32_CDAB_238.6087", spec: sp("float32", "CDAB"), words: []uint16{0x9BD4, 0x436E}, want: 238.6087, tol: 1e-4},
		// D2: golden orders for 123456.0.
		{name: "D2/ABCD", spec: sp("float32", "ABCD"), words: []uint16{0x47F1, 0x2000}, want: 123456.0},
		{name: "D2/default_order_is_ABCD", spec: sp("float32", ""), words: []uint16{0x47F1, 0x2000}, want: 123456.0},
		{name: "D2/CDAB", spec: sp("float32", "CDAB"), words: []uint16{0x2000, 0x47F1}, want: 123456.0},
		{name: "D2/BADC", spec: sp("float32", "BADC"), words: []uint16{0xF147, 0x0020}, want: 123456.0},
		{name: "D2/DCBA", spec: sp("float32", "DCBA"), words: []uint16{0x0020, 0xF147}, want: 123456.0},
		// D3: a float spans two registers.
		{name: "D3/ABCD_232", spec: sp("float32", "ABCD"), words: []uint16{0x4368, 0x0000}, want: 232.0},
		{name: "D3/float32_over_one_register", spec: sp("float32", "ABCD"), words: []uint16{0x4368}, wantErr: ErrCount, msg: "want 2 registers for float32, got 1"},
		{name: "D3/int16_over_two_registers", spec: sp("int16", ""), words: []uint16{1, 2}, wantErr: ErrCount, msg: "want 1 registers for int16, got 2"},
		{name: "D3/no_registers", spec: sp("uint32", ""), words: nil, wantErr: ErrCount},
		{name: "D3/three_registers", spec: sp("uint32", ""), words: []uint16{1, 2, 3}, wantErr: ErrCount},
		// D4: word swap applies to floats too.
		{name: "D4/CDAB_200", spec: sp("float32", "CDAB"), words: []uint16{0x0000, 0x4348}, want: 200.0},
		{name: "D4/ABCD_denormal", spec: sp("float32", "ABCD"), words: []uint16{0x0000, 0x4348}, want: 2.413596e-41}, // the denormal, at float32 precision (7 significant digits),
		// D5: signedness.
		{name: "D5/int16_FF96_x0.1", spec: scaled("int16", 0.1, 0), words: []uint16{0xFF96}, want: -10.6, tol: 1e-9},
		{name: "D5/uint16_FF96_x0.1", spec: scaled("uint16", 0.1, 0), words: []uint16{0xFF96}, want: 6543.0, tol: 1e-9},
		{name: "D5/uint16_9C40", spec: sp("uint16", ""), words: []uint16{0x9C40}, want: 40000},
		{name: "D5/int16_9C40", spec: sp("int16", ""), words: []uint16{0x9C40}, want: -25536},
		// D6: NaN, Inf and no-value codes are faults.
		{name: "D6/float32_NaN", spec: sp("float32", ""), words: []uint16{0x7FC0, 0x0000}, wantErr: ErrNaN, msg: "float32 is NaN"},
		{name: "D6/float32_noncanonical_NaN", spec: sp("float32", ""), words: []uint16{0x7FBF, 0xFF80}, wantErr: ErrNaN, msg: "float32 is NaN"},
		{name: "D6/float32_negative_NaN_CDAB", spec: sp("float32", "CDAB"), words: []uint16{0x0001, 0xFF80}, wantErr: ErrNaN},
		{name: "D6/float32_+Inf", spec: sp("float32", ""), words: []uint16{0x7F80, 0x0000}, wantErr: ErrInf, msg: "float32 is +Inf"},
		{name: "D6/float32_-Inf", spec: sp("float32", ""), words: []uint16{0xFF80, 0x0000}, wantErr: ErrInf, msg: "float32 is -Inf"},
		{name: "D6/int32_8000_0000_no_value_signed", spec: noval("int32", -2147483648), words: []uint16{0x8000, 0x0000}, wantErr: ErrNoValue, msg: "raw -2147483648 is the sensor's no-value code"},
		{name: "D6/int32_8000_0000_no_value_unsigned_code", spec: noval("int32", 0x80000000), words: []uint16{0x8000, 0x0000}, wantErr: ErrNoValue},
		{name: "D6/int32_8000_0000_unlisted_is_a_value", spec: sp("int32", ""), words: []uint16{0x8000, 0x0000}, want: -2147483648},
		{name: "D6/uint16_FFFF_no_value", spec: noval("uint16", 65535), words: []uint16{0xFFFF}, wantErr: ErrNoValue, msg: "raw 65535 is the sensor's no-value code"},
		{name: "D6/int16_FFFF_matches_65535", spec: noval("int16", 65535), words: []uint16{0xFFFF}, wantErr: ErrNoValue},
		{name: "D6/int16_FFFF_matches_-1", spec: noval("int16", -1), words: []uint16{0xFFFF}, wantErr: ErrNoValue},
		{name: "D6/uint16_FFFE_not_listed", spec: noval("uint16", 65535), words: []uint16{0xFFFE}, want: 65534},
		{name: "D6/no_value_checked_before_scale", spec: Spec{Format: "uint16", Scale: 0.01, NoValue: []int64{65535}}, words: []uint16{0xFFFF}, wantErr: ErrNoValue},
		{name: "D6/float32_no_value_float_code", spec: noval("float32", -9999), words: []uint16{0xC61C, 0x3C00}, wantErr: ErrNoValue},
		{name: "D6/bool_register_no_value", spec: noval("bool", 65535), words: []uint16{0xFFFF}, wantErr: ErrNoValue},
		// Plain values of every format.
		{name: "int16/positive", spec: sp("int16", ""), words: []uint16{0x7FFF}, want: 32767},
		{name: "int16/min", spec: sp("int16", ""), words: []uint16{0x8000}, want: -32768},
		{name: "uint16/65535", spec: sp("uint16", ""), words: []uint16{0xFFFF}, want: 65535},
		{name: "uint16/zero", spec: sp("uint16", ""), words: []uint16{0x0000}, want: 0},
		{name: "int32/negative_ABCD", spec: sp("int32", "ABCD"), words: []uint16{0xFFFE, 0x1DC0}, want: -123456},
		{name: "int32/negative_CDAB", spec: sp("int32", "CDAB"), words: []uint16{0x1DC0, 0xFFFE}, want: -123456},
		{name: "int32/negative_BADC", spec: sp("int32", "BADC"), words: []uint16{0xFEFF, 0xC01D}, want: -123456},
		{name: "int32/negative_DCBA", spec: sp("int32", "DCBA"), words: []uint16{0xC01D, 0xFEFF}, want: -123456},
		{name: "int32/minus_one", spec: sp("int32", ""), words: []uint16{0xFFFF, 0xFFFF}, want: -1},
		{name: "uint32/ABCD", spec: sp("uint32", "ABCD"), words: []uint16{0x0001, 0xE240}, want: 123456},
		{name: "uint32/CDAB", spec: sp("uint32", "CDAB"), words: []uint16{0xE240, 0x0001}, want: 123456},
		{name: "uint32/BADC", spec: sp("uint32", "BADC"), words: []uint16{0x0100, 0x40E2}, want: 123456},
		{name: "uint32/DCBA", spec: sp("uint32", "DCBA"), words: []uint16{0x40E2, 0x0100}, want: 123456},
		{name: "uint32/max", spec: sp("uint32", ""), words: []uint16{0xFFFF, 0xFFFF}, want: 4294967295},
		{name: "float32/negative", spec: sp("float32", ""), words: []uint16{0xC2F6, 0xE979}, want: -123.456}, // float32 noise removed: 7 significant digits,
		{name: "float32/negative_zero_is_valid", spec: sp("float32", ""), words: []uint16{0x8000, 0x0000}, want: 0},
		// 16-bit formats: BADC and DCBA swap the bytes, CDAB leaves them.
		{name: "uint16/ABCD", spec: sp("uint16", "ABCD"), words: []uint16{0x1234}, want: 0x1234},
		{name: "uint16/CDAB", spec: sp("uint16", "CDAB"), words: []uint16{0x1234}, want: 0x1234},
		{name: "uint16/BADC", spec: sp("uint16", "BADC"), words: []uint16{0x1234}, want: 0x3412},
		{name: "uint16/DCBA", spec: sp("uint16", "DCBA"), words: []uint16{0x1234}, want: 0x3412},
		{name: "int16/BADC_negative", spec: sp("int16", "BADC"), words: []uint16{0x96FF}, want: -106},
		// bool on a register.
		{name: "bool/zero", spec: sp("bool", ""), words: []uint16{0x0000}, want: 0},
		{name: "bool/one", spec: sp("bool", ""), words: []uint16{0x0001}, want: 1},
		{name: "bool/nonzero_high_byte", spec: sp("bool", ""), words: []uint16{0xFF00}, want: 1},
		{name: "bool/scale_not_applied", spec: scaled("bool", 10, 5), words: []uint16{0x0002}, want: 1},
		// Scale and offset.
		{name: "scale/x0.01_methane", spec: scaled("uint16", 0.01, 0), words: []uint16{150}, want: 1.5, tol: 1e-12},
		{name: "scale/offset_4_20mA", spec: scaled("int16", 0.1, -40), words: []uint16{650}, want: 25, tol: 1e-9},
		{name: "scale/negative_scale", spec: scaled("int16", -2, 1), words: []uint16{3}, want: -5},
		{name: "scale/float_overflow_is_fault", spec: scaled("float32", 1e300, 0), words: []uint16{0x7F7F, 0xFFFF}, wantErr: ErrInf},
		// Range: edges are valid, just outside is a fault.
		{name: "range/at_min", spec: ranged("int16", 0.1, -10, 40), words: []uint16{0xFF9C}, want: -10},
		{name: "range/at_max", spec: ranged("uint16", 0.1, 0, 4), words: []uint16{40}, want: 4},
		{name: "range/just_below_min", spec: ranged("int16", 0.1, -10, 40), words: []uint16{0xFF9B}, wantErr: ErrRange, msg: "-10.100000000000001 outside range [-10, 40]"},
		{name: "range/just_above_max", spec: ranged("uint16", 0.1, 0, 4), words: []uint16{41}, wantErr: ErrRange},
		{name: "range/message", spec: Spec{Format: "float32", Scale: 1, Min: 0, Max: 4, HasRange: true}, words: []uint16{0x40A6, 0x6666}, wantErr: ErrRange, msg: "5.2 outside range [0, 4]"},
		{name: "range/inside", spec: ranged("uint16", 0.01, 0, 4), words: []uint16{250}, want: 2.5, tol: 1e-12},
		{name: "range/NaN_bound_is_fault", spec: Spec{Format: "uint16", Scale: 1, Min: math.NaN(), Max: 4, HasRange: true}, words: []uint16{1}, wantErr: ErrRange},
		// Bad specs.
		{name: "spec/unknown_format", spec: sp("float64", ""), words: []uint16{1, 2}, wantErr: ErrFormat},
		{name: "spec/unknown_order", spec: sp("float32", "BACD"), words: []uint16{1, 2}, wantErr: ErrOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.spec.Registers(c.words)
			check(t, got, err, c.want, c.tol, c.wantErr, c.msg)
			// Bytes must agree with Registers on the same wire data.
			b := make([]byte, 0, 2*len(c.words))
			for _, w := range c.words {
				b = append(b, byte(w>>8), byte(w))
			}
			gotB, errB := c.spec.Bytes(b)
			if c.wantErr != ErrCount {
				check(t, gotB, errB, c.want, c.tol, c.wantErr, c.msg)
			} else if !errors.Is(errB, ErrCount) {
				t.Errorf("Bytes(% X): err = %v, want ErrCount", b, errB)
			}
		})
	}
}

func check(t *testing.T, got float64, err error, want, tol float64, wantErr error, msg string) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want kind %v", err, wantErr)
		}
		if got != 0 {
			t.Errorf("value with a fault = %v, want 0", got)
		}
		if msg != "" && err.Error() != msg {
			t.Errorf("message = %q, want %q", err.Error(), msg)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("err %T is not *Error", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if math.Abs(got-want) > tol {
		t.Errorf("got %v, want %v (±%g)", got, want, tol)
	}
}

func TestSpec_Bytes(t *testing.T) {
	s := Spec{Format: "float32", Order: "CDAB", Scale: 1}
	got, err := s.Bytes([]byte{0x9B, 0xD4, 0x43, 0x6E})
	if err != nil || math.Abs(got-238.6087) > 1e-4 {
		t.Fatalf("Bytes = %v, %v; want 238.6087", got, err)
	}
	_, err = s.Bytes([]byte{0x9B, 0xD4, 0x43})
	if !errors.Is(err, ErrCount) || err.Error() != "want 4 bytes (2 registers) for float32, got 3" {
		t.Fatalf("odd byte count: err = %v", err)
	}
}

func TestSpec_Bit(t *testing.T) {
	s := Spec{Format: "bool", Scale: 10, Offset: 3}
	for _, c := range []struct {
		on   bool
		want float64
	}{{true, 1}, {false, 0}} {
		got, err := s.Bit(c.on)
		if err != nil || got != c.want {
			t.Errorf("Bit(%v) = %v, %v; want %v", c.on, got, err, c.want)
		}
	}
}

// For 32-bit formats, every other byte order of a non-palindromic input
// decodes to a different result (a value, or a fault where the other order
// gave a value) than ABCD (D4).
func TestSpec_Registers_orderChangesResult(t *testing.T) {
	orders := []string{OrderABCD, OrderCDAB, OrderBADC, OrderDCBA}
	inputs := [][2]uint16{
		{0x0000, 0x4348}, {0x4348, 0x0000}, {0x47F1, 0x2000}, {0x9BD4, 0x436E},
		{0x1234, 0x5678}, {0x0001, 0x0000}, {0xFFFE, 0x1DC0}, {0x3F80, 0x0001},
	}
	// Add pseudo-random inputs (a fixed LCG, so the test is reproducible).
	x := uint32(12345)
	for range 2000 {
		x = x*1664525 + 1013904223
		y := x*1664525 + 1013904223
		x = y
		inputs = append(inputs, [2]uint16{uint16(x >> 16), uint16(y)})
	}
	for _, format := range []string{FormatInt32, FormatUint32, FormatFloat32} {
		for _, in := range inputs {
			b := [4]byte{byte(in[0] >> 8), byte(in[0]), byte(in[1] >> 8), byte(in[1])}
			// The 4 orders permute the bytes; two orders agree only when the
			// permuted byte strings are equal.
			perm := map[string][4]byte{
				OrderABCD: b,
				OrderCDAB: {b[2], b[3], b[0], b[1]},
				OrderBADC: {b[1], b[0], b[3], b[2]},
				OrderDCBA: {b[3], b[2], b[1], b[0]},
			}
			type res struct {
				v   float64
				err bool
			}
			results := map[string]res{}
			for _, o := range orders {
				s := Spec{Format: format, Order: o, Scale: 1}
				v, err := s.Registers(in[:])
				results[o] = res{v, err != nil}
			}
			for i, o1 := range orders {
				for _, o2 := range orders[i+1:] {
					if perm[o1] == perm[o2] {
						continue // palindromic for this pair
					}
					r1, r2 := results[o1], results[o2]
					if r1.err && r2.err {
						continue // both faults (e.g. NaN in both orders): nothing to compare
					}
					// Two distinct bit patterns are distinct values, except +0/-0 for float.
					if !r1.err && !r2.err && r1.v == r2.v && !(format == FormatFloat32 && r1.v == 0) {
						t.Errorf("%s % X: %s and %s both give %v", format, b, o1, o2, r1.v)
					}
				}
			}
		}
	}
}

func TestFromSensor(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	good := config.Sensor{ID: "CH4-101", Format: "uint16", Scale: f(0.01), Offset: 0, Range: []float64{0, 4}, NoValue: []int64{65535}}
	s, err := FromSensor(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != "uint16" || s.Order != "ABCD" || s.Scale != 0.01 || !s.HasRange || s.Min != 0 || s.Max != 4 || len(s.NoValue) != 1 {
		t.Fatalf("FromSensor = %+v", s)
	}
	if v, err := s.Registers([]uint16{150}); err != nil || math.Abs(v-1.5) > 1e-12 {
		t.Fatalf("decode 150 = %v, %v", v, err)
	}
	s, err = FromSensor(config.Sensor{ID: "P-1", Format: "float32", ByteOrder: "CDAB"})
	if err != nil || s.Scale != 1 || s.HasRange || s.Order != "CDAB" {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
	bad := []struct {
		name string
		s    config.Sensor
		kind error
	}{
		{"unknown_format", config.Sensor{ID: "X", Format: "float64"}, ErrFormat},
		{"empty_format", config.Sensor{ID: "X"}, ErrFormat},
		{"unknown_order", config.Sensor{ID: "X", Format: "int32", ByteOrder: "abcd"}, ErrOrder},
		{"zero_scale", config.Sensor{ID: "X", Format: "int16", Scale: f(0)}, ErrScale},
		{"nan_scale", config.Sensor{ID: "X", Format: "int16", Scale: f(math.NaN())}, ErrScale},
		{"inf_offset", config.Sensor{ID: "X", Format: "int16", Offset: math.Inf(1)}, ErrScale},
		{"range_one_number", config.Sensor{ID: "X", Format: "int16", Range: []float64{4}}, ErrRange},
		{"range_on_bool", config.Sensor{ID: "X", Format: "bool", Range: []float64{0, 1}}, ErrRange},
		{"range_reversed", config.Sensor{ID: "X", Format: "int16", Range: []float64{4, 0}}, ErrRange},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromSensor(c.s)
			if !errors.Is(err, c.kind) {
				t.Fatalf("err = %v, want %v", err, c.kind)
			}
			if !strings.HasPrefix(err.Error(), "sensor X: ") {
				t.Errorf("err %q lacks the sensor id", err)
			}
		})
	}
}

func TestWords(t *testing.T) {
	for format, want := range map[string]int{"int16": 1, "uint16": 1, "bool": 1, "int32": 2, "uint32": 2, "float32": 2} {
		if got, err := Words(format); err != nil || got != want {
			t.Errorf("Words(%q) = %d, %v; want %d", format, got, err, want)
		}
	}
	if _, err := Words("float64"); !errors.Is(err, ErrFormat) {
		t.Errorf("Words(float64) err = %v", err)
	}
}

// FuzzSpecRegisters checks that decoding never panics and that a nil error
// always comes with a finite value inside the configured range.
func FuzzSpecRegisters(f *testing.F) {
	f.Add([]byte{0x9B, 0xD4, 0x43, 0x6E}, uint8(4), uint8(1), 1.0, 0.0, false, 0.0, 0.0, int64(0))
	f.Add([]byte{0x7F, 0xC0, 0x00, 0x00}, uint8(4), uint8(0), 1.0, 0.0, false, 0.0, 0.0, int64(0))
	f.Add([]byte{0xFF, 0x96}, uint8(0), uint8(0), 0.1, 0.0, true, -20.0, 20.0, int64(65535))
	f.Fuzz(func(t *testing.T, data []byte, format, order uint8, scale, offset float64, hasRange bool, lo, hi float64, noValue int64) {
		formats := []string{FormatInt16, FormatUint16, FormatInt32, FormatUint32, FormatFloat32, FormatBool, "junk"}
		orders := []string{OrderABCD, OrderCDAB, OrderBADC, OrderDCBA, "", "XYZW"}
		s := Spec{
			Format: formats[int(format)%len(formats)], Order: orders[int(order)%len(orders)],
			Scale: scale, Offset: offset, HasRange: hasRange, Min: lo, Max: hi, NoValue: []int64{noValue},
		}
		words := make([]uint16, len(data)/2)
		for i := range words {
			words[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		v, err := s.Registers(words)
		vb, errb := s.Bytes(data)
		for _, r := range []struct {
			v   float64
			err error
		}{{v, err}, {vb, errb}} {
			if r.err != nil {
				var e *Error
				if !errors.As(r.err, &e) || e.Kind == nil {
					t.Fatalf("error %v is not a *Error with a kind", r.err)
				}
				if r.v != 0 {
					t.Fatalf("fault %v returned value %v", r.err, r.v)
				}
				continue
			}
			if math.IsNaN(r.v) || math.IsInf(r.v, 0) {
				t.Fatalf("nil error with non-finite value %v", r.v)
			}
			if s.Format == FormatBool && r.v != 0 && r.v != 1 {
				t.Fatalf("bool decoded to %v", r.v)
			}
			if hasRange && s.Format != FormatBool && (r.v < lo || r.v > hi) {
				t.Fatalf("nil error with %v outside [%v, %v]", r.v, lo, hi)
			}
		}
		if len(data)%2 == 0 && (err == nil) != (errb == nil) {
			t.Fatalf("Registers and Bytes disagree: %v vs %v", err, errb)
		}
	})
}

func BenchmarkSpec_Bytes(b *testing.B) {
	s := Spec{Format: "float32", Order: "CDAB", Scale: 1, HasRange: true, Min: 0, Max: 1000, NoValue: []int64{-1}}
	data := []byte{0x9B, 0xD4, 0x43, 0x6E}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Bytes(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSpec_Registers(b *testing.B) {
	s := Spec{Format: "uint16", Order: "ABCD", Scale: 0.01, HasRange: true, Min: 0, Max: 4, NoValue: []int64{65535}}
	words := []uint16{150}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Registers(words); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSpec_allocs turns the benchmark's 0 allocs/op into a test.
func TestSpec_allocs(t *testing.T) {
	s := Spec{Format: "float32", Order: "CDAB", Scale: 1, HasRange: true, Min: 0, Max: 1000, NoValue: []int64{-1}}
	data := []byte{0x9B, 0xD4, 0x43, 0x6E}
	words := []uint16{0x9BD4, 0x436E}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.Bytes(data) }); n != 0 {
		t.Errorf("Bytes allocates %v per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.Registers(words) }); n != 0 {
		t.Errorf("Registers allocates %v per call", n)
	}
}

// TestSpec_Rounding: scaled integers are rounded to the scale's decimals and
// float32 values to float32 precision, so the platform never sees
// 20.900000000000002 for a register holding 2090 × 0.01.
func TestSpec_Rounding(t *testing.T) {
	cases := []struct {
		name  string
		spec  Spec
		words []uint16
		want  string
	}{
		{"uint16 x0.01", Spec{Format: "uint16", Scale: 0.01, Decimals: 2}, []uint16{2090}, "20.9"},
		{"uint16 x0.01 150", Spec{Format: "uint16", Scale: 0.01, Decimals: 2}, []uint16{150}, "1.5"},
		{"int16 x0.1 offset -40", Spec{Format: "int16", Scale: 0.1, Offset: -40, Decimals: 1}, []uint16{633}, "23.3"},
		{"float32 2.4957373", Spec{Format: "float32", Scale: 1}, []uint16{0x401F, 0xBA4E}, "2.495746"},
		{"float32 0.8", Spec{Format: "float32", Scale: 1}, []uint16{0x3F4C, 0xCCCD}, "0.8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.spec.Registers(tc.words)
			if err != nil {
				t.Fatal(err)
			}
			if got := strconv.FormatFloat(v, 'g', -1, 64); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	sp, err := FromSensor(config.Sensor{ID: "x", Format: "uint16", Scale: ptr(0.01), Offset: 0.5})
	if err != nil || sp.Decimals != 2 {
		t.Fatalf("FromSensor decimals = %d, %v", sp.Decimals, err)
	}
}
func ptr(f float64) *float64 { return &f }
