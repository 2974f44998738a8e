package config

import (
	"errors"
	"strings"
	"testing"
)

// metrics.listen is off unless set; a loopback address is accepted quietly,
// one other hosts can reach is accepted with a warning naming the key, and
// an address the agent could not listen on is an error naming the key.
func TestValidate_MetricsListen(t *testing.T) {
	for _, tc := range []struct {
		listen string
		err    string // "" = valid
		warn   bool
	}{
		{listen: ""},
		{listen: "127.0.0.1:9464"},
		{listen: "[::1]:9464"},
		{listen: "localhost:9464"},
		{listen: "0.0.0.0:9464", warn: true},
		{listen: ":9464", warn: true},
		{listen: "192.168.1.20:9464", warn: true},
		{listen: "9464", err: "is not host:port"},
		{listen: "127.0.0.1:http", err: "is not a number"},
		{listen: "127.0.0.1:0", err: "is not a number 1..65535"},
		{listen: "127.0.0.1:70000", err: "is not a number 1..65535"},
		{listen: "gateway.local:9464", err: "use an IP address"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			y := validYAML
			if tc.listen != "" {
				y += "metrics:\n  listen: \"" + tc.listen + "\"\n"
			}
			l, err := Parse("hazmon.yaml", []byte(y))
			if tc.err != "" {
				var ce *Error
				if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Path != "metrics.listen" ||
					!strings.Contains(ce.Problems[0].Message, tc.err) {
					t.Fatalf("err = %v, want one metrics.listen problem with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Config.Metrics.Listen != tc.listen {
				t.Errorf("listen = %q", l.Config.Metrics.Listen)
			}
			var warned bool
			for _, w := range l.Warnings {
				if w.Path == "metrics.listen" {
					warned = true
					if !strings.Contains(w.Message, "no authentication") {
						t.Errorf("warning %q does not say why", w.Message)
					}
				}
			}
			if warned != tc.warn {
				t.Errorf("warned = %v, want %v (warnings %v)", warned, tc.warn, l.Warnings)
			}
		})
	}
}
