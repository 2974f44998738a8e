package config

import (
	"os"
	"time"
)

func (k *checker) id(path, v string) {
	if v == "" {
		k.errf(path, "required")
	} else if !idRe.MatchString(v) {
		k.errf(path, "%q: use only letters, digits, '-' and '_'", v)
	}
}

// unique checks the name v of list[i] at path: required, not used by an
// earlier element (seen maps names to their index), and an id; it records
// v in seen.
func (k *checker) unique(path, v, list string, i int, seen map[string]int) {
	if v == "" {
		k.errf(path, "required")
	} else if j, dup := seen[v]; dup {
		k.errf(path, "%q is already used by %s[%d]", v, list, j)
	} else {
		seen[v] = i
		k.id(path, v)
	}
}

// file checks that the file name (a path in the config) exists; "" is
// not set and passes. It reports whether the file is there.
func (k *checker) file(path, name string) bool {
	if name == "" {
		return true
	}
	if _, err := os.Stat(name); err != nil {
		k.errf(path, "cannot read %s: %v", name, unwrapPath(err))
		return false
	}
	return true
}

func oneOf(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func oneOfInt(v int, set ...int) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// validateGPIOSensor checks a digital input read from a GPIO line.
func validateGPIOSensor(k *checker, p string, s Sensor) {
	if s.Type != "digital" {
		k.errf(p+".type", "a gpio input is type digital, not %q", s.Type)
	}
	if s.Bus != "" || s.Table != "" {
		k.errf(p+".gpio", "a gpio input has no bus or table")
	}
	if s.Format != "bool" {
		k.errf(p+".format", "a gpio input is bool")
	}
	if s.GPIO.Chip == "" {
		k.errf(p+".gpio.chip", "required, e.g. gpiochip0")
	}
	if s.GPIO.Line < 0 || s.GPIO.Line > 511 {
		k.errf(p+".gpio.line", "%d is outside 0..511", s.GPIO.Line)
	}
	if s.GPIO.Pull != "" && !oneOf(s.GPIO.Pull, "up", "down", "none") {
		k.errf(p+".gpio.pull", "%q: use up, down or none", s.GPIO.Pull)
	}
	if d := s.GPIO.Debounce.D(); d < 0 || d > 10*time.Second {
		k.errf(p+".gpio.debounce", "%s is outside 0..10s", s.GPIO.Debounce)
	}
	if s.Interval.D() < MinInterval {
		k.errf(p+".interval", "%s is shorter than %s", s.Interval, MinInterval)
	}
}
