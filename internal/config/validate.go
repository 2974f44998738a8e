package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Defaults applied when a key is absent.
const (
	DefaultDataDir      = "/var/lib/hazmon"
	DefaultTopicPrefix  = "hazmon/v1"
	DefaultSocket       = "/run/hazmon/hazmon.sock"
	DefaultInterval     = time.Second
	DefaultTCPTimeout   = time.Second
	DefaultRTUTimeout   = 500 * time.Millisecond
	DefaultKeepAlive    = 30 * time.Second
	DefaultBatchMax     = 200
	DefaultWindowBytes  = 64 << 10 // payload bytes in flight during a replay
	DefaultMaxGap       = 10       // unused registers a coalesced read may span
	DefaultBufferBytes  = 256 << 20
	DefaultBufferMaxAge = 30 * 24 * time.Hour // records of major hazard sources are kept ≥ 30 days
	// DefaultCommitInterval is buffer.commit_interval's default: at 500
	// sensors at 1 Hz a few fsync'd commits a second instead of one per
	// reading burst, message and ack, and at most 200 ms of readings not
	// yet committed lost to a power cut.
	DefaultCommitInterval = 200 * time.Millisecond
	// MaxCommitInterval bounds buffer.commit_interval.
	MaxCommitInterval = 5 * time.Second
	MinInterval       = 10 * time.Millisecond
	DefaultDebounce   = 10 * time.Millisecond
	// DefaultFaultAfter is a bus sensor's fault_after: one lost reply
	// (a noisy RS-485 run) is not a fault, two polls in a row are, which
	// keeps a dead slave's cut within 2 × interval + timeout
	// (GB 50581-2010 §3.1.4; see MaxCutFaultAfter).
	DefaultFaultAfter = 2
)

// The telemetry encodings (mqtt.telemetry). DefaultTelemetry is v1 until
// the platform reads v2 (contract v2, README "Compact telemetry").
const (
	TelemetryV1      = "v1"   // …/telemetry only, contract v1 as before
	TelemetryV2      = "v2"   // …/telemetry/v2 only
	TelemetryBoth    = "both" // every message on both topics, same seq and rec
	DefaultTelemetry = TelemetryV1
)

// DefaultReconnectMax caps the MQTT reconnect back-off (mqtt.reconnect_max):
// after a broker outage a buffered alarm reaches the bureau within about
// this long of the broker's return (a 60 s cap made it 74 s, issue 10).
const DefaultReconnectMax = 10 * time.Second

// Pacing of the retained …/current snapshot (mqtt.current_deadband,
// mqtt.current_interval): a sensor's value must move by more than its
// resolution × DefaultCurrentDeadband, or its status change, to be
// published at once (no more than once a second); otherwise the snapshot
// is refreshed every DefaultCurrentInterval. At 500 sensors read at 1 Hz
// the snapshot is about 50 kB: every second that was 50 kB/s on the wire.
const (
	DefaultCurrentDeadband = 1.0
	DefaultCurrentInterval = 10 * time.Second
	MinCurrentInterval     = time.Second
	MaxCurrentInterval     = 10 * time.Minute
)

// DefaultMemoryLimit is agent.memory_limit's default: the Go runtime's
// soft memory limit, 32 MiB (the agent's steady state at 500 sensors is
// about 20 MB RSS); the runtime collects harder as the heap nears it.
// MinMemoryLimit is the smallest accepted: below it the collector would
// run all the time.
const (
	DefaultMemoryLimit = Size(32 << 20)
	MinMemoryLimit     = Size(8 << 20)
)

// SensorTypes lists the accepted sensor types.
var SensorTypes = []string{
	"methane", "co", "o2", "h2s", "co2", "no2", "so2", "nh3", "lel", "water_level", "pressure",
	"temperature", "flow", "wind", "rain", "level", "humidity", "dust", "displacement",
	"saturation_line", "beach_length", "digital", "generic",
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

type violation struct {
	path, msg string
}

type checker struct {
	errs, warns []violation
}

func (c *checker) errf(path, format string, a ...any) {
	c.errs = append(c.errs, violation{path, fmt.Sprintf(format, a...)})
}

func (c *checker) warnf(path, format string, a ...any) {
	c.warns = append(c.warns, violation{path, fmt.Sprintf(format, a...)})
}

func applyDefaults(c *Config) {
	if c.Agent.DataDir == "" {
		c.Agent.DataDir = DefaultDataDir
	}
	if c.MQTT.TopicPrefix == "" {
		c.MQTT.TopicPrefix = DefaultTopicPrefix
	}
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = "hazmon-" + c.Agent.Site + "-" + c.Agent.ID
	}
	if c.MQTT.KeepAlive == 0 {
		c.MQTT.KeepAlive = Duration(DefaultKeepAlive)
	}
	if c.MQTT.ConnectTimeout == 0 {
		c.MQTT.ConnectTimeout = Duration(10 * time.Second)
	}
	if c.MQTT.PublishTimeout == 0 {
		c.MQTT.PublishTimeout = Duration(10 * time.Second)
	}
	if c.Stats.Interval == 0 {
		c.Stats.Interval = Duration(DefaultStatsInterval)
	}
	if c.MQTT.CurrentDeadband == nil {
		d := DefaultCurrentDeadband
		c.MQTT.CurrentDeadband = &d
	}
	if c.MQTT.CurrentInterval == 0 {
		c.MQTT.CurrentInterval = Duration(DefaultCurrentInterval)
	}
	if c.Agent.MemoryLimit == 0 {
		c.Agent.MemoryLimit = DefaultMemoryLimit
	}
	if c.MQTT.ReconnectMax == 0 {
		c.MQTT.ReconnectMax = Duration(DefaultReconnectMax)
	}
	if c.MQTT.WindowBytes == 0 {
		c.MQTT.WindowBytes = DefaultWindowBytes
	}
	if c.MQTT.BatchMax == 0 {
		c.MQTT.BatchMax = DefaultBatchMax
	}
	if c.MQTT.Telemetry == "" {
		c.MQTT.Telemetry = DefaultTelemetry
	}
	if c.Buffer.MaxBytes == 0 {
		c.Buffer.MaxBytes = DefaultBufferBytes
	}
	if c.Buffer.MaxAge == 0 {
		c.Buffer.MaxAge = Duration(DefaultBufferMaxAge)
	}
	if c.Buffer.CommitInterval == nil {
		d := Duration(DefaultCommitInterval)
		c.Buffer.CommitInterval = &d
	}
	if c.Control.Socket == "" {
		c.Control.Socket = DefaultSocket
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Buses {
		b := &c.Buses[i]
		if b.MaxGap == nil {
			g := DefaultMaxGap
			b.MaxGap = &g
		}
		switch b.Protocol {
		case "tcp":
			if b.Timeout == 0 {
				b.Timeout = Duration(DefaultTCPTimeout)
			}
		case "rtu":
			if b.Timeout == 0 {
				b.Timeout = Duration(DefaultRTUTimeout)
			}
			if b.Baud == 0 {
				b.Baud = 9600
			}
			if b.DataBits == 0 {
				b.DataBits = 8
			}
			if b.Parity == "" {
				b.Parity = "E"
			}
			if b.StopBits == 0 {
				b.StopBits = 1
			}
			if b.Echo == "" {
				b.Echo = "auto"
			}
		}
	}
	for i := range c.Outputs {
		if c.Outputs[i].FeedTimeout == 0 {
			c.Outputs[i].FeedTimeout = Duration(DefaultFeedTimeout)
		}
		if hb := c.Outputs[i].Heartbeat; hb != nil && hb.Every == 0 {
			hb.Every = Duration(DefaultHeartbeatEvery)
		}
	}
	for i := range c.Sensors {
		s := &c.Sensors[i]
		if s.GPIO != nil {
			if s.Format == "" {
				s.Format = "bool"
			}
			if s.GPIO.Debounce == 0 {
				s.GPIO.Debounce = Duration(DefaultDebounce)
			}
		}
		if s.Interval == 0 {
			s.Interval = Duration(DefaultInterval)
		}
		if s.Format == "" {
			if s.Table == "coil" || s.Table == "discrete" {
				s.Format = "bool"
			} else {
				s.Format = "uint16"
			}
		}
		if s.ByteOrder == "" {
			s.ByteOrder = "ABCD"
		}
		if s.FaultAfter == nil && s.GPIO == nil {
			n := DefaultFaultAfter
			s.FaultAfter = &n
		}
	}
}

// Bus returns the bus named name, or nil.
func (c *Config) Bus(name string) *Bus {
	for i := range c.Buses {
		if c.Buses[i].Name == name {
			return &c.Buses[i]
		}
	}
	return nil
}

func (c *Config) validate() (errs, warns []violation) {
	var k checker
	k.id("agent.id", c.Agent.ID)
	k.id("agent.site", c.Agent.Site)
	if n := c.Agent.MemoryLimit; n > 0 && n < MinMemoryLimit {
		k.errf("agent.memory_limit", "%s is below %s (the collector would run all the time); use off for no limit", n, MinMemoryLimit)
	}

	c.validateMQTT(&k)
	if c.Buffer.MaxBytes < 1<<20 {
		k.errf("buffer.max_bytes", "%d is too small (at least 1 MiB)", c.Buffer.MaxBytes)
	}
	if ci := c.Buffer.CommitInterval; ci != nil && (*ci < 0 || ci.D() > MaxCommitInterval) {
		k.errf("buffer.commit_interval", "%s is outside 0..%s (0: commit at once)", *ci, MaxCommitInterval)
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		k.errf("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		k.errf("log.format", "%q: use text or json", c.Log.Format)
	}

	buses := map[string]int{}
	for i, b := range c.Buses {
		p := fmt.Sprintf("buses[%d]", i)
		k.unique(p+".name", b.Name, "buses", i, buses)
		switch b.Protocol {
		case "tcp":
			if b.Address == "" {
				k.errf(p+".address", "required for protocol tcp (host:port, e.g. 192.168.1.10:502)")
			} else if _, port, err := net.SplitHostPort(b.Address); err != nil || port == "" {
				k.errf(p+".address", "%q is not host:port", b.Address)
			}
			if b.Device != "" {
				k.errf(p+".device", "only for protocol rtu")
			}
			if b.Echo != "" {
				k.errf(p+".echo", "only for protocol rtu")
			}
			if b.Turnaround != 0 {
				k.errf(p+".turnaround", "only for protocol rtu")
			}
		case "rtu":
			if b.Device == "" {
				k.errf(p+".device", "required for protocol rtu (e.g. /dev/ttyUSB0)")
			}
			if b.Address != "" {
				k.errf(p+".address", "only for protocol tcp")
			}
			if !oneOfInt(b.Baud, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200) {
				k.errf(p+".baud", "%d: use 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200", b.Baud)
			}
			if !oneOfInt(b.DataBits, 7, 8) {
				k.errf(p+".data_bits", "%d: use 7 or 8", b.DataBits)
			}
			if !oneOf(b.Parity, "N", "E", "O") {
				k.errf(p+".parity", "%q: use N, E or O", b.Parity)
			}
			if !oneOfInt(b.StopBits, 1, 2) {
				k.errf(p+".stop_bits", "%d: use 1 or 2", b.StopBits)
			}
			if !oneOf(b.Echo, "auto", "on", "off") {
				k.errf(p+".echo", "%q: use auto, on or off", b.Echo)
			}
			if t := b.Turnaround.D(); t != 0 && (t < time.Millisecond || t > 2*time.Second) {
				k.errf(p+".turnaround", "%s is outside 1ms..2s", b.Turnaround)
			}
		case "":
			k.errf(p+".protocol", "required: tcp or rtu")
		default:
			k.errf(p+".protocol", "%q: use tcp or rtu", b.Protocol)
		}
		if b.Timeout.D() < 10*time.Millisecond || b.Timeout.D() > 30*time.Second {
			k.errf(p+".timeout", "%s is outside 10ms..30s", b.Timeout)
		}
		// max_gap (issue 6, request coalescing): -1 disables, 0..125 registers.
		if b.MaxGap != nil && (*b.MaxGap < -1 || *b.MaxGap > 125) {
			k.errf(p+".max_gap", "%d is outside -1..125 (-1 = no coalescing)", *b.MaxGap)
		}
	}

	if len(c.Sensors) == 0 {
		k.errf("sensors", "required: at least one sensor")
	}
	ids := map[string]int{}
	for i, s := range c.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		k.unique(p+".id", s.ID, "sensors", i, ids)
		if s.Type == "" {
			k.errf(p+".type", "required: one of %s", strings.Join(SensorTypes, ", "))
		} else if !oneOf(s.Type, SensorTypes...) {
			k.errf(p+".type", "%q: use one of %s", s.Type, strings.Join(SensorTypes, ", "))
		}
		if s.GPIO != nil {
			validateGPIOSensor(&k, p, s)
			continue
		}
		var bus *Bus
		if s.Bus == "" {
			k.errf(p+".bus", "required: name of a bus in buses")
		} else if j, ok := buses[s.Bus]; !ok {
			k.errf(p+".bus", "%s", notDefined(s.Bus, "a bus", "buses", c.busNames()))
		} else {
			bus = &c.Buses[j]
		}
		if bus != nil {
			lo, hi := 1, 247
			if bus.Protocol == "tcp" {
				lo, hi = 0, 255
			}
			if s.Slave < lo || s.Slave > hi {
				k.errf(p+".slave", "%d is outside %d..%d (Modbus unit id on %s)", s.Slave, lo, hi, bus.Protocol)
			}
		}
		words := 1
		switch s.Table {
		case "holding", "input":
			switch s.Format {
			case "int16", "uint16", "bool":
			case "int32", "uint32", "float32":
				words = 2
			default:
				k.errf(p+".format", "%q: use int16, uint16, int32, uint32, float32 or bool", s.Format)
			}
		case "coil", "discrete":
			if s.Format != "bool" {
				k.errf(p+".format", "%q: a %s holds one bit, use bool", s.Format, s.Table)
			}
		case "":
			k.errf(p+".table", "required: holding, input, coil or discrete")
		default:
			k.errf(p+".table", "%q: use holding, input, coil or discrete", s.Table)
		}
		if !oneOf(s.ByteOrder, "ABCD", "CDAB", "BADC", "DCBA") {
			k.errf(p+".byte_order", "%q: use ABCD, CDAB, BADC or DCBA", s.ByteOrder)
		} else if words == 1 && s.ByteOrder != "ABCD" {
			k.warnf(p+".byte_order", "%s is ignored for a 16-bit or bool value", s.ByteOrder)
		}
		if s.Address < 0 || s.Address+words-1 > 65535 {
			k.errf(p+".address", "%d is outside 0..%d (0-based protocol address)", s.Address, 65536-words)
		}
		if s.Scale != nil && *s.Scale == 0 {
			k.errf(p+".scale", "0 would turn every reading into 0")
		}
		if s.Format == "float32" && s.ScaleOr1() != 1 {
			k.warnf(p+".scale", "a float32 is usually already in engineering units; scale %g applied", s.ScaleOr1())
		}
		if s.Format == "bool" && (s.Scale != nil || s.Offset != 0) {
			k.errf(p+".scale", "scale and offset do not apply to a bool")
		}
		if s.Interval.D() < MinInterval {
			k.errf(p+".interval", "%s is shorter than %s", s.Interval, MinInterval)
		}
		if len(s.Range) > 0 {
			if len(s.Range) != 2 {
				k.errf(p+".range", "want [min, max], got %d values", len(s.Range))
			} else if !(s.Range[0] < s.Range[1]) {
				k.errf(p+".range", "min %g must be below max %g", s.Range[0], s.Range[1])
			}
		} else if s.Format != "bool" {
			k.warnf(p+".range", "no valid range: an out-of-range value (broken line, over-range) cannot be told from a reading")
		}
		if s.Unit == "" && s.Format != "bool" {
			k.warnf(p+".unit", "no unit: the platform will show a bare number")
		}
	}
	c.validateSafety(&k)
	c.validatePolling(&k)
	c.validateMetrics(&k)
	c.validateStats(&k)
	c.validateUplinks(&k)
	return k.errs, k.warns
}
