package safety

import "time"

// Regulation figures the Core enforces.
const (
	// MaxCutoffDelay is the longest a cut may take, from the reading that
	// demands it to the output confirmed cut: a methane over-limit cut-off
	// and the ventilation-power interlock act within 2 s (GB 50581-2010
	// §3.1.4, R). A cut-off rule's on-delay may not exceed it either, and a
	// cut not confirmed within it raises LevelOutputUnconfirmed.
	MaxCutoffDelay = 2 * time.Second

	// DefaultFeedTimeout is how long an output's feed may contradict its
	// command before feed abnormal (馈电异常) is raised. The regulation sets
	// no figure; 2 s covers a breaker's travel (well under 100 ms) and a
	// feed contact polled at the default 1 s interval plus its debounce.
	DefaultFeedTimeout = 2 * time.Second

	// TickEvery is how often the Core advances its timers (on-delays,
	// fault unlock, stale sensors, feed timeouts, calibration end,
	// heartbeats) without a reading, while any of them is running or can
	// come due soon; IdleTickEvery (due.go) otherwise.
	TickEvery = 100 * time.Millisecond

	// DefaultRestartSettle is how long after start the Core waits for the
	// first evaluation of a sensor before it clears, with reason "restart",
	// an alarm that was active when the agent last stopped and has not been
	// raised again.
	DefaultRestartSettle = 30 * time.Second
)

// Spec is what the Core enforces: the rules of every sensor, the outputs
// with their feed checks and heartbeats, and the warning groups. The app
// builds it from the validated config (config.Config.SafetySpec).
type Spec struct {
	Sensors []SensorRules
	Outputs []OutputSpec
	Groups  []GroupSpec
}

// OutputSpec is one output as the Core sees it: its name, and optionally a
// feed sensor and a heartbeat. How it is driven (GPIO line, Modbus coil) is
// its Lane's business.
type OutputSpec struct {
	Name string
	// Feed is the id of a bool sensor showing whether power is really
	// present on the controlled circuit (value != 0: present); "" for none.
	Feed string
	// FeedTimeout bounds how long the feed may contradict the command
	// (0: DefaultFeedTimeout).
	FeedTimeout time.Duration
	// Heartbeat, if > 0, is the period at which the Core asks the lane to
	// toggle the output's heartbeat (a coil a PLC's communications watchdog
	// watches): while the Core is stalled no toggles go out and the PLC can
	// drop power.
	Heartbeat time.Duration
}

// GroupSpec is a tailings pond's set of monitoring items whose colour
// warnings combine into one warning (GB 51108-2015, AggregateWarning),
// published as an alarm whose sensor is the group's name.
type GroupSpec struct {
	Name    string
	Sensors []string
}
