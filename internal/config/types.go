package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole agent configuration, as read from hazmon.yaml.
// The key names are a contract with field technicians (see README "Config reference").
type Config struct {
	Agent   Agent    `yaml:"agent"`
	MQTT    MQTT     `yaml:"mqtt"`
	Buffer  Buffer   `yaml:"buffer"`
	Buses   []Bus    `yaml:"buses"`
	Sensors []Sensor `yaml:"sensors"`
	Outputs []Output `yaml:"outputs,omitempty"`
	// WarningGroups aggregate the colour warnings of several monitoring
	// items (a tailings pond's water level, phreatic line, beach length,
	// rainfall, ...) into one warning per GB 51108-2015.
	WarningGroups []WarningGroup `yaml:"warning_groups,omitempty"`
	Control       Control        `yaml:"control"`
	Log           Log            `yaml:"log"`
	Metrics       Metrics        `yaml:"metrics,omitempty"` // Prometheus endpoint on TCP (metrics.go)
	Stats         Stats          `yaml:"stats,omitempty"`   // statistics windows (stats.go)
	// Uplinks are uplinks besides MQTT: the regulator's MT/T 1201.1-2023
	// files pushed by SFTP (kind mtt1201; none by default; uplinks.go).
	Uplinks []Uplink `yaml:"uplinks,omitempty"`
}

// Agent identifies this gateway and where it keeps its data.
type Agent struct {
	ID      string `yaml:"id"`       // gateway id, used in topics; letters, digits, '-', '_'
	Site    string `yaml:"site"`     // site (enterprise) code, used in topics
	DataDir string `yaml:"data_dir"` // folder of the bbolt buffer; default /var/lib/hazmon
	// MemoryLimit is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit): default DefaultMemoryLimit, off (or
	// 0) for none. The GOMEMLIMIT environment variable, when set, wins.
	// A reload applies a change.
	MemoryLimit Size `yaml:"memory_limit"`
}

// MQTT is the link to the bureau's broker.
type MQTT struct {
	Brokers        []string `yaml:"brokers"`                 // tcp://host:1883, ssl://host:8883, tls://...; tried in order
	TopicPrefix    string   `yaml:"topic_prefix"`            // default "hazmon/v1"
	ClientID       string   `yaml:"client_id"`               // default "hazmon-<site>-<agent id>"
	Username       string   `yaml:"username,omitempty"`      // optional
	PasswordFile   string   `yaml:"password_file,omitempty"` // file holding the password; never logged
	TLS            TLS      `yaml:"tls"`
	KeepAlive      Duration `yaml:"keepalive"`       // default 30s
	ConnectTimeout Duration `yaml:"connect_timeout"` // default 10s
	PublishTimeout Duration `yaml:"publish_timeout"` // wait for a PUBACK; default 10s
	BatchMax       int      `yaml:"batch_max"`       // max readings in one telemetry message; default 200
	// Telemetry chooses the telemetry encoding: TelemetryV1 (…/telemetry,
	// the default), TelemetryV2 (compact, …/telemetry/v2) or
	// TelemetryBoth (each message in both, same seq and rec).
	Telemetry string `yaml:"telemetry"`
	// WindowBytes bounds the payload bytes waiting for a PUBACK (default
	// 64 KiB); RateBytes caps the bytes per second of a backlog replay
	// (0 = unlimited): set it below a slow uplink's capacity so keepalive
	// pings are never starved.
	WindowBytes int `yaml:"window_bytes"`
	RateBytes   int `yaml:"rate_bytes,omitempty"`

	// ReconnectMax caps the back-off between reconnect attempts (default
	// 10s, 1s..60s): the first retry after a loss comes within 1 s, each
	// next one waits up to twice as long, jittered, never longer than this.
	ReconnectMax Duration `yaml:"reconnect_max"`

	// CurrentDeadband and CurrentInterval pace the retained …/current
	// snapshot: it is published when a sensor's status changes or its
	// value moves by more than its resolution × CurrentDeadband (default
	// DefaultCurrentDeadband, ≥ 0; 0: any change) from the value last
	// published, otherwise at most every CurrentInterval (default
	// DefaultCurrentInterval, MinCurrentInterval..MaxCurrentInterval);
	// never more than once a second.
	CurrentDeadband *float64 `yaml:"current_deadband"`
	CurrentInterval Duration `yaml:"current_interval"`
}

// TLS configures a secured broker link. Server verification is on unless
// InsecureSkipVerify is set.
type TLS struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// Buffer bounds the bbolt store-and-forward buffer.
type Buffer struct {
	MaxBytes int64    `yaml:"max_bytes"` // 0 = default 256 MiB
	MaxAge   Duration `yaml:"max_age"`   // 0 = default 30 days (records kept ≥ 30 days for major hazard sources)
	// CommitInterval is the buffer's group-commit window (0..5s; unset:
	// DefaultCommitInterval): telemetry and statistics gathered within it
	// are written in one fsync'd transaction, so it bounds what a power
	// cut can lose of readings not yet committed. 0 commits at once.
	// Alarms and events are always committed at once.
	CommitInterval *Duration `yaml:"commit_interval"`
}

// Bus is one Modbus link: a TCP connection or an RS-485 serial port.
type Bus struct {
	Name     string   `yaml:"name"`
	Protocol string   `yaml:"protocol"`            // "tcp" or "rtu"
	Address  string   `yaml:"address,omitempty"`   // tcp: host:port
	Device   string   `yaml:"device,omitempty"`    // rtu: /dev/ttyUSB0
	Baud     int      `yaml:"baud,omitempty"`      // rtu: default 9600
	DataBits int      `yaml:"data_bits,omitempty"` // rtu: default 8
	Parity   string   `yaml:"parity,omitempty"`    // rtu: N|E|O, default E
	StopBits int      `yaml:"stop_bits,omitempty"` // rtu: 1|2, default 1
	Timeout  Duration `yaml:"timeout"`             // per request; default 1s tcp, 500ms rtu
	// Echo (rtu only) says whether the RS-485 adapter receives what it
	// transmits: auto (default: a copy of the request ahead of the reply
	// is skipped, and whether the adapter echoes is learnt from reads),
	// on (it always echoes: skip it, fail if it is missing or differs) or
	// off (no echo expected).
	Echo string `yaml:"echo,omitempty"`
	// Turnaround (rtu only) is how long the line must stay silent after a
	// slave's transaction failed (timeout, damaged reply) before the next
	// request to it, so a late reply is drained and never read as the next
	// answer. 0 = default 100ms, the turnaround delay of Modbus over
	// Serial Line v1.02 §2.4.1; raise it for slaves that answer slower.
	Turnaround Duration `yaml:"turnaround,omitempty"`
	// MaxGap is the largest run of unused registers (or coils/discrete
	// inputs) between two sensors of the same slave, table and interval
	// that are still read in one request (at most 125 registers or 2000
	// bits per request, Modbus Application Protocol v1.1b3 §6.1-6.4).
	// nil = default 10 (at 9600 baud a request costs about as much wire
	// time as 11 unused registers); 0 merges only adjacent or overlapping
	// sensors; -1 disables coalescing (one request per sensor).
	MaxGap *int `yaml:"max_gap"`
}

// Sensor is one measured point: where it is read and how it is decoded.
type Sensor struct {
	ID        string    `yaml:"id"`
	Type      string    `yaml:"type"` // methane|co|o2|h2s|lel|water_level|pressure|temperature|flow|wind|rain|level|digital
	Bus       string    `yaml:"bus"`
	Slave     int       `yaml:"slave"`      // Modbus unit id: 1..247 (0..255 on tcp)
	Table     string    `yaml:"table"`      // holding|input|coil|discrete
	Address   int       `yaml:"address"`    // 0-based protocol address 0..65535
	Format    string    `yaml:"format"`     // int16|uint16|int32|uint32|float32|bool
	ByteOrder string    `yaml:"byte_order"` // ABCD (default)|CDAB|BADC|DCBA
	Scale     *float64  `yaml:"scale"`      // default 1
	Offset    float64   `yaml:"offset,omitempty"`
	Unit      string    `yaml:"unit"`
	Interval  Duration  `yaml:"interval"`           // default 1s
	Range     []float64 `yaml:"range,omitempty"`    // [min, max] valid engineering range
	NoValue   []int64   `yaml:"no_value,omitempty"` // raw codes that mean "no value" (e.g. 65535): a fault
	Location  string    `yaml:"location,omitempty"` // optional preset from the methane table (safety.MethaneTable)
	// GPIO reads a digital sensor from a GPIO line instead of a Modbus bus
	// (type digital: float switches, door, fan and feed contacts).
	GPIO *GPIOIn `yaml:"gpio,omitempty"`
	// Rules are the sensor's local safety rules; see README "Safety rules".
	Rules []Rule `yaml:"rules,omitempty"`
	// CutOutputs are the outputs the cut-off rule of a location preset
	// de-energises (with location and no hand-written rules).
	CutOutputs []string `yaml:"cut_outputs,omitempty"`
	// OverrideRegulation accepts rules looser than the regulation's limits
	// (validate then warns instead of failing).
	OverrideRegulation bool `yaml:"override_regulation,omitempty"`
	// FaultUnlockAfter: how long the sensor must read validly after a fault
	// before its on_fault=cut outputs are released (default 10s).
	FaultUnlockAfter Duration `yaml:"fault_unlock_after"`
	// Resolution is the comparison step of rules in engineering units
	// (default: derived from format and scale, e.g. 0.01 for scale 0.01).
	Resolution float64 `yaml:"resolution"`
	// FaultAfter is how many polls in a row must fail for communication
	// (timeout, no reply, CRC, malformed frame, gateway exception 10/11)
	// before a bus sensor reads fault; a failed poll below it emits no
	// reading (the last one stands). nil = DefaultFaultAfter; at least 1;
	// at most MaxCutFaultAfter for a sensor whose rules cut outputs.
	// Faults that are facts about the value (NaN, no-value code, out of
	// range, other exceptions) and a bus that is down are faults at once.
	FaultAfter *int `yaml:"fault_after"`
	// StaleAfter is how long the sensor may go without any reading (value
	// or fault) before the rule engine treats it as faulty; 0 = the default
	// of Config.StaleAfter.
	StaleAfter Duration `yaml:"stale_after"`
	// CalibrationDue is when the sensor's next calibration is due (a date,
	// 2006-01-02, taken at local midnight, or an RFC 3339 time). Catalytic
	// methane sensors are calibrated every 15 days, laser/infrared every 6
	// months (domain notes §4, S). 24 h before it a calibration_due event
	// warns; from it the alarm calibration_overdue stands until a reload
	// sets a later date. "" = not tracked.
	CalibrationDue string `yaml:"calibration_due,omitempty"`
	// Registry keys (the hazard-point registry on …/points and the
	// regulator's point definitions): TypeCode overrides the 4-digit
	// regulator sensor type code of Type (MT/T 1201.1-2023; the project's
	// table knows only the confirmed ones); PointCode overrides the point
	// code (default: built from the MT/T uplink's mine code, else
	// "<site>.<id>"); Place is the install place as the regulator names it
	// (free text); X, Y, Z are its coordinates.
	TypeCode  string   `yaml:"type_code,omitempty"`
	PointCode string   `yaml:"point_code,omitempty"`
	Place     string   `yaml:"place,omitempty"`
	X         *float64 `yaml:"x,omitempty"`
	Y         *float64 `yaml:"y,omitempty"`
	Z         *float64 `yaml:"z,omitempty"`
}

// GPIOIn is a digital input on a GPIO line (character device).
type GPIOIn struct {
	Chip      string   `yaml:"chip"` // e.g. gpiochip0
	Line      int      `yaml:"line"` // line offset on the chip
	ActiveLow bool     `yaml:"active_low"`
	Pull      string   `yaml:"pull"`     // up|down|none (default none)
	Debounce  Duration `yaml:"debounce"` // default 10ms
}

// Rule is one local safety rule of a sensor. Exactly one of Above, Below,
// Equals is set. Above/Below trigger at >= / <= the limit; ClearBelow /
// ClearAbove restore only when the value is strictly past them (default:
// the trigger limit). For is an optional on-delay.
type Rule struct {
	Level      string   `yaml:"level"` // alarm|alarm2|cutoff|blue|yellow|orange|red
	Above      *float64 `yaml:"above,omitempty"`
	Below      *float64 `yaml:"below,omitempty"`
	Equals     *bool    `yaml:"equals,omitempty"`
	ClearBelow *float64 `yaml:"clear_below,omitempty"`
	ClearAbove *float64 `yaml:"clear_above,omitempty"`
	For        Duration `yaml:"for,omitempty"`
	Outputs    []string `yaml:"outputs,omitempty"`  // outputs cut while the rule is raised
	OnFault    string   `yaml:"on_fault,omitempty"` // cut|hold (default cut for cutoff rules and methane)
}

// Output is a named actuator: a relay on a GPIO line or a coil on a Modbus
// slave (a PLC-driven breaker). Wiring is fail-safe: energised (high / coil
// 1) while power is allowed, de-energised when cut.
type Output struct {
	Name        string      `yaml:"name"`
	GPIO        *GPIOOut    `yaml:"gpio,omitempty"`
	Modbus      *ModbusCoil `yaml:"modbus,omitempty"`
	Feed        string      `yaml:"feed,omitempty"` // optional digital sensor id showing whether power is really present
	FeedTimeout Duration    `yaml:"feed_timeout"`   // default 2s
	// Heartbeat (Modbus outputs only) is a coil on the output's slave that
	// the agent toggles every Every while its safety loop runs, so a PLC's
	// communications watchdog can drop power when the agent goes silent.
	Heartbeat *Heartbeat `yaml:"heartbeat,omitempty"`
}

// Heartbeat is an output's heartbeat coil (Output.Heartbeat).
type Heartbeat struct {
	Coil  int      `yaml:"coil"`  // 0-based coil address on the output's slave
	Every Duration `yaml:"every"` // toggle period; default 1s, 100ms..60s
}

// GPIOOut is a relay driven by a GPIO line.
type GPIOOut struct {
	Chip      string `yaml:"chip"`
	Line      int    `yaml:"line"`
	ActiveLow bool   `yaml:"active_low"`
}

// ModbusCoil is a coil on a configured bus.
type ModbusCoil struct {
	Bus   string `yaml:"bus"`
	Slave int    `yaml:"slave"`
	Coil  int    `yaml:"coil"` // 0-based coil address
}

// Control is the local control socket used by the CLI.
type Control struct {
	Socket string `yaml:"socket"` // default /run/hazmon/hazmon.sock
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error, default info
	Format string `yaml:"format"` // text|json, default text
}

// ScaleOr1 returns the sensor's scale, 1 when unset.
func (s Sensor) ScaleOr1() float64 {
	if s.Scale == nil {
		return 1
	}
	return *s.Scale
}

// Duration is a time.Duration written in YAML as a Go duration string ("500ms", "1s", "2m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts a Go duration string such as "1s" or "500ms".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"1s\" or \"500ms\"", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (use e.g. \"1s\", \"500ms\")", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String returns d as a Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }

// WarningGroup is a set of sensors whose blue/yellow/orange/red levels
// combine into one warning (published as an alarm whose "sensor" is the
// group name): 4 blue → yellow, 3 yellow → orange, 2 orange → red
// (GB 51108-2015).
type WarningGroup struct {
	Name    string   `yaml:"name"`
	Sensors []string `yaml:"sensors"`
}
