package contract

// KindPoints is the retained registry of monitored points.
const KindPoints = "points"

// Points is the retained payload of {prefix}/{site}/{agent}/points: the
// hazard-point registry, republished on every start, reload and change of
// a calibration. Everything a consumer needs to interpret the other
// topics: each sensor's unit, range, limits in force (after location
// presets and type defaults, with the source of each), the outputs it cuts
// (its cut-off area), what it feeds; each output and what controls it; the
// warning groups. Hash identifies the content (not TS or calibration);
// Reg identifies only the sensor table a compact (v2) telemetry message
// indexes (RegHash: the ids and decimals in index order), so that a
// change of limits does not make a consumer wait for a new table. Reg is
// absent in registries of agents older than contract v2.
type Points struct {
	V       int           `json:"v"`
	Agent   string        `json:"agent"`
	Site    string        `json:"site"`
	TS      int64         `json:"ts"`
	Hash    string        `json:"hash"`
	Reg     string        `json:"reg,omitempty"`
	Sensors []PointSensor `json:"sensors"`
	Outputs []PointOutput `json:"outputs"`
	Groups  []PointGroup  `json:"groups"`
}

// PointSensor is one monitored point.
type PointSensor struct {
	ID    string `json:"id"`
	Index int    `json:"index"` // its position in the config (and in this list)
	Type  string `json:"type"`
	// TypeCode is the regulator's 4-digit sensor type code (MT/T
	// 1201.1-2023; "" when unknown), PointCode its point code, Kind MN
	// (analog) or KG (switch).
	TypeCode  string `json:"type_code"`
	PointCode string `json:"point_code"`
	Kind      string `json:"kind"`
	Unit      string `json:"unit"`
	// Resolution is the step its values are compared in by the safety
	// rules (engineering units). Decimals is the number of decimals its
	// values are written with when they are whole: a compact (v2)
	// telemetry value n means n / 10^Decimals. Both are absent in
	// registries of agents older than contract v2 (Decimals also when 0).
	Resolution float64   `json:"resolution,omitempty"`
	Decimals   int       `json:"decimals,omitempty"`
	Range      []float64 `json:"range,omitempty"` // [min, max] valid engineering range
	Bus        string    `json:"bus,omitempty"`   // "" for a GPIO input
	Location   string    `json:"location,omitempty"`
	Place      string    `json:"place,omitempty"`
	X          *float64  `json:"x,omitempty"`
	Y          *float64  `json:"y,omitempty"`
	Z          *float64  `json:"z,omitempty"`
	// Limits are the rules in force.
	Limits []PointLimit `json:"limits"`
	// Cuts: the outputs its rules cut (its cut-off area); FeedOf: the
	// outputs whose feed it is.
	Cuts        []string `json:"cuts"`
	FeedOf      []string `json:"feed_of"`
	IntervalS   float64  `json:"interval_s"`
	StaleAfterS float64  `json:"stale_after_s"`
	FaultAfter  int      `json:"fault_after"`
	// CalibrationDueTS (unix ms, 0: not tracked) and Calibrating (under
	// calibration now).
	CalibrationDueTS int64 `json:"calibration_due_ts,omitempty"`
	Calibrating      bool  `json:"calibrating"`
}

// PointLimit is one rule in force: raised at Limit (≥ for high, ≤ for low,
// equal for state), cleared strictly past Restore.
type PointLimit struct {
	Level     string   `json:"level"`
	Direction string   `json:"direction"` // high, low or state
	Limit     *float64 `json:"limit"`
	Restore   *float64 `json:"restore,omitempty"`
	ForS      float64  `json:"for_s"`    // on-delay, seconds
	OnFault   string   `json:"on_fault"` // cut or hold
	Outputs   []string `json:"outputs"`
	// Source: where the limit comes from ("site config", the regulation of
	// a location preset or a type default).
	Source string `json:"source"`
}

// PointOutput is one output: its kind (gpio, modbus), where it is, the
// sensors whose rules control it, its feed sensor, and whether it has a
// heartbeat.
type PointOutput struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	At           string   `json:"at"`
	ControlledBy []string `json:"controlled_by"`
	Feed         string   `json:"feed,omitempty"`
	Heartbeat    bool     `json:"heartbeat"`
}

// PointGroup is a tailings pond's warning group.
type PointGroup struct {
	Name    string   `json:"name"`
	Sensors []string `json:"sensors"`
}

// Retained reports whether messages of kind are retained state (status,
// current, alarms, outputs, points), outside the seq streams: a consumer
// keeps the latest of each and checks seq only on the others.
func Retained(kind string) bool {
	switch kind {
	case KindStatus, KindCurrent, KindAlarms, KindOutputs, KindPoints:
		return true
	}
	return false
}
