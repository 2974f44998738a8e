package config

import "time"

// Stats configures the statistics windows published on …/stats (and in
// the regulator's statistics files).
type Stats struct {
	// Interval is the window, aligned to the wall clock (default
	// DefaultStatsInterval, 1m..1h, a divisor of 1 h so windows line up
	// with the hour).
	Interval Duration `yaml:"interval"`
}

// DefaultStatsInterval is stats.interval's default: 5 minutes, the
// statistics cadence of the coal-mine networking formats (networking
// notes, S).
const DefaultStatsInterval = 5 * time.Minute

func (c *Config) validateStats(k *checker) {
	iv := c.Stats.Interval.D()
	if iv < time.Minute || iv > time.Hour || time.Hour%iv != 0 {
		k.errf("stats.interval", "%s: want 1m..1h dividing an hour (1m, 5m, 10m, 15m, 30m, 1h)", iv)
	}
}
