package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withMQTT is validYAML with its mqtt section replaced by lines (indented
// two spaces, under mqtt:).
func withMQTT(lines string) string {
	return strings.Replace(validYAML, "mqtt:\n  brokers: [\"tcp://127.0.0.1:1883\"]\n", "mqtt:\n"+lines, 1)
}

// writePair writes a self-signed certificate and its key (PEM) to dir and
// returns their paths.
func writePair(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestValidate_BrokerURLErrorsNeverShowThePassword(t *testing.T) {
	for _, b := range []string{
		"tcp://gw:s3cret@127.0.0.1",          // port missing
		"ftp://gw:s3cret@127.0.0.1:1883",     // scheme
		"tcp://gw:s3cret/x@127.0.0.1:1883",   // '/' in the password: does not parse
		"tcp://gw:123/s3cret@127.0.0.1:1883", // '/' in the password: parses as host gw, port 123, a path
		"tcp://gw:s3cret@127.0.0.1:1883\x7f", // control character
	} {
		_, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\""+strings.ReplaceAll(b, "\x7f", "\\x7f")+"\"]\n")))
		if err == nil {
			t.Errorf("%q: accepted", b)
			continue
		}
		if !strings.Contains(err.Error(), "h.yaml:3: mqtt.brokers[0]:") {
			t.Errorf("%q: error not at the broker: %v", b, err)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), ":123") {
			t.Errorf("%q: error shows the password: %v", b, err)
		}
	}
}

func TestValidate_WorldReadableSecretFilesWarn(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, key := writePair(t, dir, "client")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	y := withMQTT("  brokers: [\"ssl://127.0.0.1:8883\"]\n  username: gw\n  password_file: " + pw +
		"\n  tls:\n    cert_file: " + cert + "\n    key_file: " + key + "\n")
	l, err := Parse("h.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range l.Warnings {
		got = append(got, w.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"h.yaml:5: mqtt.password_file: " + pw + " is readable by every user (mode 0644)",
		"h.yaml:8: mqtt.tls.key_file: " + key + " is readable by every user (mode 0644)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "s3cret") {
		t.Errorf("a warning shows the password:\n%s", all)
	}

	// Mode 0640 or 0600: no warning.
	for _, f := range []string{pw, key} {
		if err := os.Chmod(f, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := Parse("h.yaml", []byte(y)); err != nil || len(l.Warnings) != 0 {
		t.Errorf("mode 0640: %v, warnings %v", err, l.Warnings)
	}
}

func TestValidate_LoadsTheTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "client")
	_, otherKey := writePair(t, dir, "other")
	notPEM := filepath.Join(dir, "ca.der")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tls := func(lines string) string { return withMQTT("  brokers: [\"ssl://127.0.0.1:8883\"]\n  tls:\n" + lines) }
	cases := []struct {
		name, yaml, want string
	}{
		{"non-PEM ca_file", tls("    ca_file: " + notPEM + "\n"), "h.yaml:5: mqtt.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"key of another certificate", tls("    cert_file: " + cert + "\n    key_file: " + otherKey + "\n"), "h.yaml:6: mqtt.tls.key_file: " + cert + " / " + otherKey + ": tls: private key does not match public key"},
		{"missing key file", tls("    cert_file: " + cert + "\n    key_file: " + dir + "/nope.key\n"), "h.yaml:6: mqtt.tls.key_file: cannot read " + dir + "/nope.key: no such file or directory"},
		{"key as certificate", tls("    cert_file: " + key + "\n    key_file: " + key + "\n"), "h.yaml:6: mqtt.tls.key_file: " + key + " / " + key + ": tls: failed to find certificate PEM data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("h.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %q, got %v", c.want, err)
			}
		})
	}
	// The good pair and a PEM CA validate, and build the agent's TLS config.
	l, err := Parse("h.yaml", []byte(tls("    ca_file: "+cert+"\n    cert_file: "+cert+"\n    key_file: "+key+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := l.Config.MQTT.TLS.ClientConfig(); err != nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Errorf("ClientConfig: %v", err)
	}
}

func TestValidate_TLSBesidePlaintextBrokers(t *testing.T) {
	dir := t.TempDir()
	cert, _ := writePair(t, dir, "ca")
	// Only plaintext brokers: the TLS settings would be silently unused.
	for _, b := range []string{"tcp://127.0.0.1:1883", "mqtt://127.0.0.1:1883", "ws://127.0.0.1:80/mqtt"} {
		_, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\""+b+"\"]\n  tls: {ca_file: "+cert+"}\n")))
		if err == nil || !strings.Contains(err.Error(), "h.yaml:4: mqtt.tls: TLS is configured but no broker URL uses it") {
			t.Errorf("%s with tls: %v", b, err)
		}
	}
	if _, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\"tcp://127.0.0.1:1883\"]\n  tls: {insecure_skip_verify: true}\n"))); err == nil {
		t.Errorf("insecure_skip_verify beside tcp:// accepted")
	}
	// A plaintext fall-back beside a TLS broker: a warning.
	l, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\"ssl://127.0.0.1:8883\", \"tcp://gw:s3cret@127.0.0.1:1883\"]\n  tls: {ca_file: "+cert+"}\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), `mqtt.brokers[1]: "tcp://gw:REDACTED@127.0.0.1:1883" is plaintext although tls is configured`) {
		t.Errorf("warnings = %v", l.Warnings)
	}
	// TLS brokers with tls: valid.
	for _, b := range []string{"ssl://127.0.0.1:8883", "tls://127.0.0.1:8883", "mqtts://127.0.0.1:8883", "wss://127.0.0.1:443/mqtt"} {
		if _, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\""+b+"\"]\n  tls: {ca_file: "+cert+"}\n"))); err != nil {
			t.Errorf("%s with tls: %v", b, err)
		}
	}
}

// mqtt.telemetry defaults to v1, accepts v1, v2 and both, and refuses
// anything else with the file, line and key.
func TestValidate_TelemetryEncoding(t *testing.T) {
	l, err := Parse("h.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if l.Config.MQTT.Telemetry != DefaultTelemetry || DefaultTelemetry != "v1" {
		t.Fatalf("default telemetry %q, want v1", l.Config.MQTT.Telemetry)
	}
	for _, v := range []string{"v1", "v2", "both"} {
		l, err := Parse("h.yaml", []byte(withMQTT("  brokers: [\"tcp://127.0.0.1:1883\"]\n  telemetry: "+v+"\n")))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if l.Config.MQTT.Telemetry != v {
			t.Fatalf("telemetry %q, want %q", l.Config.MQTT.Telemetry, v)
		}
	}
	_, err = Parse("h.yaml", []byte(withMQTT("  brokers: [\"tcp://127.0.0.1:1883\"]\n  telemetry: v3\n")))
	if err == nil || !strings.Contains(err.Error(), "h.yaml:") || !strings.Contains(err.Error(), "mqtt.telemetry") || !strings.Contains(err.Error(), "v1, v2 or both") {
		t.Fatalf("telemetry v3: %v", err)
	}
}
