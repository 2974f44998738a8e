package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseErr parses y and returns its error text ("" if it loads).
func parseErr(t *testing.T, y string) string {
	t.Helper()
	_, err := Parse("h.yaml", []byte(y))
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParse_UnknownKeySaysDidYouMean(t *testing.T) {
	for _, c := range []struct{ edit, want string }{
		{"    address: 0\n", `h.yaml:13: sensors[0].adress: unknown key "adress"; did you mean "address"?`},
		{"    unit: \"%CH4\"\n", `h.yaml:16: sensors[0].unti: unknown key "unti"; did you mean "unit"?`},
	} {
		typo := strings.Replace(c.edit, "address", "adress", 1)
		typo = strings.Replace(typo, "unit", "unti", 1)
		if got := parseErr(t, strings.Replace(validYAML, c.edit, typo, 1)); !strings.Contains(got, c.want) {
			t.Errorf("want %q in:\n%s", c.want, got)
		}
	}
	// Nested mappings know their own keys.
	got := parseErr(t, strings.Replace(validYAML, "  brokers:", "  tls: {ca_fiel: x}\n  brokers:", 1))
	if want := `mqtt.tls.ca_fiel: unknown key "ca_fiel"; did you mean "ca_file"?`; !strings.Contains(got, want) {
		t.Errorf("want %q in:\n%s", want, got)
	}
	// Nothing near: no guess.
	got = parseErr(t, strings.Replace(validYAML, "  brokers:", "  colour: red\n  brokers:", 1))
	if !strings.Contains(got, `mqtt.colour: unknown key "colour"`) || strings.Contains(got, "did you mean") {
		t.Errorf("unknown key far from any: %s", got)
	}
}

func TestParse_UnknownBusOrOutputListsTheDefinedOnes(t *testing.T) {
	got := parseErr(t, strings.Replace(validYAML, "bus: plc-1\n    slave: 1\n    table: holding", "bus: plc-2\n    slave: 1\n    table: holding", 1))
	if want := `sensors[0].bus: "plc-2" is not a bus defined in buses; did you mean "plc-1"? (defined: plc-1, rs485-1)`; !strings.Contains(got, want) {
		t.Errorf("want %q in:\n%s", want, got)
	}
	got = parseErr(t, strings.Replace(validYAML, "    location: main_return\n", "    location: main_return\n    cut_outputs: [BREAKER-1]\n", 1)+
		"outputs:\n  - {name: BREAKER-A, gpio: {chip: gpiochip0, line: 1}}\n  - {name: PUMP, gpio: {chip: gpiochip0, line: 2}}\n")
	if want := `sensors[0].cut_outputs[0]: "BREAKER-1" is not an output defined in outputs; did you mean "BREAKER-A"? (defined: BREAKER-A, PUMP)`; !strings.Contains(got, want) {
		t.Errorf("want %q in:\n%s", want, got)
	}
	got = parseErr(t, strings.Replace(validYAML, "    location: main_return\n", "    rules: [{level: cutoff, above: 1.5, outputs: [fan]}]\n", 1))
	if want := `sensors[0].rules[0].outputs[0]: "fan" is not an output defined in outputs (outputs defines none)`; !strings.Contains(got, want) {
		t.Errorf("want %q in:\n%s", want, got)
	}
}

func TestParse_TabExplainedPlainly(t *testing.T) {
	got := parseErr(t, strings.Replace(validYAML, "    slave: 1\n", "\tslave: 1\n", 1))
	want := "h.yaml:11: a tab character (column 1): YAML indents with spaces only; replace the tab with spaces"
	if !strings.Contains(got, want) || strings.Contains(got, "cannot start any token") {
		t.Errorf("want %q instead of the parser's text, got:\n%s", want, got)
	}
	got = parseErr(t, strings.Replace(validYAML, "    slave: 1\n", "  \tslave: 1\n", 1))
	if !strings.Contains(got, "h.yaml:11: a tab character (column 3)") || strings.Contains(got, "violates indentation") {
		t.Errorf("tab after spaces: %s", got)
	}
}

func TestParse_DuplicateKeyExplainedPlainly(t *testing.T) {
	got := parseErr(t, strings.Replace(validYAML, "    slave: 1\n", "    slave: 1\n    slave: 2\n", 1))
	want := `h.yaml:12: sensors[0].slave: key "slave" is given twice here (first at line 11): only one value can count; remove or rename one of them`
	if !strings.Contains(got, want) || strings.Contains(got, "already defined") {
		t.Errorf("want %q, got:\n%s", want, got)
	}
}

// TestParse_KeyGivenTwiceReportsOnlyThat: the parser reads nothing of a
// mapping with a key given twice, so what is in it must not be reported
// as missing as well ("agent.site: required" for agent: {id, site, id}),
// nor what comes after it in a list under the wrong index; the message
// says the rest is checked once it is fixed.
func TestParse_KeyGivenTwiceReportsOnlyThat(t *testing.T) {
	for _, c := range []struct{ name, y, want string }{
		{"top level", validYAML + "agent: {id: a}\n", `key "agent" is given twice here (first at line 1)`},
		{"in agent", strings.Replace(validYAML, "site: site-0001,", "site: site-0001, id: x,", 1), `agent.id: key "id" is given twice here`},
		// The parser drops sensors[0] and closes the gap: the next entries
		// would be checked as the ones before them, at the wrong lines.
		{"in a sensor", strings.Replace(validYAML, "    slave: 1\n", "    slave: 1\n    slave: 2\n", 1) + "  - {id: X, type: co, bus: nowhere, slave: 1, table: holding, address: 9, format: uint16, unit: ppm, interval: 1s}\n",
			`sensors[0].slave: key "slave" is given twice here`},
	} {
		got := parseErr(t, c.y)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if !strings.Contains(got, c.want) || len(lines) != 2 /* the count and the problem */ || strings.Contains(got, "required") ||
			!strings.Contains(got, "the rest of the file is checked once no key is given twice") {
			t.Errorf("%s: want only %q, got:\n%s", c.name, c.want, got)
		}
	}
}

func TestParse_SecondDocumentIsAnError(t *testing.T) {
	got := parseErr(t, validYAML+"---\nlog: {level: debug}\n")
	want := fmt.Sprintf("h.yaml:%d: a second YAML document starts here (---): hazmon reads one document", strings.Count(validYAML, "\n")+1)
	if !strings.Contains(got, want) {
		t.Errorf("want %q, got:\n%s", want, got)
	}
	// A second document that does not even parse is not ignored either.
	if got := parseErr(t, validYAML+"---\nlog: [\n"); got == "" {
		t.Errorf("a broken second document was ignored")
	}
	// A document marker at the top, an end marker, or a trailing "---"
	// with nothing after it are one document.
	for _, y := range []string{"---\n" + validYAML, validYAML + "...\n", validYAML + "---\n", validYAML + "---\n# end\n"} {
		if got := parseErr(t, y); got != "" {
			t.Errorf("one document refused: %s", got)
		}
	}
}

func TestLoad_RefusesAFileOverMaxFileSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	big := validYAML + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(p, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "is larger than 4 MiB") {
		t.Errorf("Load of a %d-byte file: %v", len(big), err)
	}
}
