package safety

import (
	"errors"
	"fmt"
	"time"
)

// outState is one output as the Core drives it. Owned by the Run goroutine.
type outState struct {
	spec OutputSpec
	lane Lane

	cut       bool // commanded
	gen       uint64
	resend    bool // the lane is new: send the command even if unchanged
	beat      uint64
	lastBeat  time.Time
	changedAt time.Time // when the commanded state last changed (feed timeout)
	sentAt    time.Time // when the last command (gen) went to the lane (confirmation window)

	// Holds: each keeps the output cut whatever the rules say.
	testUntil time.Time   // an output test cuts it until then
	latched   string      // output_mismatch: reason; cut until Restore
	legacy    []holdCause // a reload removed what cut it (reload.go)

	obs Observation // the lane's latest report
	// The physical state as read back, for episodes and statistics:
	// cut seconds up to physSince, and the number of cuts.
	physKnown, physCut bool
	physSince          time.Time
	cutSum             time.Duration
	cuts               int
	confirmedGen       uint64 // the last generation the lane confirmed
	unconfirmed        bool   // LevelOutputUnconfirmed raised

	feed feedState
}

// checkOutputs checks that every output of spec has a name, once, and a lane.
func checkOutputs(spec Spec, lanes map[string]Lane) error {
	seen := map[string]bool{}
	for _, os := range spec.Outputs {
		switch {
		case os.Name == "":
			return errors.New("safety: output without a name")
		case seen[os.Name]:
			return fmt.Errorf("safety: output %s defined twice", os.Name)
		case lanes[os.Name] == nil:
			return fmt.Errorf("safety: output %s has no lane", os.Name)
		}
		seen[os.Name] = true
	}
	return nil
}

// install makes spec and lanes (checked by checkOutputs) the Core's outputs
// and groups, keeping the state of outputs that stay (by name). carry maps
// an output name to the reload holds to add (nil at start).
func (c *Core) install(spec Spec, lanes map[string]Lane, carry map[string][]holdCause, now time.Time) {
	outs := make([]*outState, 0, len(spec.Outputs))
	byName := make(map[string]*outState, len(spec.Outputs))
	byFeed := map[string][]*outState{}
	for _, os := range spec.Outputs {
		lane := lanes[os.Name]
		if os.FeedTimeout <= 0 {
			os.FeedTimeout = DefaultFeedTimeout
		}
		o := c.st.byName[os.Name]
		if o == nil {
			o = &outState{cut: true, changedAt: now, sentAt: now}
		}
		if o.lane != lane {
			o.resend = true // a new lane hears the command at once
		}
		if o.spec.Feed != os.Feed {
			o.feed = feedState{}
		}
		o.spec, o.lane = os, lane
		o.legacy = addCauses(o.legacy, carry[os.Name])
		outs = append(outs, o)
		byName[os.Name] = o
		if os.Feed != "" {
			byFeed[os.Feed] = append(byFeed[os.Feed], o)
		}
	}
	c.st.spec, c.st.outs, c.st.byName, c.st.byFeed = spec, outs, byName, byFeed
	c.installGroups(spec.Groups)
	c.installCalibration(spec, now)
}

// wantCut reports whether o must be cut now, and why (first reason).
func (c *Core) wantCut(o *outState, now time.Time) (bool, string) {
	if cut, known := c.st.engine.Cut(o.spec.Name); cut || !known {
		if !known {
			return true, "no rule controls it"
		}
		return true, "rules"
	}
	switch {
	case now.Before(c.opts.HoldUntil):
		return true, c.opts.HoldReason
	case o.latched != "":
		return true, o.latched
	case len(o.legacy) > 0:
		return true, o.legacy[0].describe()
	case now.Before(o.testUntil):
		return true, "output test"
	}
	return false, ""
}

// command sends every output whose wanted state changed (or whose lane is
// new) a new command. It never waits: Lane.Command only records it.
func (c *Core) command(now time.Time) {
	for _, o := range c.st.outs {
		cut, _ := c.wantCut(o, now)
		if cut == o.cut && !o.resend {
			continue
		}
		o.resend = false
		if cut != o.cut {
			o.changedAt = now
			o.feedCommandChanged(cut, now)
		}
		o.cut = cut
		o.gen++
		o.sentAt = now // a new lane (reload) gets its own MaxCutoffDelay to confirm
		o.lane.Command(Command{Output: o.spec.Name, Cut: cut, Gen: o.gen, Beat: o.beat})
	}
}

// applyObservations takes the lanes' reports.
func (c *Core) applyObservations(now time.Time) {
	c.obsMu.Lock()
	if len(c.obs) == 0 {
		c.obsMu.Unlock()
		return
	}
	pending := c.obs
	c.obs = make(map[string]Observation, len(pending))
	c.obsMu.Unlock()
	for name, ob := range pending {
		o := c.st.byName[name]
		if o == nil {
			continue // an output a reload removed
		}
		o.obs = ob
		o.observePhysical(ob, now)
		if ob.Gen != o.gen {
			continue // about an older command
		}
		if ob.Confirmed {
			o.confirmedGen = ob.Gen
			if o.unconfirmed {
				o.unconfirmed = false
				c.emit(Alarm{Sensor: name, Level: LevelOutputUnconfirmed, State: StateCleared, Time: now,
					Outputs: []string{name}, Reason: "cut confirmed"})
			}
		}
		if ob.Mismatch && !o.cut && o.latched == "" {
			c.latch(o, "found cut while commanded on ("+ob.Err+"): opened by something else; restore by hand once safe", now)
		}
	}
}

// latch keeps o cut until Restore and raises LevelOutputMismatch.
func (c *Core) latch(o *outState, reason string, now time.Time) {
	o.latched = reason
	c.emit(Alarm{Sensor: o.spec.Name, Level: LevelOutputMismatch, State: StateRaised, Time: now,
		Outputs: []string{o.spec.Name}, Reason: reason})
}

// checkConfirmed raises LevelOutputUnconfirmed for a cut the lane has not
// confirmed within MaxCutoffDelay of its command (the latest one: a
// reload that gives a cut output a new lane sends it again).
func (c *Core) checkConfirmed(o *outState, now time.Time) {
	if !o.cut || o.unconfirmed || o.confirmedGen == o.gen || now.Sub(o.sentAt) < MaxCutoffDelay {
		return
	}
	o.unconfirmed = true
	reason := "not confirmed cut within " + MaxCutoffDelay.String()
	if o.obs.Err != "" {
		reason += ": " + o.obs.Err
	}
	c.emit(Alarm{Sensor: o.spec.Name, Level: LevelOutputUnconfirmed, State: StateRaised, Time: now,
		Outputs: []string{o.spec.Name}, Reason: reason})
}

// heartbeat asks o's lane to toggle its heartbeat every period. The beat
// is dated by the tick it falls on (onGrid), not by when the loop woke for
// it, so a wake-up less late than the last one does not skip a tick.
func (c *Core) heartbeat(o *outState, now time.Time) {
	if o.spec.Heartbeat <= 0 || now.Sub(o.lastBeat) < o.spec.Heartbeat {
		return
	}
	o.lastBeat = c.onGrid(now)
	o.beat++
	o.lane.Command(Command{Output: o.spec.Name, Cut: o.cut, Gen: o.gen, Beat: o.beat})
}

// observePhysical folds a read-back into the output's physical cut time.
func (o *outState) observePhysical(ob Observation, now time.Time) {
	if !ob.Known {
		return
	}
	cut := !ob.Energised
	if o.physKnown && cut == o.physCut {
		return
	}
	if o.physKnown && o.physCut {
		o.cutSum += now.Sub(o.physSince)
	}
	if cut {
		o.cuts++
	}
	o.physKnown, o.physCut, o.physSince = true, cut, now
}

// cutTotal is how long the output has been physically cut (read back)
// since the Core started, up to now.
func (o *outState) cutTotal(now time.Time) time.Duration {
	t := o.cutSum
	if o.physKnown && o.physCut && now.After(o.physSince) {
		t += now.Sub(o.physSince)
	}
	return t
}
