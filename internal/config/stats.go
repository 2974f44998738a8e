package config

import "time"

// Stats configures the statistics windows published on …/stats (and in
// the regulator's statistics files).
type Stats struct {
	// Interval is the window, aligned to the wall clock (default
	// DefaultStatsInterval, 10s..1h, a divisor of 1 h so windows line up
	// with the hour).
	Interval Duration `yaml:"interval"`
}

// DefaultStatsInterval is stats.interval's default: 5 minutes, the
// statistics cadence of the coal-mine networking formats (networking
// notes, S).
const DefaultStatsInterval = 5 * time.Minute

func (c *Config) validateStats(k *checker) {
	iv := c.Stats.Interval.D()
	if iv < 10*time.Second || iv > time.Hour || time.Hour%iv != 0 {
		k.errf("stats.interval", "%s: want 10s..1h dividing an hour (e.g. 1m, 5m, 15m, 1h)", iv)
	}
}
