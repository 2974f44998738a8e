package contract

// KindStats is the statistics stream: one message per window, with its
// own seq (QoS 1, not retained).
const KindStats = "stats"

// Stats is the payload of {prefix}/{site}/{agent}/stats: one statistics
// window [FromTS, ToTS) aligned to the wall clock (stats.interval, default
// 5 minutes). Partial: the agent was not running for part of the window.
// V, Seq, Agent and Site are filled in when the message is formed.
type Stats struct {
	V       int                    `json:"v,omitempty"`
	Seq     uint64                 `json:"seq,omitempty"`
	Agent   string                 `json:"agent,omitempty"`
	Site    string                 `json:"site,omitempty"`
	Epoch   uint64                 `json:"epoch,omitempty"`
	Rec     []uint64               `json:"rec,omitempty"` // the record number, [n, n]
	FromTS  int64                  `json:"from_ts"`
	ToTS    int64                  `json:"to_ts"`
	Partial bool                   `json:"partial"`
	Sensors map[string]SensorStats `json:"sensors"`
	Outputs map[string]OutputStats `json:"outputs"`
	Alarms  map[string]int         `json:"alarms"` // alarms raised in the window, by level
}

// SensorStats is one sensor in a window: for an analog sensor with valid
// readings, their count, mean and extremes with their times; for every
// sensor the fault readings and the seconds spent in each status.
type SensorStats struct {
	Count   int                `json:"count"`
	Mean    *float64           `json:"mean,omitempty"`
	Max     *float64           `json:"max,omitempty"`
	MaxTS   int64              `json:"max_ts,omitempty"`
	Min     *float64           `json:"min,omitempty"`
	MinTS   int64              `json:"min_ts,omitempty"`
	Faults  int                `json:"faults"`
	StatusS map[string]float64 `json:"status_s"`
}

// OutputStats is one output in a window: the seconds it was physically cut
// (read back) and how many times it was cut.
type OutputStats struct {
	CutS float64 `json:"cut_s"`
	Cuts int     `json:"cuts"`
}
