package safety

// Warning aggregation of a tailings pond (GB 51108-2015, domain notes §6,
// R): the pond's warning is the highest level of its monitoring items,
// raised further when several items warn together — 4 items at blue (or
// above) make a yellow warning, 3 at yellow or above an orange one, 2 at
// orange or above a red one. Counts use the items' own levels only; an
// aggregated level does not count again.
const (
	AggregateBlueToYellow   = 4
	AggregateYellowToOrange = 3
	AggregateOrangeToRed    = 2
)

// AggregateWarning returns the pond-level warning of items' levels (any
// Level; only the colours count) per GB 51108-2015, LevelNormal if none.
func AggregateWarning(levels []Level) Level {
	var blue, yellow, orange int
	top := 0
	for _, l := range levels {
		r := colourRank(l)
		if r >= 1 {
			blue++
		}
		if r >= 2 {
			yellow++
		}
		if r >= 3 {
			orange++
		}
		top = max(top, r)
	}
	if blue >= AggregateBlueToYellow {
		top = max(top, 2)
	}
	if yellow >= AggregateYellowToOrange {
		top = max(top, 3)
	}
	if orange >= AggregateOrangeToRed {
		top = max(top, 4)
	}
	return [...]Level{LevelNormal, LevelBlue, LevelYellow, LevelOrange, LevelRed}[top]
}

// colourRank is 1..4 for blue..red, 0 for anything else.
func colourRank(l Level) int {
	if r := l.rank(); r >= 1 && r <= 4 {
		return r
	}
	return 0
}
