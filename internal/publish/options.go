package publish

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
)

// Defaults of Options.
const (
	DefaultKeepAlive      = 30 * time.Second // MQTT keepalive; the LWT fires within 1.5× this (M4)
	DefaultConnectTimeout = 10 * time.Second
	DefaultPublishTimeout = 10 * time.Second // wait for one PUBACK
	DefaultWindow         = 16               // publishes in flight
	DefaultWindowBytes    = 64 << 10         // payload bytes in flight (at least one message)
	DefaultBatchMax       = 200              // readings per telemetry message
	DefaultBatchBytes     = 64 << 10         // encoded readings per telemetry message
)

// Defaults of the reconnect back-off (Options.BackoffMin, BackoffMax).
// After a 45 s broker outage a buffered alarm reaches the bureau within
// 12 s of the broker's return (issue 10; a 60 s cap made it 74 s).
const (
	DefaultBackoffMin = time.Second                // the first retry after a loss comes within this
	DefaultBackoffMax = config.DefaultReconnectMax // cap of every wait (mqtt.reconnect_max)
)

// ErrPubackTimeout means a PUBACK did not come within PublishTimeout: the
// link is treated as dead and dropped.
var ErrPubackTimeout = errors.New("no PUBACK within the publish timeout")

// Options configures a Publisher. Brokers, Site and Agent are required.
type Options struct {
	Brokers        []string // tried in order: tcp://host:1883, ssl://host:8883
	ClientID       string   // default "hazmon-<site>-<agent>"
	Username       string
	PasswordFile   string      // read at each connect; never logged
	TLS            *tls.Config // nil: from the broker URL scheme, system roots
	TopicPrefix    string      // default contract.DefaultTopicPrefix
	Site, Agent    string
	Version        string   // agent version, in status
	Sensors        []string // sensor ids, in status
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	PublishTimeout time.Duration
	// Window bounds the publishes waiting for a PUBACK, WindowBytes their
	// payload bytes (one message is always allowed). Together with
	// RateBytes they pace a replay so that a slow uplink is never queued
	// for longer than PublishTimeout and keepalive pings are not stuck
	// behind a backlog (field case M3).
	Window      int
	WindowBytes int
	// RateBytes caps the payload bytes per second sent from the buffer
	// (0: unlimited). Set it below the uplink's capacity on slow links.
	RateBytes  int
	BatchMax   int
	BatchBytes int
	// Telemetry is the telemetry encoding (mqtt.telemetry):
	// config.TelemetryV1 ("" too), config.TelemetryV2 or
	// config.TelemetryBoth. v2 needs the registry's table
	// (SetTelemetryIndex).
	Telemetry string
	// FreshReadingsCanonical vouches that every telemetry record this
	// process appends to the buffer is contract.AppendReading's output
	// (the agent's recorder is their only producer): a v1 message of
	// records still in memory (store.Item.Fresh) is then joined by
	// contract.AppendTelemetry, not re-scanned by encoding/json. Records
	// read back from the file are always checked. False (the default):
	// every record is checked, and one that is not JSON goes to the dead
	// letters.
	FreshReadingsCanonical bool
	// BackoffMin and BackoffMax bound the wait between reconnect attempts
	// (capped exponential back-off with jitter, see backoff): the first
	// retry after a loss waits at most BackoffMin, no wait is longer than
	// BackoffMax (mqtt.reconnect_max). A BackoffMin above BackoffMax is
	// BackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	Logger     *slog.Logger

	// CurrentDeadband, CurrentInterval and Resolutions pace the retained
	// current snapshot (see currentSnapshot): a value moving by more than
	// its sensor's resolution (Resolutions, engineering units by sensor
	// id; missing or 0: safety.DefaultResolution) × CurrentDeadband
	// (nil: config.DefaultCurrentDeadband; 0: any change) from the value
	// last published, or a change of status, publishes it at once (never
	// within MinCurrentGap of the last); otherwise it is refreshed every
	// CurrentInterval (0: config.DefaultCurrentInterval). Publisher.SetResolutions
	// replaces Resolutions.
	CurrentDeadband *float64
	CurrentInterval time.Duration
	Resolutions     map[string]float64
	// Now is the clock of the current snapshot's pacing (and its ts);
	// default time.Now.
	Now func() time.Time

	// BootID identifies this process start in status (32 lowercase hex
	// digits); default BootID(). ConfigHash is the running config's
	// contract.ConfigHash, in status ("" until known; see SetConfig).
	BootID     string
	ConfigHash string
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, DefaultKeepAlive)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.PublishTimeout, DefaultPublishTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	def(&o.CurrentInterval, config.DefaultCurrentInterval)
	o.CurrentInterval = max(o.CurrentInterval, MinCurrentGap)
	if o.CurrentDeadband == nil || !(*o.CurrentDeadband >= 0) {
		d := config.DefaultCurrentDeadband
		o.CurrentDeadband = &d
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.BackoffMin = min(o.BackoffMin, o.BackoffMax)
	if o.BootID == "" {
		o.BootID = BootID()
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = DefaultWindowBytes
	}
	if o.BatchMax <= 0 {
		o.BatchMax = DefaultBatchMax
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Telemetry == "" {
		o.Telemetry = config.DefaultTelemetry
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = contract.DefaultTopicPrefix
	}
	if o.ClientID == "" {
		o.ClientID = "hazmon-" + o.Site + "-" + o.Agent
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// OptionsFromConfig maps the mqtt and agent sections of the config to
// Options (TLS files loaded, durations defaulted). Resolutions is left
// for the caller (config.Config.Resolutions).
func OptionsFromConfig(m config.MQTT, a config.Agent, version string, sensors []string) (Options, error) {
	o := Options{
		Brokers: m.Brokers, ClientID: m.ClientID, Username: m.Username, PasswordFile: m.PasswordFile,
		TopicPrefix: m.TopicPrefix, Site: a.Site, Agent: a.ID, Version: version, Sensors: sensors,
		KeepAlive: m.KeepAlive.D(), ConnectTimeout: m.ConnectTimeout.D(), PublishTimeout: m.PublishTimeout.D(),
		BatchMax: m.BatchMax, WindowBytes: m.WindowBytes, RateBytes: m.RateBytes, Telemetry: m.Telemetry,
		BackoffMax: m.ReconnectMax.D(), CurrentDeadband: m.CurrentDeadband, CurrentInterval: m.CurrentInterval.D(),
	}
	if m.TLS != (config.TLS{}) || anyTLS(m.Brokers) {
		t, err := TLSConfig(m.TLS)
		if err != nil {
			return Options{}, err
		}
		o.TLS = t
	}
	return o, nil
}

func anyTLS(urls []string) bool {
	for _, u := range urls {
		if config.TLSScheme(u) {
			return true
		}
	}
	return false
}

// TLSConfig builds a TLS 1.2+ client config: CA file (else system roots),
// optional client certificate and key, server name. Server verification
// stays on unless InsecureSkipVerify is set. It is config.TLS.ClientConfig,
// which validate also runs: a config that validates loads here.
// Its errors name the key ("mqtt.tls.ca_file: ...").
func TLSConfig(c config.TLS) (*tls.Config, error) {
	return c.ClientConfig()
}
