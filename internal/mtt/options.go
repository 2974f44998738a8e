package mtt

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// Exporter defaults. The cadence is the current uploaders' (networking
// notes, S): real-time values every 30 s. The back-off doubles from
// DefaultRetryMin to RetryMax.
const (
	DefaultInterval      = config.DefaultUplinkInterval
	DefaultStatsInterval = config.DefaultUplinkStatsInterval
	DefaultRetryMin      = time.Second
	DefaultRetryMax      = config.DefaultUplinkRetryMax
	// DefaultFlushTimeout bounds the pushes of Run's end (Close, ctx
	// ended): what is not pushed by then stays in the spool for the next
	// start.
	DefaultFlushTimeout = 10 * time.Second
	// DefaultQueueMax bounds the abnormal records and the statistics
	// batches waiting to be written (each); beyond it the oldest is
	// dropped and counted.
	DefaultQueueMax = 1024
)

// Options configure an Exporter. Zero fields take the defaults.
type Options struct {
	Name     string         // for logs; default "mtt1201"
	Mine     Mine           // the headers' mine and system
	Loc      *time.Location // zone of the files; nil = DefaultLocation (UTC+8)
	Interval time.Duration  // real-time file period; 0 = DefaultInterval
	// StatsInterval is the window of the statistics handed to Stats
	// (uplinks[].stats_interval; 0 = DefaultStatsInterval). The exporter
	// writes each Stats call as one TJSJ file whatever its window.
	StatsInterval time.Duration
	SpoolDir      string   // required
	SpoolMaxBytes int64    // ≤ 0: unbounded
	SpoolMaxFiles int      // ≤ 0: unbounded
	Uploader      Uploader // required: the SFTP pusher (NewSFTP) or a test's
	// Codes are the site's code tables, for the caller's mapping
	// (Exporter.Codes); nil = DefaultCodes().
	Codes        *Codes
	RetryMin     time.Duration // first back-off; 0 = DefaultRetryMin
	RetryMax     time.Duration // back-off cap; 0 = DefaultRetryMax
	FlushTimeout time.Duration // 0 = DefaultFlushTimeout
	QueueMax     int           // 0 = DefaultQueueMax
	Clock        Clock         // nil = RealClock
	Log          *slog.Logger  // nil = slog.Default()
	// OnPushed, if set, is called from the push goroutine after a file's
	// upload is confirmed and it has left the spool (metrics, tests). It
	// must not block.
	OnPushed func(name string)
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = config.UplinkMTT1201
	}
	if o.Loc == nil {
		o.Loc = DefaultLocation
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.Codes == nil {
		o.Codes = DefaultCodes()
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.QueueMax <= 0 {
		o.QueueMax = DefaultQueueMax
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// OptionsFromConfig builds the options of a validated mtt1201 uplink: the
// mine and zone, the spool and its bounds, the code tables with the
// site's overrides, and the SFTP pusher (its key and known_hosts are read
// now: errors name the file).
func OptionsFromConfig(u config.Uplink, log *slog.Logger) (Options, error) {
	if u.Kind != config.UplinkMTT1201 {
		return Options{}, fmt.Errorf("uplink %s: kind %q is not %s", u.Name, u.Kind, config.UplinkMTT1201)
	}
	loc, err := u.Location()
	if err != nil {
		return Options{}, fmt.Errorf("uplink %s: %w", u.Name, err)
	}
	until, err := time.Parse(DateLayout, u.SafetyMarkValidUntil)
	if err != nil {
		return Options{}, fmt.Errorf("uplink %s: safety_mark_valid_until: %w", u.Name, err)
	}
	up, err := NewSFTP(SFTPOptions{
		Address: u.SFTP.Address, User: u.SFTP.User, KeyFile: u.SFTP.KeyFile,
		KnownHostsFile: u.SFTP.KnownHostsFile, RemoteDir: u.SFTP.RemoteDir,
		Timeout: u.SFTP.Timeout.D(), MineCode: u.MineCode,
	})
	if err != nil {
		return Options{}, fmt.Errorf("uplink %s: %w", u.Name, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return Options{
		Name: u.Name,
		Mine: Mine{Code: u.MineCode, Name: u.MineName, SystemModel: u.SystemModel, SystemName: u.SystemName,
			Manufacturer: u.Manufacturer, SafetyMarkValidUntil: until},
		Loc: loc, Interval: u.Interval.D(), StatsInterval: u.StatsInterval.D(),
		SpoolDir: u.SpoolDir, SpoolMaxBytes: u.SpoolMaxBytes, SpoolMaxFiles: u.SpoolMaxFiles,
		Uploader: up, Codes: CodesFromConfig(u.Codes), RetryMax: u.SFTP.RetryMax.D(),
		Log: log.With("uplink", u.Name),
	}, nil
}
