package config

import (
	"strings"
	"testing"
	"time"
)

// mqtt.reconnect_max defaults to 10 s and is refused outside 1s..60s with
// the key's path.
func TestParse_ReconnectMax(t *testing.T) {
	with := func(v string) string {
		return strings.Replace(validYAML, `brokers: ["tcp://127.0.0.1:1883"]`, `brokers: ["tcp://127.0.0.1:1883"]`+"\n  reconnect_max: "+v, 1)
	}
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config.MQTT.ReconnectMax.D(); got != 10*time.Second {
		t.Errorf("default reconnect_max %v, want 10s", got)
	}
	l, err = Parse("hazmon.yaml", []byte(with("3s")))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Config.MQTT.ReconnectMax.D(); got != 3*time.Second {
		t.Errorf("reconnect_max %v, want 3s", got)
	}
	for _, v := range []string{"500ms", "2m"} {
		_, err := Parse("hazmon.yaml", []byte(with(v)))
		if err == nil || !strings.Contains(err.Error(), "mqtt.reconnect_max") || !strings.Contains(err.Error(), "outside 1s..60s") {
			t.Errorf("reconnect_max %s: error %v, want it refused with the key", v, err)
		}
	}
}
