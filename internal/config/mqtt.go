package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"time"
)

// brokerSchemes are the broker URL schemes the agent connects with;
// tlsSchemes are those that carry TLS (the others are plaintext).
var (
	brokerSchemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}
	tlsSchemes    = []string{"ssl", "tls", "mqtts", "wss"}
)

// TLSScheme reports whether the broker URL u is one that carries TLS
// (ssl://, tls://, mqtts://, wss://).
func TLSScheme(u string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	return ok && oneOf(strings.ToLower(scheme), tlsSchemes...)
}

// ClientConfig builds the TLS 1.2+ client config of the broker link: the
// CA of ca_file (else the system roots), the client certificate and key of
// cert_file and key_file (mutual TLS), server_name. Server verification
// stays on unless insecure_skip_verify is set. The error names the key and
// the file: a ca_file without a PEM certificate, a key pair that cannot be
// read or does not match. validate runs the same checks, so a config that
// validates builds its TLS config.
func (t TLS) ClientConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// loadCA reads a PEM file of CA certificates.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, unwrapPath(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate (want a file with -----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// loadKeyPair reads a client certificate and its private key (PEM) and
// checks that they belong together.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return tls.Certificate{}, fmt.Errorf("cannot read %s: %w", pe.Path, pe.Err)
		}
		return tls.Certificate{}, fmt.Errorf("%s / %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// unwrapPath drops the path an *os.PathError repeats ("open /x: no such
// file" reads "no such file").
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// validateMQTT checks the mqtt section: broker URLs (never shown with
// their password), the secret files (readable, not world-readable), the
// TLS files (loaded as the agent will) and TLS beside plaintext brokers.
func (c *Config) validateMQTT(k *checker) {
	m := &c.MQTT
	if len(m.Brokers) == 0 {
		k.errf("mqtt.brokers", "required: at least one broker URL, e.g. tcp://127.0.0.1:1883")
	}
	anyTLS := false
	for i, b := range m.Brokers {
		p := fmt.Sprintf("mqtt.brokers[%d]", i)
		shown := RedactURL(b)
		u, err := url.Parse(b)
		switch {
		case err != nil && shown != b:
			// The parser's text can repeat part of the password.
			k.errf(p, "%q is not a URL: write a password holding / ? # @ %% percent-encoded (%%2F %%3F %%23 %%40 %%25), or use mqtt.username and mqtt.password_file", shown)
		case err != nil:
			k.errf(p, "%q is not a URL: %v", shown, errors.Unwrap(err))
		case !oneOf(u.Scheme, brokerSchemes...):
			k.errf(p, "%q: scheme must be tcp, ssl, tls, mqtts, ws or wss", shown)
		case u.Port() == "":
			k.errf(p, "%q: port missing (e.g. :1883, :8883)", shown)
		case u.Path != "" && u.Path != "/" && !oneOf(u.Scheme, "ws", "wss"):
			k.errf(p, "%q: a %s:// broker URL has no path (a password holding '/' is written %%2F)", shown, u.Scheme)
		}
		if err == nil && oneOf(u.Scheme, tlsSchemes...) {
			anyTLS = true
		}
	}
	if strings.ContainsAny(m.TopicPrefix, "+#") || strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		k.errf("mqtt.topic_prefix", "%q: no wildcards (+ #) and no leading or trailing '/'", m.TopicPrefix)
	}
	k.file("mqtt.password_file", m.PasswordFile)
	k.worldReadable("mqtt.password_file", m.PasswordFile)
	if m.PasswordFile != "" && m.Username == "" {
		k.errf("mqtt.username", "required when mqtt.password_file is set")
	}
	c.validateTLS(k, anyTLS)
	if m.BatchMax < 1 || m.BatchMax > 10000 {
		k.errf("mqtt.batch_max", "%d is outside 1..10000", m.BatchMax)
	}
	if !oneOf(m.Telemetry, TelemetryV1, TelemetryV2, TelemetryBoth) {
		k.errf("mqtt.telemetry", "%q: want v1, v2 or both", m.Telemetry)
	}
	if m.WindowBytes < 0 {
		k.errf("mqtt.window_bytes", "must not be negative")
	}
	if m.RateBytes < 0 {
		k.errf("mqtt.rate_bytes", "must not be negative (0 = unlimited)")
	}
	if m.KeepAlive.D() < time.Second {
		k.errf("mqtt.keepalive", "%s is too short (at least 1s)", m.KeepAlive)
	}
	if d := m.ReconnectMax.D(); d < time.Second || d > time.Minute {
		k.errf("mqtt.reconnect_max", "%s is outside 1s..60s", m.ReconnectMax)
	}
	if d := m.CurrentDeadband; d != nil && (*d < 0 || math.IsNaN(*d) || math.IsInf(*d, 0)) {
		k.errf("mqtt.current_deadband", "%g: want a number ≥ 0 (steps of each sensor's resolution; 0: any change)", *d)
	}
	if d := m.CurrentInterval.D(); d < MinCurrentInterval || d > MaxCurrentInterval {
		k.errf("mqtt.current_interval", "%s is outside %s..%s", m.CurrentInterval, MinCurrentInterval, MaxCurrentInterval)
	}
}

// validateTLS loads the TLS files as the agent will at connect, so a bad
// file fails validate rather than the running agent, and refuses TLS
// settings that no broker would use (a plaintext link the config's author
// believes secured).
func (c *Config) validateTLS(k *checker, anyTLS bool) {
	t := c.MQTT.TLS
	if t.CAFile != "" && k.file("mqtt.tls.ca_file", t.CAFile) {
		if _, err := loadCA(t.CAFile); err != nil {
			k.errf("mqtt.tls.ca_file", "%v", err)
		}
	}
	okCert, okKey := k.file("mqtt.tls.cert_file", t.CertFile), k.file("mqtt.tls.key_file", t.KeyFile)
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		k.errf("mqtt.tls", "cert_file and key_file go together (mutual TLS)")
	case t.CertFile != "" && okCert && okKey:
		if _, err := loadKeyPair(t.CertFile, t.KeyFile); err != nil {
			k.errf("mqtt.tls.key_file", "%v", err)
		}
	}
	k.worldReadable("mqtt.tls.key_file", t.KeyFile)
	if t.InsecureSkipVerify {
		k.warnf("mqtt.tls.insecure_skip_verify", "server certificate is not verified: anyone on the path can impersonate the broker")
	}
	if t == (TLS{}) || len(c.MQTT.Brokers) == 0 {
		return
	}
	if !anyTLS {
		k.errf("mqtt.tls", "TLS is configured but no broker URL uses it: every broker is plaintext (tcp://, mqtt://, ws://); use ssl://host:8883 (or wss://), or remove tls")
		return
	}
	for i, b := range c.MQTT.Brokers {
		if !TLSScheme(b) {
			k.warnf(fmt.Sprintf("mqtt.brokers[%d]", i), "%q is plaintext although tls is configured: a fall-back to it sends data and password unencrypted", RedactURL(b))
		}
	}
}

// worldReadable warns when the file holding a secret (password_file,
// key_file) is readable by every user of the board. A file that cannot be
// stat'ed is reported by the key's other checks.
func (k *checker) worldReadable(path, name string) {
	if name == "" {
		return
	}
	if fi, err := os.Stat(name); err == nil && fi.Mode().Perm()&0o004 != 0 {
		k.warnf(path, "%s is readable by every user (mode %04o): chmod 0640 and chgrp hazmon (or chmod 0600)", name, fi.Mode().Perm())
	}
}
