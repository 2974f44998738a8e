package safety

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// methaneCSV is the methane table of the Coal Mine Safety Regulations
// (2016 edition as amended 2022), Art. 498; see the header of methane.csv.
//
//go:embed methane.csv
var methaneCSV string

// MethaneResolution is the resolution methane limits are compared in:
// 0.01 %CH4 (domain notes §1, S).
const MethaneResolution = 0.01

// MethaneRow is one row of the methane table: the settings of a methane
// sensor at one kind of location, in %CH4 by volume.
type MethaneRow struct {
	Location      string  // preset name, config "location", e.g. "coal_face"
	DescriptionZH string  // the regulation's name of the location
	DescriptionEN string  // English name
	Alarm         float64 // alarm at value ≥ Alarm
	HasCutoff     bool    // false: alarm only
	Cutoff        float64 // cut-off at value ≥ Cutoff (if HasCutoff)
	Restore       float64 // restore when value < Restore (if HasCutoff)
	CutoffArea    string  // what the cut-off de-energises (for the site's outputs)
	Confidence    string  // "S" secondary source or "U" recalled, unverified
}

// MethaneTable parses the embedded methane table. An error means the
// embedded file is broken (a build defect, caught by the tests).
func MethaneTable() ([]MethaneRow, error) {
	r := csv.NewReader(strings.NewReader(methaneCSV))
	r.Comment = '#'
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("methane table: %w", err)
	}
	if len(recs) < 2 || strings.Join(recs[0], ",") != "location,description_zh,description_en,alarm,cutoff,restore,cutoff_area,confidence" {
		return nil, fmt.Errorf("methane table: unexpected header %q", recs[0])
	}
	rows := make([]MethaneRow, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		line := i + 2
		row := MethaneRow{Location: rec[0], DescriptionZH: rec[1], DescriptionEN: rec[2], CutoffArea: rec[6], Confidence: rec[7]}
		if row.Alarm, err = strconv.ParseFloat(rec[3], 64); err != nil {
			return nil, fmt.Errorf("methane table: row %d (%s): alarm: %w", line, rec[0], err)
		}
		if rec[4] != "" || rec[5] != "" {
			row.HasCutoff = true
			if row.Cutoff, err = strconv.ParseFloat(rec[4], 64); err != nil {
				return nil, fmt.Errorf("methane table: row %d (%s): cutoff: %w", line, rec[0], err)
			}
			if row.Restore, err = strconv.ParseFloat(rec[5], 64); err != nil {
				return nil, fmt.Errorf("methane table: row %d (%s): restore: %w", line, rec[0], err)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Preset returns the rules of a methane sensor at the named location of
// the methane table (Coal Mine Safety Regulations 2016/2022, Art. 498):
// an alarm at value ≥ alarm limit, cleared below the restore value (below
// the alarm limit for an alarm-only row), and, where the row has one, a
// cut-off at value ≥ cut-off limit, cleared strictly below the restore
// value, with on_fault cut. The rules carry no outputs: the caller sets the
// cut-off rule's Outputs from the site config (the row's CutoffArea says
// what it must de-energise). Use them with Resolution MethaneResolution.
// ok is false for an unknown location.
func Preset(location string) (rules []Rule, ok bool) {
	rows, err := MethaneTable()
	if err != nil {
		return nil, false
	}
	for _, row := range rows {
		if row.Location != location {
			continue
		}
		alarm := Rule{Level: LevelAlarm, Above: ptr(row.Alarm)}
		if !row.HasCutoff {
			return []Rule{alarm}, true
		}
		alarm.ClearBelow = ptr(row.Restore)
		cut := Rule{Level: LevelCutoff, Above: ptr(row.Cutoff), ClearBelow: ptr(row.Restore), OnFault: OnFaultCut}
		return []Rule{alarm, cut}, true
	}
	return nil, false
}

// Defaults returns the default alarm rule of a gas sensor type, and the
// unit its limit is in; ok is false for a type without a default. The
// caller must check the sensor's configured unit matches.
//
//   - "co": alarm ≥ 24 ppm (Coal Mine Safety Regulations, CO limit 0.0024 %; domain notes §2, S).
//   - "o2": alarm at ≤ 20 %vol, cleared above 20 %vol ("below 20 % in the intake air of
//     working faces", domain notes §2, S). hazmon's below-rules trigger at ≤ the limit,
//     so exactly 20.0 alarms: one resolution step on the safe side of "below 20".
//   - "h2s": alarm ≥ 6.6 ppm (H2S limit 0.00066 %; domain notes §2, S).
//
// Methane has no type default: its limits depend on the location (Preset).
func Defaults(sensorType string) (rules []Rule, unit string, ok bool) {
	switch sensorType {
	case "co":
		return []Rule{{Level: LevelAlarm, Above: ptr(24.0)}}, "ppm", true
	case "o2":
		return []Rule{{Level: LevelAlarm, Below: ptr(20.0)}}, "%vol", true
	case "h2s":
		return []Rule{{Level: LevelAlarm, Above: ptr(6.6)}}, "ppm", true
	}
	return nil, "", false
}

func ptr[T any](v T) *T { return &v }
