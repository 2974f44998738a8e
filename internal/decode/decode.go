// Package decode turns raw Modbus data (register words, coil or discrete
// input bits) into an engineering value, or into a fault reason.
//
// It is pure: no I/O, no clock, no logging, and it never depends on the host
// byte order (words are assembled with explicit shifts). A fault never
// carries a usable number: every method returns 0 together with a non-nil
// error, and callers must ignore the value then.
package decode

import (
	"errors"
	"fmt"
	"math"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// Format names accepted in Spec.Format (config key "format").
const (
	FormatInt16   = "int16"
	FormatUint16  = "uint16"
	FormatInt32   = "int32"
	FormatUint32  = "uint32"
	FormatFloat32 = "float32" // IEEE-754 single precision over two registers
	FormatBool    = "bool"
)

// Byte orders accepted in Spec.Order (config key "byte_order"). The letters
// name the bytes of the 32-bit value from most to least significant (A) as
// they appear on the wire, register 0 first.
const (
	OrderABCD = "ABCD" // big-endian, high word first (the default, also "")
	OrderCDAB = "CDAB" // words swapped: low word first ("word swap")
	OrderBADC = "BADC" // bytes swapped within each word, high word first
	OrderDCBA = "DCBA" // fully reversed (little-endian)
)

// Kinds of error. Every error returned by this package wraps exactly one of
// them, so callers can test the kind with errors.Is. ErrFormat and ErrOrder
// are configuration errors; all the others are sensor faults.
var (
	ErrFormat  = errors.New("unknown format")            // Spec.Format is not one of the Format* names
	ErrOrder   = errors.New("unknown byte order")        // Spec.Order is not one of the Order* names
	ErrScale   = errors.New("invalid scale")             // scale is 0, NaN or infinite (FromSensor only)
	ErrRange   = errors.New("value outside valid range") // engineering value outside [Min, Max], or a bad range in the config
	ErrCount   = errors.New("wrong register count")      // not the number of registers (or bytes) the format needs
	ErrNaN     = errors.New("value is NaN")              // float32 NaN, canonical or not
	ErrInf     = errors.New("value is infinite")         // float32 ±Inf, or a value that overflows after scaling
	ErrNoValue = errors.New("sensor's no-value code")    // raw value is one of Spec.NoValue
)

// Error is the error type returned by this package: a short, specific
// message (the fault reason published with the reading) and its kind, one of
// the Err* sentinels, which errors.Is finds through Unwrap.
type Error struct {
	Kind error  // one of ErrFormat, ErrOrder, ErrScale, ErrRange, ErrCount, ErrNaN, ErrInf, ErrNoValue
	Msg  string // e.g. "float32 is NaN", "5.2 outside range [0, 4]"
}

// Error returns the fault reason.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the error's kind.
func (e *Error) Unwrap() error { return e.Kind }

func fault(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Spec says how to turn raw words or bits into an engineering value:
// value = raw*Scale + Offset, then checked against [Min, Max] if HasRange.
// Build it with FromSensor; a hand-built Spec must set Scale (0 is not
// replaced by 1).
type Spec struct {
	Format   string  // FormatInt16, FormatUint16, FormatInt32, FormatUint32, FormatFloat32 or FormatBool
	Order    string  // OrderABCD ("" means ABCD), OrderCDAB, OrderBADC or OrderDCBA; see Registers
	Scale    float64 // multiplier applied to the raw value; not applied to bool
	Offset   float64 // added after Scale, in engineering units; not applied to bool
	Min, Max float64 // valid engineering range (inclusive), checked only if HasRange; never for bool
	HasRange bool    // whether Min and Max apply
	NoValue  []int64 // raw codes meaning "no value" (e.g. 65535, -2147483648); see Registers
	// Decimals, when > 0, rounds integer-format values to that many
	// decimals after scale and offset, so 2090 × 0.01 is 20.9, not
	// 20.900000000000002. FromSensor derives it from scale and offset.
	Decimals int
}

// FromSensor builds the Spec of a configured sensor: scale defaults to 1,
// byte order to ABCD; range is [min, max] or absent. It returns an error
// wrapping ErrFormat, ErrOrder, ErrScale or ErrRange for a bad config.
func FromSensor(s config.Sensor) (Spec, error) {
	sp := Spec{
		Format:  s.Format,
		Order:   s.ByteOrder,
		Scale:   s.ScaleOr1(),
		Offset:  s.Offset,
		NoValue: s.NoValue,
	}
	if sp.Order == "" {
		sp.Order = OrderABCD
	}
	if sp.Format != FormatFloat32 {
		sp.Decimals = max(decimals(sp.Scale), decimals(sp.Offset))
	}
	if _, err := Words(sp.Format); err != nil {
		return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	if _, ok := orderCode(sp.Order); !ok {
		return Spec{}, fmt.Errorf("sensor %s: %w", s.ID,
			fault(ErrOrder, "unknown byte_order %q (want ABCD, CDAB, BADC or DCBA)", sp.Order))
	}
	if sp.Scale == 0 || math.IsNaN(sp.Scale) || math.IsInf(sp.Scale, 0) {
		return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, fault(ErrScale, "scale %g is not a finite non-zero number", sp.Scale))
	}
	if math.IsNaN(sp.Offset) || math.IsInf(sp.Offset, 0) {
		return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, fault(ErrScale, "offset %g is not finite", sp.Offset))
	}
	switch len(s.Range) {
	case 0:
	case 2:
		if sp.Format == FormatBool {
			return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, fault(ErrRange, "range does not apply to format bool"))
		}
		sp.Min, sp.Max, sp.HasRange = s.Range[0], s.Range[1], true
		if !(sp.Min <= sp.Max) || math.IsInf(sp.Min, 0) || math.IsInf(sp.Max, 0) {
			return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, fault(ErrRange, "range [%g, %g] is not a finite [min, max] with min <= max", sp.Min, sp.Max))
		}
	default:
		return Spec{}, fmt.Errorf("sensor %s: %w", s.ID, fault(ErrRange, "range has %d numbers, want [min, max]", len(s.Range)))
	}
	return sp, nil
}

// Words returns how many 16-bit registers a format occupies: 1 for int16,
// uint16 and bool, 2 for int32, uint32 and float32. An unknown format gives
// an error wrapping ErrFormat.
func Words(format string) (int, error) {
	switch format {
	case FormatInt16, FormatUint16, FormatBool:
		return 1, nil
	case FormatInt32, FormatUint32, FormatFloat32:
		return 2, nil
	}
	return 0, fault(ErrFormat, "unknown format %q (want int16, uint16, int32, uint32, float32 or bool)", format)
}

// Byte-order codes: bit 0 = swap bytes within each word, bit 1 = swap words.
const (
	swapBytes = 1
	swapWords = 2
)

func orderCode(order string) (int, bool) {
	switch order {
	case OrderABCD, "":
		return 0, true
	case OrderCDAB:
		return swapWords, true
	case OrderBADC:
		return swapBytes, true
	case OrderDCBA:
		return swapBytes | swapWords, true
	}
	return 0, false
}

// Registers decodes register words as read from holding or input registers:
// each word as the big-endian value on the wire, words[0] the first
// (lowest-address) register. It needs exactly Words(s.Format) words.
//
// For 32-bit formats Order names the byte order; for 16-bit formats only the
// byte swap applies (BADC and DCBA swap the two bytes, ABCD and CDAB leave
// them). A bool register is 1 when nonzero, else 0, with no scale or offset.
//
// Faults, checked in this order: wrong word count (ErrCount); float32 NaN or
// ±Inf (ErrNaN, ErrInf); a raw value listed in NoValue (ErrNoValue), where a
// code matches if it equals the raw bits read as signed or as unsigned (so
// int32 0x80000000 matches both -2147483648 and 2147483648, int16 0xFFFF
// matches -1 and 65535) or, for float32, equals the float value exactly; a
// non-finite value after scaling (ErrInf); a value outside [Min, Max]
// (ErrRange). The range is inclusive, with a tolerance of 1e-9 relative to
// the bound for float rounding of raw*Scale (a value within it is returned
// as the bound itself), so raw 40 × 0.1 is valid in [0, 4].
func (s *Spec) Registers(words []uint16) (float64, error) {
	switch len(words) {
	case 1:
		w := words[0]
		return s.decode(byte(w>>8), byte(w), 0, 0, 1)
	case 2:
		w0, w1 := words[0], words[1]
		return s.decode(byte(w0>>8), byte(w0), byte(w1>>8), byte(w1), 2)
	}
	return 0, s.countFault(len(words), "registers")
}

// Bytes is Registers on the raw register data of a Modbus response (as
// goburrow/modbus returns it for function codes 3 and 4): 2 bytes per
// register, big-endian, first register first. It does not allocate unless
// it returns an error.
func (s *Spec) Bytes(b []byte) (float64, error) {
	switch len(b) {
	case 2:
		return s.decode(b[0], b[1], 0, 0, 1)
	case 4:
		return s.decode(b[0], b[1], b[2], b[3], 2)
	}
	return 0, s.countFault(len(b), "bytes")
}

// Bit decodes a coil or discrete input: 1 when on, else 0. Scale, offset,
// range and no-value codes do not apply to bits.
func (s *Spec) Bit(on bool) (float64, error) {
	if on {
		return 1, nil
	}
	return 0, nil
}

func (s *Spec) countFault(got int, unit string) error {
	want, err := Words(s.Format)
	if err != nil {
		return err
	}
	if unit == "bytes" {
		return fault(ErrCount, "want %d bytes (%d registers) for %s, got %d", 2*want, want, s.Format, got)
	}
	return fault(ErrCount, "want %d registers for %s, got %d", want, s.Format, got)
}

// decode decodes the n registers (1 or 2) whose wire bytes are b0 b1 [b2 b3].
func (s *Spec) decode(b0, b1, b2, b3 byte, n int) (float64, error) {
	want, err := Words(s.Format)
	if err != nil {
		return 0, err
	}
	if want != n {
		return 0, s.countFault(n, "registers")
	}
	order, ok := orderCode(s.Order)
	if !ok {
		return 0, fault(ErrOrder, "unknown byte order %q", s.Order)
	}
	if order&swapBytes != 0 {
		b0, b1, b2, b3 = b1, b0, b3, b2
	}
	if n == 1 {
		bits := uint16(b0)<<8 | uint16(b1)
		if s.isNoValue(uint64(bits), int64(int16(bits))) {
			return 0, s.noValueFault(uint64(bits), int64(int16(bits)), math.NaN())
		}
		switch s.Format {
		case FormatBool:
			if bits != 0 {
				return 1, nil
			}
			return 0, nil
		case FormatInt16:
			return s.finish(float64(int16(bits)))
		default: // uint16
			return s.finish(float64(bits))
		}
	}
	if order&swapWords != 0 {
		b0, b1, b2, b3 = b2, b3, b0, b1
	}
	bits := uint32(b0)<<24 | uint32(b1)<<16 | uint32(b2)<<8 | uint32(b3)
	signed := int64(int32(bits))
	switch s.Format {
	case FormatFloat32:
		f := float64(math.Float32frombits(bits))
		if math.IsNaN(f) {
			return 0, fault(ErrNaN, "float32 is NaN")
		}
		if math.IsInf(f, 1) {
			return 0, fault(ErrInf, "float32 is +Inf")
		}
		if math.IsInf(f, -1) {
			return 0, fault(ErrInf, "float32 is -Inf")
		}
		if s.isNoValue(uint64(bits), signed) || s.isNoValueFloat(f) {
			return 0, s.noValueFault(uint64(bits), signed, f)
		}
		return s.finish(f)
	case FormatInt32:
		if s.isNoValue(uint64(bits), signed) {
			return 0, s.noValueFault(uint64(bits), signed, math.NaN())
		}
		return s.finish(float64(signed))
	default: // uint32
		if s.isNoValue(uint64(bits), signed) {
			return 0, s.noValueFault(uint64(bits), signed, math.NaN())
		}
		return s.finish(float64(bits))
	}
}

func (s *Spec) isNoValue(unsigned uint64, signed int64) bool {
	for _, c := range s.NoValue {
		if c == signed || (c >= 0 && uint64(c) == unsigned) {
			return true
		}
	}
	return false
}

func (s *Spec) isNoValueFloat(f float64) bool {
	for _, c := range s.NoValue {
		if float64(c) == f {
			return true
		}
	}
	return false
}

func (s *Spec) noValueFault(unsigned uint64, signed int64, f float64) error {
	for _, c := range s.NoValue {
		if c == signed || (c >= 0 && uint64(c) == unsigned) || float64(c) == f {
			return fault(ErrNoValue, "raw %d is the sensor's no-value code", c)
		}
	}
	return fault(ErrNoValue, "raw value is the sensor's no-value code") // not reached
}

// finish applies scale and offset and checks finiteness and range.
func (s *Spec) finish(raw float64) (float64, error) {
	if s.Format == FormatFloat32 {
		raw = roundSignificant(raw, 7) // what the float32 means, without float64 noise
	}
	v := raw*s.Scale + s.Offset
	if s.Decimals > 0 {
		p := pow10[s.Decimals]
		v = math.Round(v*p) / p
	}
	if math.IsNaN(v) {
		return 0, fault(ErrNaN, "raw %g × scale %g + offset %g is NaN", raw, s.Scale, s.Offset)
	}
	if math.IsInf(v, 0) {
		return 0, fault(ErrInf, "raw %g × scale %g + offset %g overflows to %g", raw, s.Scale, s.Offset, v)
	}
	if !s.HasRange {
		return v, nil
	}
	lo := s.Min - 1e-9*math.Max(1, math.Abs(s.Min))
	hi := s.Max + 1e-9*math.Max(1, math.Abs(s.Max))
	if !(v >= lo && v <= hi) {
		return 0, fault(ErrRange, "%g outside range [%g, %g]", v, s.Min, s.Max)
	}
	// Within the tolerance: report the bound itself, never a value outside it.
	if v < s.Min {
		v = s.Min
	}
	if v > s.Max {
		v = s.Max
	}
	return v, nil
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// decimals returns how many decimals x has in its shortest decimal form
// (0.01 → 2, 0.5 → 1, 10 → 0), at most 9.
func decimals(x float64) int {
	for d := 0; d < len(pow10); d++ {
		y := x * pow10[d]
		if math.Abs(y-math.Round(y)) < 1e-9*math.Max(1, math.Abs(y)) {
			return d
		}
	}
	return len(pow10) - 1
}

// roundSignificant rounds x to n significant decimal digits (n <= 9).
func roundSignificant(x float64, n int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	e := int(math.Floor(math.Log10(math.Abs(x)))) - n + 1
	if e >= 0 {
		p := math.Pow(10, float64(e))
		return math.Round(x/p) * p
	}
	p := math.Pow(10, float64(-e))
	return math.Round(x*p) / p
}

// Code returns the fault code of an error of this package (by its kind):
// range, no_value, nan, inf; a wrong register count is a malformed reply
// (frame); the configuration kinds (format, byte order, scale) are config.
// It returns "" for an error that is not one of this package's.
func Code(err error) reading.FaultCode {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Kind {
	case ErrRange:
		return reading.CodeRange
	case ErrNoValue:
		return reading.CodeNoValue
	case ErrNaN:
		return reading.CodeNaN
	case ErrInf:
		return reading.CodeInf
	case ErrCount:
		return reading.CodeFrame
	case ErrFormat, ErrOrder, ErrScale:
		return reading.CodeConfig
	}
	return reading.CodeUnknown
}
