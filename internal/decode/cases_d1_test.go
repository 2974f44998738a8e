package decode

import (
	"errors"
	"math"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
)

// D1: "float" means IEEE-754. Holding registers [9BD4, 436E], documented
// as a word-swapped float (CDAB), are 238.6087 through the config path
// (FromSensor), not an integer reading of the same words. A scale other
// than 1 on that float (config validation warns about it) lands outside
// the sensor's range and must be a range fault, never a published number.
func TestCases_D1(t *testing.T) {
	words := []uint16{0x9BD4, 0x436E}
	sp, err := FromSensor(config.Sensor{ID: "LVL-1", Format: "float32", ByteOrder: "CDAB", Range: []float64{0, 1000}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sp.Registers(words)
	if err != nil || v != 238.6087 { // float32 rounded to 7 significant digits
		t.Fatalf("CDAB [9BD4, 436E] = %v, %v; want exactly 238.6087", v, err)
	}
	// The same words read as a 32-bit integer would be a wrong number.
	spi, _ := FromSensor(config.Sensor{ID: "LVL-1", Format: "uint32", ByteOrder: "CDAB"})
	if iv, _ := spi.Registers(words); iv == v || math.Abs(iv-238.6087) < 1 {
		t.Fatalf("uint32 reading of the float words = %v", iv)
	}
	ten := 10.0
	sp10, err := FromSensor(config.Sensor{ID: "LVL-1", Format: "float32", ByteOrder: "CDAB", Scale: &ten, Range: []float64{0, 1000}})
	if err != nil {
		t.Fatal(err)
	}
	v, err = sp10.Registers(words)
	if !errors.Is(err, ErrRange) || v != 0 || err.Error() != "2386.087 outside range [0, 1000]" {
		t.Fatalf("scale 10 on the float: %v, %v; want the range fault \"2386.087 outside range [0, 1000]\"", v, err)
	}
}
