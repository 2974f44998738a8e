// Package configs holds the example configuration files of configs/,
// embedded in the binary so that `hazmon config example` prints them on a
// board that has only the binary. The files are the ones
// internal/packaging's tests validate, so what is printed validates.
package configs

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Example is one example config `hazmon config example NAME` prints.
type Example struct {
	Name  string // argument of `hazmon config example`; "" for the general one
	File  string // file in configs/
	About string // one line for the help text (at most 63 columns)
}

// Examples lists the example configs, the general one first.
var Examples = []Example{
	{"", "example.yaml", "a general site: RS-485 and PLC, methane, CO, level, a relay"},
	{"coal-face", "coal-face.yaml", "longwall face: methane cut-off (Art. 498), fan interlock"},
	{"tailings-pond", "tailings-pond.yaml", "tailings pond: colour warnings, warning group (GB 51108-2015)"},
	{"tank-farm", "chemical-tank-farm.yaml", "chemical tank farm: % LEL alarms (GB/T 50493-2019), H2S, level"},
}

// Read returns the example config called name ("" for the general one).
// An unknown name is an error that lists the known ones.
func Read(name string) ([]byte, error) {
	var names []string
	for _, e := range Examples {
		if e.Name == name {
			return files.ReadFile(e.File)
		}
		if e.Name != "" {
			names = append(names, e.Name)
		}
	}
	return nil, fmt.Errorf("no example %q: use one of %s, or none for the general example", name, strings.Join(names, ", "))
}
