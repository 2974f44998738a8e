package safety

import "time"

// Episode summarises an abnormal episode (an alarm from its raise to its
// clear) for the bureau's abnormal-event records (MT/T 1201.1-2023 YCBJ:
// start, end, max and its time, min and its time, mean): it rides on the
// cleared alarm. Values are the sensor's valid readings from the one that
// raised the alarm to the last one before the one that cleared it.
type Episode struct {
	Start, End   time.Time
	Values       int // valid readings in the episode; Max..Mean are meaningful only if > 0
	Max, Min     float64
	MaxAt, MinAt time.Time
	Sum          float64
	// CutS is, for each output the alarm cuts, the seconds it was actually
	// cut (read back de-energised) during the episode; nil when the alarm
	// cuts nothing.
	CutS map[string]float64
	// Partial: the agent was not running for part of the episode (it was
	// active when the agent last stopped), so Start is the first raise and
	// the values cover only this run.
	Partial bool
}

// Duration is End − Start.
func (e *Episode) Duration() time.Duration { return e.End.Sub(e.Start) }

// Mean is the mean of the episode's values (0 without values).
func (e *Episode) Mean() float64 {
	if e.Values == 0 {
		return 0
	}
	return e.Sum / float64(e.Values)
}

func (e *Episode) add(v float64, at time.Time) {
	if e.Values == 0 || v > e.Max {
		e.Max, e.MaxAt = v, at
	}
	if e.Values == 0 || v < e.Min {
		e.Min, e.MinAt = v, at
	}
	e.Sum += v
	e.Values++
}

// episode is an open Episode and the outputs' cut time at its start.
type episode struct {
	key     string
	sensor  string
	e       Episode
	outputs []string
	cutAt   []time.Duration // each output's cut total at the start
}

// openEpisode starts the episode of a raised alarm (the reading that
// raised it is added by episodeReading, as every later one).
func (c *Core) openEpisode(a Alarm, prevStart time.Time) {
	ep := &episode{key: a.Key(), sensor: a.Sensor, outputs: a.Outputs, e: Episode{Start: a.Time}}
	if !prevStart.IsZero() {
		ep.e.Start, ep.e.Partial = prevStart, true
	}
	for _, name := range a.Outputs {
		var at time.Duration
		if o := c.st.byName[name]; o != nil {
			at = o.cutTotal(a.Time)
		}
		ep.cutAt = append(ep.cutAt, at)
	}
	if c.st.episodes == nil {
		c.st.episodes, c.st.episodesOf = map[string]*episode{}, map[string][]*episode{}
	}
	c.st.episodes[ep.key] = ep
	c.st.episodesOf[ep.sensor] = append(c.st.episodesOf[ep.sensor], ep)
}

// episodeReading adds a valid reading to its sensor's open episodes.
func (c *Core) episodeReading(sensor string, v float64, at time.Time) {
	for _, ep := range c.st.episodesOf[sensor] {
		ep.e.add(v, at)
	}
}

// closeEpisode ends the episode of a cleared alarm and returns it (nil if
// none was open).
func (c *Core) closeEpisode(a Alarm) *Episode {
	ep := c.st.episodes[a.Key()]
	if ep == nil {
		return nil
	}
	delete(c.st.episodes, ep.key)
	list := c.st.episodesOf[ep.sensor]
	for i, x := range list {
		if x == ep {
			c.st.episodesOf[ep.sensor] = append(list[:i], list[i+1:]...)
			break
		}
	}
	ep.e.End = a.Time
	for i, name := range ep.outputs {
		if ep.e.CutS == nil {
			ep.e.CutS = map[string]float64{}
		}
		var now time.Duration
		if o := c.st.byName[name]; o != nil {
			now = o.cutTotal(a.Time)
		}
		ep.e.CutS[name] = (now - ep.cutAt[i]).Seconds()
	}
	e := ep.e
	return &e
}
