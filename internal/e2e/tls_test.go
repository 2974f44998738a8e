package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// The agent process publishes over mutual TLS to a Mosquitto listener
// that requires a client certificate; with the wrong CA it refuses the
// server and says why in its log, and publishes nothing.
func TestTLS_ClientCertAndWrongCA(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithTLS())
	s := startSite(t, 1)
	rec := newRecorder(t, b, "bureau-tls", s)

	bad := agentConfig{Brokers: []string{b.URL}, DataDir: t.TempDir(), SlaveAddr: s.addr, Sensors: 1,
		TLS: map[string]string{"ca_file": b.OtherCAFile, "cert_file": b.ClientCertFile, "key_file": b.ClientKeyFile}}.write(t)
	a := startAgent(t, bad)
	deadline := time.Now().Add(wait)
	for {
		var refused string
		for _, l := range a.logLines("mqtt link down") {
			if e, _ := l["err"].(string); strings.Contains(e, "x509: certificate signed by unknown authority") {
				refused = e
			}
		}
		if refused != "" {
			t.Logf("wrong CA refused: %s", refused)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no x509 refusal in the log of an agent with the wrong CA:\n%s", tail(a.log.String(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.term()
	if n := len(rec.snapshot()); n != 0 {
		t.Fatalf("%d readings arrived from an agent that must not trust the broker", n)
	}

	good := agentConfig{Brokers: []string{b.URL}, DataDir: t.TempDir(), SlaveAddr: s.addr, Sensors: 1,
		TLS: map[string]string{"ca_file": b.CAFile, "cert_file": b.ClientCertFile, "key_file": b.ClientKeyFile}}.write(t)
	a = startAgent(t, good)
	rec.until(t, "20 readings over mutual TLS", func() bool { return len(rec.snapshot()) >= 20 })
	a.term()
	rec.check(t)
	if l := a.logLines("mqtt connected"); len(l) == 0 || l[0]["broker"] != b.URL {
		t.Fatalf("mqtt connected log = %v, want broker %s", l, b.URL)
	}
}
