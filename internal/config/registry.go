package config

import "strings"

// validateRegistry checks a sensor's registry keys: a 4-digit type_code,
// a point_code and a place the regulator's text files can carry.
func (c *Config) validateRegistry(k *checker, p string, s Sensor) {
	if s.TypeCode != "" && (len(s.TypeCode) != 4 || strings.Trim(s.TypeCode, "0123456789") != "") {
		k.errf(p+".type_code", "%q is not a 4-digit sensor type code (MT/T 1201.1-2023, e.g. 0001 ambient methane)", s.TypeCode)
	}
	if msg := MTTTextProblem(s.PointCode); msg != "" {
		k.errf(p+".point_code", "%s", msg)
	}
	if msg := MTTTextProblem(s.Place); msg != "" {
		k.errf(p+".place", "%s", msg)
	}
}
