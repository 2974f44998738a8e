package safety

// Lane is one output's own goroutine (internal/actuate), which makes the
// commanded state true and keeps it true. The Core calls Command and must
// never wait for it: a lane keeps only the latest command and wakes up.
type Lane interface {
	Command(Command)
}

// Command is the Core's wish for one output.
type Command struct {
	Output string
	Cut    bool   // true: de-energise (the safe state); false: energise (power allowed)
	Gen    uint64 // increases with every change of Cut; observations name it
	// Beat increases at every heartbeat period of the output (OutputSpec
	// Heartbeat) while the Core runs; a lane with a heartbeat toggles it on
	// each new value.
	Beat uint64
}

// Observation is what a lane reports after an attempt (Core.Observe).
type Observation struct {
	Output    string
	Gen       uint64 // the command generation the attempt served
	Known     bool   // Energised is the physical state (written, or read back)
	Energised bool
	Confirmed bool // the commanded state is written and (coil) read back
	// Mismatch: the output was found cut (read back 0) while commanded
	// energised — something else opened it (a PLC interlock, an emergency
	// stop, an operator). The lane did not energise it again; the Core
	// latches the output cut until a technician restores it.
	Mismatch bool
	Err      string // the last attempt's error, "" once it holds
}
