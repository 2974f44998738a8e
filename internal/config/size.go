package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes written in YAML as an integer (33554432), a
// size with a binary suffix ("512KiB", "32MiB", "1GiB") or "off". Off is
// SizeOff; 0 in the file also means off. The zero value is unset (the
// key's default applies).
type Size int64

// SizeOff is a Size written "off" (or 0): the limit is disabled.
const SizeOff Size = -1

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// UnmarshalYAML accepts bytes, a size with KiB/MiB/GiB, 0 or "off".
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	var text string
	if err := n.Decode(&text); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a size such as 33554432, \"32MiB\" or \"off\"", n.Line)}}
	}
	v, err := ParseSize(text)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = v
	return nil
}

// ParseSize reads a Size: bytes ("33554432"), a whole number with a
// binary suffix ("32MiB", "512KiB", "1GiB", "100B"), "0" or "off" (SizeOff).
func ParseSize(text string) (Size, error) {
	t := strings.TrimSpace(text)
	if strings.EqualFold(t, "off") {
		return SizeOff, nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (use e.g. 33554432, \"32MiB\", \"512KiB\" or \"off\")", text)
	}
	if v == 0 {
		return SizeOff, nil
	}
	return Size(v * mult), nil
}

// MarshalYAML writes s as "off", "<n>MiB" or "<n>KiB" when it is a whole
// number of them, else as bytes.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// String returns s as the config file may write it.
func (s Size) String() string {
	switch {
	case s < 0:
		return "off"
	case s == 0:
		return "0"
	}
	for _, u := range sizeUnits[:3] {
		if int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Bytes returns the size in bytes and whether it is on (neither off nor
// unset).
func (s Size) Bytes() (int64, bool) { return int64(s), s > 0 }
