package config

import (
	"strings"
	"testing"
	"time"
)

func TestBuffer_CommitIntervalDefaultsTo200msZeroMeansAtOnce(t *testing.T) {
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config.Buffer.CommitInterval.D(); got != 200*time.Millisecond {
		t.Fatalf("commit_interval default %s, want 200ms", got)
	}
	with := func(v string) string {
		return strings.Replace(validYAML, "mqtt:\n", "buffer: {commit_interval: "+v+"}\nmqtt:\n", 1)
	}
	l, err = Parse("hazmon.yaml", []byte(with("0s")))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config.Buffer.CommitInterval.D(); got != 0 {
		t.Fatalf("commit_interval: 0s read as %s, want 0 (commit at once), not the default", got)
	}
	for _, bad := range []string{"6s", "-1s"} {
		_, err := Parse("hazmon.yaml", []byte(with(bad)))
		if err == nil || !strings.Contains(err.Error(), "hazmon.yaml:2: buffer.commit_interval:") || !strings.Contains(err.Error(), "outside 0..5s") {
			t.Errorf("commit_interval %s: error %v, want file, line, key and range", bad, err)
		}
	}
}
