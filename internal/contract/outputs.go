package contract

// KindOutputs is the last topic level of the retained outputs message
// (QoS 1, retained, outside the seq streams).
const KindOutputs = "outputs"

// Commanded and read-back states of an output (Output.Commanded,
// Output.ReadBack).
const (
	OutputCut     = "cut"     // power removed
	OutputOn      = "on"      // power allowed (energised)
	OutputUnknown = "unknown" // read back: not known yet (never confirmed, or the lane cannot see it)
)

// Feed states of an output's feed input (OutputFeed.State).
const (
	FeedPresent = "present" // the feed input sees power downstream
	FeedAbsent  = "absent"
	FeedUnknown = "unknown" // no valid reading of the feed input yet (or it is in fault)
)

// Outputs is the retained payload of {prefix}/{site}/{agent}/outputs: every
// output the agent drives, what it commands and why, and what it reads
// back. It is republished on every change and on every connect. TS is when
// this snapshot was taken (unix ms).
type Outputs struct {
	V       int      `json:"v"`
	Agent   string   `json:"agent"`
	Site    string   `json:"site"`
	TS      int64    `json:"ts"`
	Outputs []Output `json:"outputs"`
}

// Output is one output of an Outputs message.
type Output struct {
	Name string `json:"name"`
	// Commanded is OutputCut or OutputOn; Why (present when cut, only then)
	// is the first reason: "rules", a start-up hold's reason, a latch's
	// reason, "output test", "no rule controls it", or "pending" while the
	// command that allows power has not gone out yet.
	Commanded string `json:"commanded"`
	Why       string `json:"why,omitempty"`
	// ChangedAt is when the command last changed (unix ms; absent if not
	// known).
	ChangedAt int64 `json:"changed_at,omitempty"`
	// Confirmed: the lane confirmed the current command (GPIO written,
	// coil read back). ReadBack is the physical state as last seen
	// (OutputCut, OutputOn or OutputUnknown); Error the last attempt's
	// error while the command does not hold.
	Confirmed bool   `json:"confirmed"`
	ReadBack  string `json:"read_back"`
	Error     string `json:"error,omitempty"`
	// Latched is the reason an output found cut while commanded on is held
	// cut until a technician restores it ("" if not latched).
	Latched string `json:"latched,omitempty"`
	Testing bool   `json:"testing"` // an output test is running
	// Feed is the output's feed input (its power-presence check), if any.
	Feed *OutputFeed `json:"feed,omitempty"`
}

// OutputFeed is the feed check of an output: the input that sees power
// downstream, its state, and whether it disagrees with the command
// (feed abnormal, with the reason).
type OutputFeed struct {
	Input    string `json:"input"`
	State    string `json:"state"` // FeedPresent, FeedAbsent or FeedUnknown
	Abnormal bool   `json:"abnormal"`
	Reason   string `json:"reason,omitempty"`
}
