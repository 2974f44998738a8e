// Package gpio is hazmon's access to GPIO lines through the Linux GPIO
// character device: finding a configured line (Lookup, Open; periph.io's
// gpioioctl lists the chips and drives outputs), debouncing a digital
// input (Debouncer, a pure state machine) and reading a digital sensor
// from a line (Input). Inputs request their line themselves (ChipLine), so
// that a failed read is a fault reading, never a level.
//
// Lines are named as in the config: a chip ("gpiochip0") and a line offset
// on that chip (not a board pin number). A configured line that does not
// exist is a start-up error naming the chip and line: periph's host.Init
// succeeds on a machine without GPIO chips and then simply finds no pins.
package gpio

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"
)

// ErrNotFound is wrapped by every Lookup error for a chip or line that
// does not exist.
var ErrNotFound = errors.New("not found")

// Lookup finds GPIO lines. Line returns the pin of line offset line on
// chip, or an error wrapping ErrNotFound that says what is missing (the
// caller adds the chip and line). Host returns the real one; tests use a
// PinMap of periph.io/x/conn/v3/gpio/gpiotest pins.
type Lookup interface {
	Line(chip string, line int) (pgpio.PinIO, error)
}

// LineID names a line: a chip (e.g. "gpiochip0") and a line offset on it.
type LineID struct {
	Chip string
	Line int
}

// PinMap is a Lookup over a fixed set of pins (tests, simulators).
type PinMap map[LineID]pgpio.PinIO

// Line returns the pin at (chip, line) or an error wrapping ErrNotFound.
func (m PinMap) Line(chip string, line int) (pgpio.PinIO, error) {
	if p, ok := m[LineID{chip, line}]; ok && p != nil {
		return p, nil
	}
	return nil, ErrNotFound
}

// Open returns the pin of (chip, line) from l. Errors name the chip and
// line, e.g. "gpio: chip gpiochip0 line 17: not found (this board has no
// GPIO chips?)", and wrap ErrNotFound when the line does not exist.
func Open(l Lookup, chip string, line int) (pgpio.PinIO, error) {
	if l == nil {
		return nil, fmt.Errorf("gpio: chip %s line %d: no GPIO lookup configured", chip, line)
	}
	if chip == "" || line < 0 {
		return nil, fmt.Errorf("gpio: chip %q line %d: %w (want a chip name such as gpiochip0 and a line offset >= 0)", chip, line, ErrNotFound)
	}
	p, err := l.Line(chip, line)
	if err != nil {
		return nil, fmt.Errorf("gpio: chip %s line %d: %w", chip, line, err)
	}
	if p == nil {
		return nil, fmt.Errorf("gpio: chip %s line %d: %w", chip, line, ErrNotFound)
	}
	return p, nil
}

// hostLookup finds lines on the GPIO chips that gpioioctl opened.
type hostLookup struct {
	chips []*gpioioctl.GPIOChip
}

// Host initialises periph.io's host drivers (host.Init) and returns a
// Lookup over the GPIO character devices (/dev/gpiochip*) it found; its
// lines are *ChipLine. It succeeds on a machine without GPIO chips: the
// error comes from Open, for the first configured line.
func Host() (Lookup, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("gpio: initialise host drivers: %w", err)
	}
	return hostLookup{chips: slices.Clone(gpioioctl.Chips)}, nil
}

// Line matches chip against each chip's name ("gpiochip0"), device path
// ("/dev/gpiochip0") or label ("pinctrl-bcm2711") and returns a new
// *ChipLine of the line.
func (h hostLookup) Line(chip string, line int) (pgpio.PinIO, error) {
	if len(h.chips) == 0 {
		return nil, fmt.Errorf("%w (this board has no GPIO chips?)", ErrNotFound)
	}
	names := make([]string, 0, len(h.chips))
	for _, c := range h.chips {
		names = append(names, c.Name())
		if c.Name() != chip && c.Path() != chip && c.Label() != chip {
			continue
		}
		if line >= c.LineCount() {
			return nil, fmt.Errorf("%w (%s has %d lines, 0..%d)", ErrNotFound, c.Name(), c.LineCount(), c.LineCount()-1)
		}
		// ByNumber returns a typed nil *GPIOLine when out of range: never
		// let it become a non-nil interface.
		if l := c.ByNumber(line); l != nil {
			return newChipLine(l, c.Path()), nil
		}
		return nil, ErrNotFound
	}
	return nil, fmt.Errorf("%w (chips on this board: %s)", ErrNotFound, strings.Join(names, ", "))
}
