package safety

import "testing"

func TestAggregateWarning(t *testing.T) {
	B, Y, O, R, N := LevelBlue, LevelYellow, LevelOrange, LevelRed, LevelNormal
	cases := []struct {
		name  string
		items []Level
		want  Level
	}{
		{"none", nil, N},
		{"all normal", []Level{N, N, N}, N},
		{"one blue", []Level{B, N}, B},
		{"three blue stay blue", []Level{B, B, B, N}, B},
		{"four blue make yellow", []Level{B, B, B, B}, Y},
		{"yellows count as blue", []Level{B, B, Y, Y}, Y},
		{"two yellow stay yellow", []Level{Y, Y, N}, Y},
		{"three yellow make orange", []Level{Y, Y, Y}, O},
		{"orange counts as yellow", []Level{Y, Y, O}, O},
		{"one orange", []Level{O, B}, O},
		{"two orange make red", []Level{O, O}, R},
		{"red and orange make red", []Level{R, O}, R},
		{"one red", []Level{R}, R},
		{"alarm levels are not colours", []Level{LevelAlarm, LevelCutoff, LevelFault, B}, B},
		{"four blue not five items", []Level{B, B, B, N, N, N}, B},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := AggregateWarning(tc.items); got != tc.want {
				t.Errorf("AggregateWarning(%v) = %s, want %s", tc.items, got, tc.want)
			}
		})
	}
}
