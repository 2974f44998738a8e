// Package metricstest checks and reads a Prometheus text exposition in
// tests of other packages: Check runs promtool (Debian's prometheus
// package; scripts/deps.sh installs it), Parse and Value read the series.
package metricstest

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Check runs `promtool check metrics` on text and fails t with promtool's
// findings (lint problems included: missing help, a counter without
// _total, a bad unit). Without promtool the test is skipped, unless the
// environment says promtool is required (CI or HAZMON_REQUIRE_PROMTOOL
// set), where it fails.
func Check(t testing.TB, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("HAZMON_REQUIRE_PROMTOOL") != "" {
			t.Fatalf("promtool not found (scripts/deps.sh installs Debian's prometheus package): %v", err)
		}
		t.Skip("promtool not found: run scripts/deps.sh (Debian's prometheus package)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition ---\n%s", err, out, text)
	}
}

// Families are the parsed metric families by name.
type Families map[string]*dto.MetricFamily

// Parse reads a text exposition; one that does not parse fails t.
func Parse(t testing.TB, text []byte) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, text)
	}
	return mfs
}

// Value returns the value of the series of family name whose labels
// include all of labels (name=value pairs), and whether there is one: a
// counter's or gauge's value, a histogram's sample count.
func (f Families) Value(name string, labels ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}
