package mtt

import (
	"maps"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// Point status bits (测点状态, networking notes, S): a point's status is the
// sum of the bits that apply, 0 when none does.
const (
	StatusNormal          = 0
	StatusAlarm           = 1   // 报警
	StatusPowerCut        = 2   // 断电: the outputs the point cuts are cut
	StatusCalibration     = 4   // 标校: under calibration
	StatusOverRange       = 8   // 超量程
	StatusSubstationFault = 16  // 分站故障
	StatusNotPolled       = 32  // 未巡检: no value yet
	StatusPaused          = 64  // 暂停
	StatusSensorFault     = 128 // 传感器故障
)

// Abnormal types (异常类型, networking notes, S).
const (
	AbnormalOverLimit             = "001" // over-limit alarm (超限报警)
	AbnormalCutoff                = "002" // cut-off (断电)
	AbnormalFeed                  = "003" // feed abnormal (馈电异常)
	AbnormalSensorDisconnected    = "004" // sensor disconnected (传感器断线)
	AbnormalSubstationPowerOff    = "005" // substation power off (分站停电)
	AbnormalSubstationUnreachable = "006" // substation unreachable (分站通讯中断)
	AbnormalCalibration           = "007" // calibration (标校)
	AbnormalOverRange             = "008" // over-range (超量程)
	AbnormalUpperPrewarning       = "009" // upper pre-warning (上限预警)
	AbnormalLowerPrewarning       = "010" // lower pre-warning (下限预警)
)

// Sensor type codes confirmed by the networking notes (S). The full table
// (analog 0001–0053, switch 1001–1015, cumulative 3001–3005, status
// 4001–4002) is unconfirmed: a site sets the others per sensor (type_code)
// or in uplinks[].codes.sensor_types.
const (
	SensorTypeMethane      = "0001" // ambient methane (环境瓦斯)
	SensorTypeCO           = "0004" // carbon monoxide (一氧化碳)
	SensorTypeLaserMethane = "0043" // laser methane (激光甲烷)
)

// Fault codes of fault readings (the machine code beside the human text)
// that the shipped tables map; any other code maps as a plain fault.
const (
	FaultTimeout = "timeout"
	FaultBusDown = "bus_down"
	FaultRange   = "range"
	FaultStale   = "stale"
)

// StatusCalibrating is the key of an episode under calibration in the
// abnormal table (the alarm's Calibration flag): 007 calibration.
const StatusCalibrating = string(reading.StatusCalibrating)

// Codes are the code tables that map hazmon's vocabulary to the
// regulator's codes. Keys of Status are reading statuses or
// "fault/<fault code>"; keys of Abnormal are alarm levels,
// "<level>/<direction>" or "fault/<fault code>". A Codes is read-only once
// built (DefaultCodes, CodesFromConfig), so its methods are safe for
// concurrent use.
type Codes struct {
	SensorTypes map[string]string // hazmon sensor type → 4-digit sensor type code
	TypeNames   map[string]string // 4-digit sensor type code → type name
	Status      map[string]int    // status or fault/<code> → status bitmask
	Abnormal    map[string]string // level, level/direction, fault/<code> → abnormal type
}

// DefaultCodes returns the shipped tables. Confirmed (S): the bit and code
// values, and the sensor types methane → 0001, co → 0004. Hazmon's own
// judgement (U), overridable:
//   - cutoff is alarm + power cut (3); the tailings-pond colours are an
//     alarm (1); calibrating is 4;
//   - a fault is a sensor fault (128), except bus_down, the link to the
//     bus or PLC (hazmon's substation), 16 substation fault; range
//     over-range (8); stale, no reading at all, 32 not polled; a timeout
//     of one slave is the point's own device not answering: 128;
//   - abnormal types: alarm and alarm2 001, cutoff 002, feed_abnormal 003,
//     fault 004 (bus_down 006, range 008), calibrating 007, the colours
//     009 (a low rule 010).
//
// The type names (甲烷, 一氧化碳, 激光甲烷) are U.
func DefaultCodes() *Codes {
	return &Codes{
		SensorTypes: map[string]string{"methane": SensorTypeMethane, "co": SensorTypeCO},
		TypeNames: map[string]string{
			SensorTypeMethane: "甲烷", SensorTypeCO: "一氧化碳", SensorTypeLaserMethane: "激光甲烷",
		},
		Status: map[string]int{
			string(reading.StatusNormal):      StatusNormal,
			string(reading.StatusAlarm):       StatusAlarm,
			string(reading.StatusAlarm2):      StatusAlarm,
			string(reading.StatusCutoff):      StatusAlarm | StatusPowerCut,
			string(reading.StatusCalibrating): StatusCalibration,
			string(reading.StatusBlue):        StatusAlarm,
			string(reading.StatusYellow):      StatusAlarm,
			string(reading.StatusOrange):      StatusAlarm,
			string(reading.StatusRed):         StatusAlarm,
			string(reading.StatusFault):       StatusSensorFault,
			"fault/" + FaultTimeout:           StatusSensorFault,
			"fault/" + FaultBusDown:           StatusSubstationFault,
			"fault/" + FaultRange:             StatusOverRange,
			"fault/" + FaultStale:             StatusNotPolled,
		},
		Abnormal: map[string]string{
			string(safety.LevelAlarm):           AbnormalOverLimit,
			string(safety.LevelAlarm2):          AbnormalOverLimit,
			string(safety.LevelCutoff):          AbnormalCutoff,
			safety.LevelFeedAbnormal:            AbnormalFeed,
			string(safety.LevelFault):           AbnormalSensorDisconnected,
			"fault/" + FaultBusDown:             AbnormalSubstationUnreachable,
			"fault/" + FaultRange:               AbnormalOverRange,
			StatusCalibrating:                   AbnormalCalibration,
			string(safety.LevelBlue):            AbnormalUpperPrewarning,
			string(safety.LevelYellow):          AbnormalUpperPrewarning,
			string(safety.LevelOrange):          AbnormalUpperPrewarning,
			string(safety.LevelRed):             AbnormalUpperPrewarning,
			string(safety.LevelBlue) + "/low":   AbnormalLowerPrewarning,
			string(safety.LevelYellow) + "/low": AbnormalLowerPrewarning,
			string(safety.LevelOrange) + "/low": AbnormalLowerPrewarning,
			string(safety.LevelRed) + "/low":    AbnormalLowerPrewarning,
		},
	}
}

// CodesFromConfig returns the shipped tables with the site's overrides
// (uplinks[].codes) applied entry by entry. The overrides must have passed
// config validation.
func CodesFromConfig(o config.UplinkCodes) *Codes {
	c := DefaultCodes()
	maps.Copy(c.SensorTypes, o.SensorTypes)
	maps.Copy(c.TypeNames, o.TypeNames)
	maps.Copy(c.Status, o.Status)
	maps.Copy(c.Abnormal, o.Abnormal)
	return c
}

// StatusBits maps a reading's status (reading.Status values) and, for a
// fault, its fault code to the point status bitmask: "fault/<code>" if the
// table has it, else the status's own entry. An unknown fault code is a
// plain fault; a status the table does not know is reported as an alarm
// (1), never as normal.
func (c *Codes) StatusBits(status, faultCode string) int {
	if status == string(reading.StatusFault) && faultCode != "" {
		if b, ok := c.Status["fault/"+faultCode]; ok {
			return b
		}
	}
	if b, ok := c.Status[status]; ok {
		return b
	}
	if status == string(reading.StatusFault) {
		return StatusSensorFault
	}
	return StatusAlarm
}

// AbnormalType maps an alarm level (safety levels, feed_abnormal,
// calibrating) and its qualifier (a rule's direction high/low/state, or a
// fault's code) to the abnormal type code: "<level>/<qualifier>" if the
// table has it, else the level's own entry. ok is false for a level the
// table does not map (output_mismatch, output_unconfirmed by default): no
// record is written for it.
func (c *Codes) AbnormalType(level, qualifier string) (code string, ok bool) {
	if qualifier != "" {
		if code, ok = c.Abnormal[level+"/"+qualifier]; ok {
			return code, true
		}
	}
	code, ok = c.Abnormal[level]
	return code, ok
}

// SensorType is a sensor's 4-digit type code: override (the sensor's own
// type_code) when set, else the table's entry for its hazmon type. ok is
// false when neither gives one.
func (c *Codes) SensorType(hazmonType, override string) (code string, ok bool) {
	if override != "" {
		return override, true
	}
	code, ok = c.SensorTypes[hazmonType]
	return code, ok
}

// TypeName is the type name of a sensor type code ("" if the table has
// none: set it in uplinks[].codes.type_names).
func (c *Codes) TypeName(code string) string { return c.TypeNames[code] }
