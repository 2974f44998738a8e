package config

import (
	"strings"
	"testing"
)

func TestRedactURL_PasswordNeverShown(t *testing.T) {
	cases := []struct{ in, want string }{
		{"tcp://gw:s3cret@127.0.0.1:1883", "tcp://gw:REDACTED@127.0.0.1:1883"},
		{"tcp://127.0.0.1:1883", "tcp://127.0.0.1:1883"},
		{"tcp://gw@127.0.0.1:1883", "tcp://gw@127.0.0.1:1883"}, // a user name alone is not secret
		{"ssl://gw:p@ss@host:8883", "ssl://gw:REDACTED@host:8883"},
		{"tcp://gw:a/b+c==@host:1883", "tcp://gw:REDACTED@host:1883"}, // unescaped '/': does not parse
		{"tcp://a:s3cret@h1:1883,tcp://b:s3cret2@h2:1883", "tcp://a:REDACTED@h1:1883,tcp://b:REDACTED@h2:1883"},
		{`mqtt connect tcp://gw:s3cret@h:1883: network Error : dial tcp: connection refused`,
			`mqtt connect tcp://gw:REDACTED@h:1883: network Error : dial tcp: connection refused`},
		{`parse "tcp://gw:s3\"cret@h:x": invalid port`, `parse "tcp://gw:REDACTED@h:x": invalid port`},
		{"wss://gw:s3cret@host:443/mqtt", "wss://gw:REDACTED@host:443/mqtt"},
		{"no url here", "no url here"},
	}
	for _, c := range cases {
		got := RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		if again := RedactURL(got); again != got {
			t.Errorf("RedactURL is not idempotent on %q: %q", got, again)
		}
		for _, secret := range []string{"s3cret", "p@ss", "a/b+c"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactURL(%q) = %q still holds %q", c.in, got, secret)
			}
		}
	}
}

func TestConfigRedacted_BrokersOnly(t *testing.T) {
	c := Config{MQTT: MQTT{Brokers: []string{"tcp://gw:s3cret@h:1883", "ssl://h:8883"}, PasswordFile: "/etc/hazmon/pw"}}
	r := c.Redacted()
	if r.MQTT.Brokers[0] != "tcp://gw:REDACTED@h:1883" || r.MQTT.Brokers[1] != "ssl://h:8883" || r.MQTT.PasswordFile != "/etc/hazmon/pw" {
		t.Errorf("redacted = %+v", r.MQTT)
	}
	if c.MQTT.Brokers[0] != "tcp://gw:s3cret@h:1883" {
		t.Errorf("Redacted changed the original: %v", c.MQTT.Brokers)
	}
}
