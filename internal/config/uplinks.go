package config

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// UplinkMTT1201 is the kind of an uplink that writes the regulator's text
// files of MT/T 1201.1-2023 (coal-mine safety monitoring networking) and
// pushes them by SFTP to the regulator's front-end host (networking notes:
// layout S, transport S).
const UplinkMTT1201 = "mtt1201"

// Defaults and bounds of an mtt1201 uplink. The cadence is the one current
// uploaders use (networking notes, S; the standard's own update frequencies
// are unconfirmed): real-time values every 30 s, statistics every 5 min.
const (
	DefaultUplinkInterval      = 30 * time.Second // interval: real-time file period
	DefaultUplinkStatsInterval = 5 * time.Minute  // stats_interval: statistics window
	// DefaultUplinkTimeZone is the local time of the files: UTC+8 (China
	// Standard Time, no daylight saving since 1991, so the same as
	// Asia/Shanghai), written as a fixed offset so no zone database is
	// needed on the board.
	DefaultUplinkTimeZone = "+08:00"
	// DefaultUplinkSpoolBytes (spool_max_bytes, bytes) holds about 2.5 days
	// of 30 s real-time files of 100 points (≈ 90 bytes a point).
	DefaultUplinkSpoolBytes  = 64 << 20
	DefaultUplinkSpoolFiles  = 20000            // spool_max_files: about a week of 30 s files
	DefaultUplinkSFTPTimeout = 30 * time.Second // sftp.timeout: a connection and each upload
	DefaultUplinkRetryMax    = time.Minute      // sftp.retry_max: back-off cap
	MinUplinkInterval        = time.Second      // shortest interval
	MaxUplinkInterval        = 5 * time.Minute  // longest interval
	// UplinkRealtimeInterval is the real-time period regulators expect
	// (networking notes, S): a longer interval is a warning.
	UplinkRealtimeInterval = 30 * time.Second
	MinUplinkSpoolBytes    = 1 << 20 // smallest spool_max_bytes, bytes
	MinUplinkSpoolFiles    = 10      // smallest spool_max_files
)

// dateLayout is safety_mark_valid_until's form.
const dateLayout = "2006-01-02"

// shanghai is the zone name accepted without a zone database (UTC+8).
const shanghai = "Asia/Shanghai"

// Uplink is one uplink besides MQTT (the uplinks list; none by default).
// Kind mtt1201 is the only kind: the MT/T 1201.1-2023 files (see README
// "Regulator files (MT/T 1201.1-2023)").
type Uplink struct {
	Kind string `yaml:"kind"` // mtt1201
	// Name tells uplinks apart (logs, status, default spool dir); default
	// the kind. Letters, digits, '-', '_'; unique.
	Name string `yaml:"name,omitempty"`
	// MineCode is the mine's 12-digit code (煤矿编码): the first field of
	// every header and the start of every file name.
	MineCode string `yaml:"mine_code"`
	// MineName, SystemModel, SystemName and Manufacturer fill the headers
	// (the point-definition header: mine code; mine name; system model;
	// system name; manufacturer; safety mark valid until; upload time).
	// They must not contain ';', '~', '|', a line break or a full-width
	// character (the files' separators, networking notes).
	MineName     string `yaml:"mine_name"`
	SystemModel  string `yaml:"system_model"`
	SystemName   string `yaml:"system_name"`
	Manufacturer string `yaml:"manufacturer"`
	// SafetyMarkValidUntil is the date (YYYY-MM-DD) the monitoring
	// system's safety mark (安标) expires.
	SafetyMarkValidUntil string `yaml:"safety_mark_valid_until"`
	// Interval is how often a real-time values file is written; default
	// 30s, 1s..5m.
	Interval Duration `yaml:"interval"`
	// StatsInterval is the statistics window the uplink reports; default
	// 5m, 1m..1h. The agent's statistics are handed to the uplink per window.
	StatsInterval Duration `yaml:"stats_interval"`
	// TimeZone is the zone of every time in the files and their names: a
	// fixed offset "+08:00" (default) or a zone name from the system's zone
	// database ("Asia/Shanghai" is accepted without one: UTC+8).
	TimeZone string `yaml:"time_zone"`
	// SpoolDir holds the files until their upload is confirmed; default
	// <agent.data_dir>/uplink-<name>.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes and SpoolMaxFiles bound the spool (defaults 64 MiB,
	// 20000 files): the oldest real-time files go first, then statistics;
	// point definitions and abnormal records are never dropped.
	SpoolMaxBytes int64      `yaml:"spool_max_bytes"`
	SpoolMaxFiles int        `yaml:"spool_max_files"`
	SFTP          UplinkSFTP `yaml:"sftp"`
	// Codes overrides the code tables (the parts of the mapping that are
	// unconfirmed: README "Regulator files").
	Codes UplinkCodes `yaml:"codes,omitempty"`
}

// UplinkSFTP is the regulator's front-end host the files are pushed to.
type UplinkSFTP struct {
	Address string `yaml:"address"` // host:port, e.g. 10.20.0.5:22
	User    string `yaml:"user"`
	// KeyFile is the private key (OpenSSH or PEM, unencrypted) the agent
	// authenticates with; never logged.
	KeyFile string `yaml:"key_file"`
	// KnownHostsFile holds the server's host key (OpenSSH known_hosts
	// format); required: the agent never connects to an unverified host.
	KnownHostsFile string `yaml:"known_hosts_file"`
	// RemoteDir is the server directory the files go to; default "." (the
	// login directory). It must exist.
	RemoteDir string `yaml:"remote_dir"`
	// Timeout bounds a connection and each file's upload; default 30s.
	Timeout Duration `yaml:"timeout"`
	// RetryMax caps the exponential back-off between failed uploads
	// (1 s doubling); default 1m.
	RetryMax Duration `yaml:"retry_max"`
}

// UplinkCodes overrides entries of the MT/T code tables. Keys and values
// are checked for form only; an absent key keeps the shipped entry.
type UplinkCodes struct {
	// SensorTypes maps a hazmon sensor type (methane, co, ...) to its
	// 4-digit sensor type code (e.g. co2: "0009").
	SensorTypes map[string]string `yaml:"sensor_types,omitempty"`
	// TypeNames maps a 4-digit sensor type code to the type name written
	// in the real-time, abnormal and statistics files.
	TypeNames map[string]string `yaml:"type_names,omitempty"`
	// Status maps a reading status (normal, alarm, cutoff, calibrating,
	// ...), or "fault/<fault code>" (fault/timeout), to the point status
	// bitmask: 0..255, a sum of 1 alarm, 2 power cut, 4 calibration,
	// 8 over-range, 16 substation fault, 32 not polled, 64 paused,
	// 128 sensor fault.
	Status map[string]int `yaml:"status,omitempty"`
	// Abnormal maps an alarm level (alarm, cutoff, feed_abnormal, ...),
	// or "<level>/<direction>" (yellow/low), or "fault/<fault code>", to
	// the 3-digit abnormal type code (001 over-limit alarm ... 010 lower
	// pre-warning).
	Abnormal map[string]string `yaml:"abnormal,omitempty"`
}

var (
	mineCodeRe   = regexp.MustCompile(`^[0-9]{12}$`)
	typeCodeRe   = regexp.MustCompile(`^[0-9]{4}$`)
	abnormalRe   = regexp.MustCompile(`^[0-9]{3}$`)
	codeKeyRe    = regexp.MustCompile(`^[a-z0-9_]+(/[a-z0-9_]+)?$`)
	offsetZoneRe = regexp.MustCompile(`^[+-]([01][0-9]|2[0-3]):([0-5][0-9])$`)
)

// Location returns the uplink's time zone (TimeZone, default
// DefaultUplinkTimeZone): a fixed offset, or a zone from the system's zone
// database; "Asia/Shanghai" falls back to a fixed UTC+8 where the board
// has no zone database. Errors name the zone.
func (u Uplink) Location() (*time.Location, error) {
	z := u.TimeZone
	if z == "" {
		z = DefaultUplinkTimeZone
	}
	if m := offsetZoneRe.FindStringSubmatch(z); m != nil {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		off := h*3600 + mi*60
		if z[0] == '-' {
			off = -off
		}
		return time.FixedZone("UTC"+z, off), nil
	}
	loc, err := time.LoadLocation(z)
	if err != nil {
		if z == shanghai {
			return time.FixedZone(shanghai, 8*3600), nil
		}
		return nil, fmt.Errorf("time zone %q: %w (use an offset such as \"+08:00\")", z, err)
	}
	return loc, nil
}

// validateUplinks applies the uplinks' defaults (after applyDefaults, so
// agent.data_dir is known) and checks them.
func (c *Config) validateUplinks(k *checker) {
	names := map[string]int{}
	spools := map[string]int{}
	for i := range c.Uplinks {
		u := &c.Uplinks[i]
		p := fmt.Sprintf("uplinks[%d]", i)
		if u.Kind != UplinkMTT1201 {
			if u.Kind == "" {
				k.errf(p+".kind", "required: %s", UplinkMTT1201)
			} else {
				k.errf(p+".kind", "%q: the only kind is %s", u.Kind, UplinkMTT1201)
			}
			continue
		}
		defaultUplink(u, c.Agent.DataDir)
		k.unique(p+".name", u.Name, "uplinks", i, names)
		if j, dup := spools[filepath.Clean(u.SpoolDir)]; dup {
			k.errf(p+".spool_dir", "%q is already the spool of uplinks[%d]", u.SpoolDir, j)
		} else {
			spools[filepath.Clean(u.SpoolDir)] = i
		}
		if filepath.Clean(u.SpoolDir) == filepath.Clean(c.Agent.DataDir) {
			k.errf(p+".spool_dir", "must be a directory of its own, not agent.data_dir")
		}
		validateMTT(k, p, u)
	}
}

func defaultUplink(u *Uplink, dataDir string) {
	if u.Name == "" {
		u.Name = u.Kind
	}
	if u.Interval == 0 {
		u.Interval = Duration(DefaultUplinkInterval)
	}
	if u.StatsInterval == 0 {
		u.StatsInterval = Duration(DefaultUplinkStatsInterval)
	}
	if u.TimeZone == "" {
		u.TimeZone = DefaultUplinkTimeZone
	}
	if u.SpoolDir == "" {
		u.SpoolDir = filepath.Join(dataDir, "uplink-"+u.Name)
	}
	if u.SpoolMaxBytes == 0 {
		u.SpoolMaxBytes = DefaultUplinkSpoolBytes
	}
	if u.SpoolMaxFiles == 0 {
		u.SpoolMaxFiles = DefaultUplinkSpoolFiles
	}
	if u.SFTP.RemoteDir == "" {
		u.SFTP.RemoteDir = "."
	}
	if u.SFTP.Timeout == 0 {
		u.SFTP.Timeout = Duration(DefaultUplinkSFTPTimeout)
	}
	if u.SFTP.RetryMax == 0 {
		u.SFTP.RetryMax = Duration(DefaultUplinkRetryMax)
	}
}

func validateMTT(k *checker, p string, u *Uplink) {
	if !mineCodeRe.MatchString(u.MineCode) {
		k.errf(p+".mine_code", "%q: the mine code is 12 digits (quote it in YAML: \"140105001234\")", u.MineCode)
	}
	for _, f := range []struct{ key, v string }{
		{"mine_name", u.MineName}, {"system_model", u.SystemModel},
		{"system_name", u.SystemName}, {"manufacturer", u.Manufacturer},
	} {
		if f.v == "" {
			k.errf(p+"."+f.key, "required: a header field of the regulator's files")
		} else if msg := MTTTextProblem(f.v); msg != "" {
			k.errf(p+"."+f.key, "%q %s", f.v, msg)
		}
	}
	if u.SafetyMarkValidUntil == "" {
		k.errf(p+".safety_mark_valid_until", "required: the date the system's safety mark expires, YYYY-MM-DD")
	} else if d, err := time.Parse(dateLayout, u.SafetyMarkValidUntil); err != nil {
		k.errf(p+".safety_mark_valid_until", "%q is not a date YYYY-MM-DD", u.SafetyMarkValidUntil)
	} else if d.Before(time.Now().AddDate(0, 0, -1)) {
		k.warnf(p+".safety_mark_valid_until", "%s has passed: the safety mark has expired", u.SafetyMarkValidUntil)
	}
	if d := u.Interval.D(); d < MinUplinkInterval || d > MaxUplinkInterval {
		k.errf(p+".interval", "%s is outside %s..%s", u.Interval, MinUplinkInterval, MaxUplinkInterval)
	} else if d > UplinkRealtimeInterval {
		k.warnf(p+".interval", "%s: regulators expect real-time files every %s", u.Interval, UplinkRealtimeInterval)
	}
	if d := u.StatsInterval.D(); d < time.Minute || d > time.Hour {
		k.errf(p+".stats_interval", "%s is outside 1m..1h", u.StatsInterval)
	}
	if _, err := u.Location(); err != nil {
		k.errf(p+".time_zone", "%v", err)
	}
	if u.SpoolMaxBytes < MinUplinkSpoolBytes {
		k.errf(p+".spool_max_bytes", "%d is too small (at least 1 MiB)", u.SpoolMaxBytes)
	}
	if u.SpoolMaxFiles < MinUplinkSpoolFiles {
		k.errf(p+".spool_max_files", "%d is too small (at least %d)", u.SpoolMaxFiles, MinUplinkSpoolFiles)
	}
	validateUplinkSFTP(k, p+".sftp", u.SFTP)
	validateUplinkCodes(k, p+".codes", u.Codes)
}

func validateUplinkSFTP(k *checker, p string, s UplinkSFTP) {
	if s.Address == "" {
		k.errf(p+".address", "required: host:port of the regulator's front-end host")
	} else if host, port, err := net.SplitHostPort(s.Address); err != nil || host == "" || port == "" {
		k.errf(p+".address", "%q is not host:port (e.g. 10.20.0.5:22)", s.Address)
	}
	if s.User == "" {
		k.errf(p+".user", "required")
	}
	if s.KeyFile == "" {
		k.errf(p+".key_file", "required: the private key the agent logs in with")
	}
	k.file(p+".key_file", s.KeyFile)
	if s.KnownHostsFile == "" {
		k.errf(p+".known_hosts_file", "required: the server's host key is always verified")
	}
	k.file(p+".known_hosts_file", s.KnownHostsFile)
	if d := s.Timeout.D(); d < time.Second || d > 10*time.Minute {
		k.errf(p+".timeout", "%s is outside 1s..10m", s.Timeout)
	}
	if d := s.RetryMax.D(); d < time.Second || d > time.Hour {
		k.errf(p+".retry_max", "%s is outside 1s..1h", s.RetryMax)
	}
}

func validateUplinkCodes(k *checker, p string, c UplinkCodes) {
	for _, t := range slices.Sorted(maps.Keys(c.SensorTypes)) {
		code := c.SensorTypes[t]
		if !typeCodeRe.MatchString(code) {
			k.errf(p+".sensor_types."+t, "%q: a sensor type code is 4 digits", code)
		}
	}
	for _, code := range slices.Sorted(maps.Keys(c.TypeNames)) {
		name := c.TypeNames[code]
		if !typeCodeRe.MatchString(code) {
			k.errf(p+".type_names", "%q: a sensor type code is 4 digits", code)
		}
		if msg := MTTTextProblem(name); name == "" || msg != "" {
			k.errf(p+".type_names."+code, "%q %s", name, cmp.Or(msg, "is empty"))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.Status)) {
		bits := c.Status[key]
		if !codeKeyRe.MatchString(key) {
			k.errf(p+".status", "%q: use a status (alarm) or fault/<fault code>", key)
		}
		if bits < 0 || bits > 255 {
			k.errf(p+".status."+key, "%d is outside 0..255 (a sum of 1, 2, 4, ..., 128)", bits)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.Abnormal)) {
		code := c.Abnormal[key]
		if !codeKeyRe.MatchString(key) {
			k.errf(p+".abnormal", "%q: use a level (cutoff), <level>/<direction> or fault/<fault code>", key)
		}
		if !abnormalRe.MatchString(code) {
			k.errf(p+".abnormal."+key, "%q: an abnormal type code is 3 digits (001..010)", code)
		}
	}
}

// MTTTextProblem says why s cannot be written unchanged into a field of
// the MT/T 1201 files ("" if it can): the files separate fields with ';',
// end records with '~' and the file with "||", hold no line breaks and no
// full-width characters (networking notes). Config texts that go into the
// files (names, places) are refused when it is not ""; free text is
// cleaned instead by mtt.Clean, and mtt's tests check the two agree.
func MTTTextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == ';' || r == '~' || r == '|':
			return fmt.Sprintf("contains %q, a separator of the regulator's files", r)
		case r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029:
			return "contains a line break or control character"
		case r == 0xFEFF:
			return "contains a byte-order mark"
		case r == 0x3000:
			return "contains a full-width space: use a plain space"
		case r >= 0xFF01 && r <= 0xFF5E:
			return fmt.Sprintf("contains the full-width %q: use %q", r, r-0xFEE0)
		}
	}
	if strings.TrimSpace(s) != s {
		return "has leading or trailing spaces"
	}
	return ""
}
