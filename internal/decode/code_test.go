package decode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hazmon/hazmon/internal/reading"
)

// Every sensor fault this package produces maps to its own fault code, and
// an error from elsewhere maps to none.
func TestCode_EveryDecodeFaultHasItsCode(t *testing.T) {
	for _, c := range []struct {
		name  string
		spec  Spec
		words []uint16
		want  reading.FaultCode
	}{
		{"outside range", Spec{Format: FormatUint16, Scale: 1, Min: 0, Max: 4, HasRange: true}, []uint16{5}, reading.CodeRange},
		{"no-value code", Spec{Format: FormatUint16, Scale: 1, NoValue: []int64{65535}}, []uint16{0xFFFF}, reading.CodeNoValue},
		{"float32 NaN", Spec{Format: FormatFloat32, Scale: 1}, []uint16{0x7FC0, 0x0000}, reading.CodeNaN},
		{"float32 +Inf", Spec{Format: FormatFloat32, Scale: 1}, []uint16{0x7F80, 0x0000}, reading.CodeInf},
		{"overflow after scale", Spec{Format: FormatFloat32, Scale: 1e300}, []uint16{0x7F7F, 0xFFFF}, reading.CodeInf},
		{"wrong register count", Spec{Format: FormatFloat32, Scale: 1}, []uint16{1}, reading.CodeFrame},
		{"unknown format", Spec{Format: "int8", Scale: 1}, []uint16{1}, reading.CodeConfig},
		{"unknown byte order", Spec{Format: FormatInt32, Order: "ACBD", Scale: 1}, []uint16{1, 2}, reading.CodeConfig},
	} {
		_, err := c.spec.Registers(c.words)
		if err == nil {
			t.Errorf("%s: no fault", c.name)
			continue
		}
		// Callers wrap it with context; the code survives.
		if got := Code(fmt.Errorf("sensor X: %w", err)); got != c.want {
			t.Errorf("%s (%v): code %q, want %q", c.name, err, got, c.want)
		}
	}
	if got := Code(errors.New("timeout")); got != "" {
		t.Errorf("foreign error: code %q, want none", got)
	}
	if got := Code(&Error{Kind: ErrScale, Msg: "scale 0"}); got != reading.CodeConfig {
		t.Errorf("scale: code %q, want config", got)
	}
}
