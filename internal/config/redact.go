package config

import "strings"

// Redacted replaces the password of a URL's user info wherever the agent
// shows a broker URL (logs, errors, status, config show).
const Redacted = "REDACTED"

// RedactURL returns s with the password of every URL's user info replaced
// by Redacted: "tcp://gw:s3cret@host:1883" reads
// "tcp://gw:REDACTED@host:1883" (a user name alone is kept). s may be one
// URL or any text holding URLs (an error message, a comma-separated broker
// list). It works on the text, not on a parse, so a URL that does not
// parse (a password holding an unescaped '/') is redacted too: the user
// info is everything between "://" and the last '@' before the next
// space or the next "://". It never fails; a text without user info is
// returned unchanged. Every place that shows a broker URL uses it.
func RedactURL(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			if b.Len() == 0 {
				return s // nothing changed
			}
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		end := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' })
		if end < 0 {
			end = len(rest)
		}
		if j := strings.Index(rest[:end], "://"); j >= 0 {
			end = j
		}
		at := strings.LastIndexByte(rest[:end], '@')
		if at < 0 {
			continue
		}
		user, _, hasPass := strings.Cut(rest[:at], ":")
		if !hasPass {
			continue // a user name only: nothing secret
		}
		b.WriteString(user + ":" + Redacted)
		rest = rest[at:]
	}
}

// Redacted returns a copy of c that is safe to show: the passwords of its
// broker URLs replaced by Redacted (RedactURL). password_file and
// tls.key_file are paths and stay as they are; the files are never read
// into a Config.
func (c Config) Redacted() Config {
	brokers := make([]string, len(c.MQTT.Brokers))
	for i, u := range c.MQTT.Brokers {
		brokers[i] = RedactURL(u)
	}
	c.MQTT.Brokers = brokers
	return c
}
