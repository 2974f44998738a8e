package mtt

import (
	"fmt"
	"time"
)

// FileType is the kind of a file, the TYPE in its name (networking notes, S).
type FileType string

// The file kinds hazmon writes. FZDY (substation definitions) is not
// written: hazmon has no substations of its own (U).
const (
	TypeCDDY FileType = "CDDY" // point definitions (测点定义): on start and on change
	TypeCDSS FileType = "CDSS" // real-time values (实时数据): every interval
	TypeYCBJ FileType = "YCBJ" // abnormal / alarm records (异常报警): when an episode ends
	TypeTJSJ FileType = "TJSJ" // statistics (统计数据): per statistics window
)

// FileTypes lists the kinds in push order for files of the same second:
// definitions before the values that refer to them.
var FileTypes = []FileType{TypeCDDY, TypeCDSS, TypeYCBJ, TypeTJSJ}

// rank is t's place in FileTypes (len(FileTypes) if unknown).
func (t FileType) rank() int {
	for i, k := range FileTypes {
		if k == t {
			return i
		}
	}
	return len(FileTypes)
}

// ValueKind is a point's value kind (测点数值类型, networking notes, S).
type ValueKind string

// Value kinds.
const (
	KindAnalog     ValueKind = "MN" // analog (模拟量): methane, CO, wind speed...
	KindSwitch     ValueKind = "KG" // switch (开关量): fan on/off, feed, door
	KindCumulative ValueKind = "LJ" // cumulative (累计量): flow totals
	KindState      ValueKind = "DT" // status (状态量)
)

// System codes (系统编码) of a point (networking notes, S).
const (
	SystemSafety   = "01" // safety monitoring (安全监控)
	SystemDrainage = "02" // gas drainage (瓦斯抽采)
)

// RelationType is how a related point relates to a point (networking
// notes, S).
type RelationType string

// Relation types.
const (
	RelLockout    RelationType = "B" // lockout (闭锁)
	RelDoor       RelationType = "G" // door (风门)
	RelControl    RelationType = "K" // control (控制)
	RelProtection RelationType = "H" // protection (保护)
	RelBackup     RelationType = "Z" // primary/backup (主备)
	RelCutoff     RelationType = "D" // cut-off (断电): the breaker a sensor cuts
	RelRegulation RelationType = "T" // regulation (调节)
)

// Relation is one related point of a point definition. In the file the
// relations are written "<type>:<point code>" joined by ',' (U: the notes
// give the relation types, not how the field lists them).
type Relation struct {
	Type  RelationType
	Point string // the related point's code
}

// Mine is what the headers say about the mine and its monitoring system.
type Mine struct {
	Code         string // 煤矿编码: the mine's 12-digit code, also the start of every file name
	Name         string // 煤矿名称: the mine's name
	SystemModel  string // 系统型号: model of the safety monitoring system
	SystemName   string // 系统名称: name of the safety monitoring system
	Manufacturer string // 生产厂家: its manufacturer
	// SafetyMarkValidUntil is the date the system's safety mark (安标)
	// expires (安标有效期); written as DateLayout.
	SafetyMarkValidUntil time.Time
}

// Point is one point definition (a CDDY body record). Limits and numbers
// that do not apply are absent (the zero Num) and are written Unknown.
type Point struct {
	Code       string    // 测点编码: the point's code (PointCode builds the usual 28-character one)
	System     string    // 系统编码: SystemSafety or SystemDrainage
	Substation string    // 分站编码: the substation the point is wired to (for hazmon: the gateway or its bus)
	TypeCode   string    // 传感器类型编码: 4-digit sensor type code (Codes.SensorType)
	TypeName   string    // 传感器类型名称: written in the CDSS/YCBJ/TJSJ records, not in CDDY
	Kind       ValueKind // 测点数值类型: MN, KG, LJ or DT
	Unit       string    // 单位: engineering unit, e.g. %CH4, ppm
	RangeHigh  Num       // 量程上限: top of the valid range
	RangeLow   Num       // 量程下限: bottom of the valid range
	// Limits in force (after presets and defaults).
	UpperAlarm      Num        // 上限报警值: alarm when the value rises to it
	UpperAlarmClear Num        // 上限解报值: alarm clears below it
	LowerAlarm      Num        // 下限报警值: alarm when the value falls to it
	LowerAlarmClear Num        // 下限解报值: alarm clears above it
	UpperCutoff     Num        // 上限断电值: power cut when the value rises to it
	UpperRestore    Num        // 上限复电值: power restored below it
	LowerCutoff     Num        // 下限断电值: power cut when the value falls to it
	LowerRestore    Num        // 下限复电值: power restored above it
	OnText          string     // 开描述: what 1 means for a switch point (e.g. 开, 有电); "" for analog
	OffText         string     // 关描述: what 0 means for a switch point (e.g. 停, 无电)
	Place           string     // 安装地点: install place (free text, cleaned)
	X, Y, Z         Num        // 坐标: install coordinates, absent if unknown
	Related         []Relation // 关联测点: related points (cut-off area, feed, ...)
	// DataTime is when the definition took effect (数据时间); zero = the
	// upload time.
	DataTime time.Time
}

// Value is one point's real-time value (a CDSS body record). TypeName,
// Place and Unit may be left empty: the Exporter fills them from the
// point's definition.
type Value struct {
	Point    string    // 测点编码
	TypeName string    // 传感器类型名称
	Place    string    // 安装地点
	Value    Num       // 测点值: absent for a fault or an unknown value (written Unknown)
	Unit     string    // 单位
	Status   int       // 测点状态: the status bitmask (Codes.StatusBits)
	Time     time.Time // 数据时间: the sample time
}

// Abnormal is one abnormal / alarm record (a YCBJ body record): an
// episode of an alarm, a cut-off, a fault, with its extent.
type Abnormal struct {
	Point     string    // 测点编码
	TypeName  string    // 传感器类型名称 (filled from the definition if empty)
	Place     string    // 安装地点 (filled from the definition if empty)
	Unit      string    // 单位 (filled from the definition if empty)
	Type      string    // 异常类型: 3-digit abnormal type code (Codes.AbnormalType)
	Start     time.Time // 开始时间: when the episode began
	End       time.Time // 结束时间: when it ended (zero: still going on, written empty)
	Max       Num       // 最大值 over the episode
	MaxTime   time.Time // 最大值时刻
	Min       Num       // 最小值 over the episode
	MinTime   time.Time // 最小值时刻
	Mean      Num       // 平均值 over the episode
	Cause     string    // 异常原因: free text (cleaned)
	Action    string    // 处理措施: action taken, e.g. the outputs cut (cleaned)
	EntryTime time.Time // 录入时间: when the record was made; zero = the upload time
	EnteredBy string    // 录入人: who made it (cleaned); e.g. the agent's id
	DataTime  time.Time // 数据时间; zero = the upload time
}

// Stat is one point's statistics over a window (a TJSJ body record).
type Stat struct {
	Point    string    // 测点编码
	TypeName string    // 传感器类型名称 (filled from the definition if empty; U: its place in the record)
	Place    string    // 安装地点 (idem)
	Unit     string    // 单位 (idem)
	From     time.Time // 统计开始时间: window start
	To       time.Time // 统计结束时间: window end
	Max      Num       // 最大值 in the window
	MaxTime  time.Time // 最大值时刻
	Min      Num       // 最小值 in the window
	MinTime  time.Time // 最小值时刻
	Mean     Num       // 平均值 of the window
}

// PointCode builds a point code the way one public implementation does
// (networking notes, S; its 28-character length U): the 12-digit mine code,
// the 2-digit system code, the value kind, the 4-digit sensor type code and
// an 8-digit sequence number (seq 1..99999999). It returns an error naming
// the part that does not fit.
func PointCode(mine, system string, kind ValueKind, typeCode string, seq int) (string, error) {
	switch {
	case !isDigits(mine, 12):
		return "", fmt.Errorf("point code: mine code %q is not 12 digits", mine)
	case !isDigits(system, 2):
		return "", fmt.Errorf("point code: system code %q is not 2 digits", system)
	case len(kind) != 2:
		return "", fmt.Errorf("point code: value kind %q is not MN, KG, LJ or DT", kind)
	case !isDigits(typeCode, 4):
		return "", fmt.Errorf("point code: sensor type code %q is not 4 digits", typeCode)
	case seq < 1 || seq > 99999999:
		return "", fmt.Errorf("point code: sequence %d is outside 1..99999999", seq)
	}
	return fmt.Sprintf("%s%s%s%s%08d", mine, system, kind, typeCode, seq), nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
