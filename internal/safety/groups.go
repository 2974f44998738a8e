package safety

import "time"

// group is a warning group's state (GroupSpec, AggregateWarning).
type group struct {
	name    string
	members []string
	levels  []Level // scratch, one per member
	level   Level   // current aggregated warning
}

// installGroups sets the groups of a spec, keeping the level of a group
// that stays (by name), so a reload raises nothing again.
func (c *Core) installGroups(gs []GroupSpec) {
	prev := map[string]Level{}
	for _, g := range c.st.groups {
		prev[g.name] = g.level
	}
	c.st.groups = c.st.groups[:0:0]
	c.st.memberOf = map[string][]int{}
	for i, g := range gs {
		lv, ok := prev[g.Name]
		if !ok {
			lv = LevelNormal
		}
		c.st.groups = append(c.st.groups, group{name: g.Name, members: g.Sensors, levels: make([]Level, len(g.Sensors)), level: lv})
		for _, m := range g.Sensors {
			c.st.memberOf[m] = append(c.st.memberOf[m], i)
		}
	}
}

func (c *Core) groupIndex(name string) (int, bool) {
	for i, g := range c.st.groups {
		if g.name == name {
			return i, true
		}
	}
	return 0, false
}

// aggregate recomputes group gi's warning and, when it changes, clears the
// old level's alarm and raises the new one (sensor = the group's name). A
// member under calibration or in fault does not count.
func (c *Core) aggregate(gi int, now time.Time) {
	g := &c.st.groups[gi]
	for i, m := range g.members {
		st, _ := c.st.engine.Status(m)
		g.levels[i] = Level(st)
	}
	next := AggregateWarning(g.levels)
	if next == g.level {
		return
	}
	if g.level != LevelNormal {
		c.emit(Alarm{Sensor: g.name, Level: string(g.level), State: StateCleared, Time: now})
	}
	if next != LevelNormal {
		c.emit(Alarm{Sensor: g.name, Level: string(next), State: StateRaised, Time: now})
	}
	g.level = next
}
