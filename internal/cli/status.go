package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/spf13/cobra"
)

// Width is the terminal width status fits in (an 80×24 SSH terminal);
// watch fits the terminal it runs in (see termSize).
const Width = 80

func newStatus(stdout io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent: sensors, buses, MQTT, buffer, alarms",
		Long: "Status asks the running agent over its control socket for a snapshot: each\n" +
			"sensor's last value, unit, status and age; each bus's requests, errors,\n" +
			"round-trip time and last error; the MQTT link; the buffer depth and oldest\n" +
			"sample; the outputs' state, the active alarms and log lines dropped (if\n" +
			"any) while the log sink was stalled. Errors show their root\n" +
			"cause (\"connection refused\"); --json has the full text.",
		Example: "  hazmon status\n  hazmon status --config configs/demo.yaml\n  hazmon status --json | jq '.sensors[]'",
		Args:    cobra.NoArgs,
	}
	t := addTarget(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the snapshot as JSON (full error texts)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := t.client()
		if err != nil {
			return err
		}
		st, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		redactStatus(&st)
		if asJSON {
			return writeJSON(stdout, st)
		}
		_, err = io.WriteString(stdout, strings.Join(renderStatus(st, Width, 0), "\n")+"\n")
		return err
	}
	return cmd
}

func newWatch(stdout io.Writer) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Show status, redrawn in place (Ctrl-C quits)",
		Long: "Watch redraws the status screen every --interval, fitted to the terminal\n" +
			"(80×24 if its size is unknown; $LINES and $COLUMNS override): header, alarms,\n" +
			"then the sensors in alarm or fault first. If the agent stops, the screen\n" +
			"says so and keeps trying.",
		Example: "  hazmon watch\n  hazmon watch --interval 5s   # slow link",
		Args:    cobra.NoArgs,
	}
	t := addTarget(cmd)
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if interval < 100*time.Millisecond {
			return fmt.Errorf("--interval %s is too short (at least 100ms)", interval)
		}
		c, err := t.client()
		if err != nil {
			return err
		}
		return watch(cmd.Context(), c, interval, stdout)
	}
	return cmd
}

// redactStatus hides a broker password in the MQTT part of a snapshot,
// also when the agent answering is older than this CLI and did not.
func redactStatus(st *control.Status) {
	st.MQTT.Broker = config.RedactURL(st.MQTT.Broker)
	st.MQTT.LastError = config.RedactURL(st.MQTT.LastError)
}

// ANSI sequences watch draws with: the first frame clears the screen,
// later ones go home and overwrite, clearing each line's end and the rest
// of the screen (less flicker over a slow SSH link than a full clear).
const (
	clearScreen = "\x1b[H\x1b[2J"
	cursorHome  = "\x1b[H"
	clearEOL    = "\x1b[K"
	clearEOS    = "\x1b[J"
)

func watch(ctx context.Context, b control.Backend, interval time.Duration, w io.Writer) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	first := true
	for {
		rctx, cancel := context.WithTimeout(ctx, max(interval, 2*time.Second))
		st, err := b.Status(rctx)
		cancel()
		redactStatus(&st)
		if ctx.Err() != nil {
			return nil
		}
		cols, rows := termSize(w)
		if _, err := w.Write(watchFrame(st, err, time.Now(), interval, cols, rows, first)); err != nil {
			return err
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// watchFrame draws one screen of at most rows lines of at most cols
// columns; the last line has no newline, so a full screen never scrolls.
func watchFrame(st control.Status, err error, now time.Time, interval time.Duration, cols, rows int, first bool) []byte {
	footer := fit(fmt.Sprintf("%s  every %s, Ctrl-C quits", now.Format("15:04:05 -07:00"), interval), cols)
	var lines []string
	if err != nil {
		lines = wrap("hazmon: "+err.Error(), cols)
	} else {
		lines = renderStatus(st, cols, rows-1)
	}
	if len(lines) > rows-1 {
		lines = lines[:max(rows-1, 0)]
	}
	lines = append(lines, footer)
	var f bytes.Buffer
	if first {
		f.WriteString(clearScreen)
	} else {
		f.WriteString(cursorHome)
	}
	for i, l := range lines {
		f.WriteString(l)
		f.WriteString(clearEOL)
		if i < len(lines)-1 {
			f.WriteByte('\n')
		}
	}
	f.WriteString(clearEOS)
	return f.Bytes()
}

// wrap breaks s into lines of at most n columns at spaces (a longer word
// is cut by fit).
func wrap(s string, n int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) <= n:
				line += " " + word
			default:
				out = append(out, fit(line, n))
				line = word
			}
		}
		out = append(out, fit(line, n))
	}
	return out
}

// severity orders sensors for display: alarm levels (cut-off first),
// then faults, then no data, calibration and normal.
func severity(status string) int {
	switch status {
	case "cutoff", "red":
		return 0
	case "alarm2", "orange":
		return 1
	case "alarm", "yellow", "blue":
		return 2
	case "fault":
		return 3
	case "":
		return 4
	case "calibrating":
		return 5
	}
	return 6
}

// renderStatus formats a snapshot in lines of at most width columns:
// header (agent, MQTT, buffer, outputs, buses), alarms, then sensors by
// severity. With rows > 0 it fits in rows lines, cutting the alarms and
// sensors that do not fit with a "… N more" line; rows 0 shows all.
func renderStatus(st control.Status, width, rows int) []string {
	var out []string
	line := func(format string, a ...any) string {
		return fit(strings.TrimRight(fmt.Sprintf(format, a...), " "), width)
	}
	out = append(out, line("hazmon %s  %s/%s  %s  up %s", st.Version, st.Site, st.Agent, strings.ToUpper(st.State), age(st.UptimeS)))
	mq := "DOWN"
	if st.MQTT.Connected {
		mq = "connected"
	}
	mqLine := strings.TrimRight("MQTT    "+mq+" "+st.MQTT.Broker, " ")
	if !st.MQTT.Connected && st.MQTT.LastError != "" {
		mqLine += "  " + cause(st.MQTT.LastError)
	}
	if st.MQTT.SinceTS > 0 {
		mqLine += "  since " + age(float64(st.NowTS-st.MQTT.SinceTS)/1000)
	}
	out = append(out, line("%s  in-flight %d", mqLine, st.MQTT.InFlight))
	oldest := "empty"
	if st.Buffer.OldestAgeS >= 0 {
		oldest = "oldest " + age(st.Buffer.OldestAgeS) + " ago"
	}
	out = append(out, line("BUFFER  %d pending, %d outbox, %s, %s", st.Buffer.Pending, st.Buffer.Outbox, oldest, bytesHuman(st.Buffer.Bytes)))
	if st.Buffer.NotStored > 0 {
		out = append(out, line("BUFFER  FAULT: %d record(s) not stored (data_loss reported): %s", st.Buffer.NotStored, cause(st.Buffer.LastError)))
	}
	if st.Log.Dropped > 0 {
		out = append(out, line("LOG     %d line(s) dropped: the log sink (stderr/journald) stalled", st.Log.Dropped))
	}
	if len(st.Outputs) > 0 {
		var parts []string
		for _, o := range st.Outputs {
			p := o.Name + "=" + o.State
			if o.Detail != "" && o.State != "unknown" {
				p += " (" + detailCause(o.Detail) + ")"
			}
			parts = append(parts, p)
		}
		out = append(out, line("OUTPUTS %s", strings.Join(parts, "  ")))
	}
	if len(st.Buses) > 0 {
		out = append(out, line("%-12s %-5s %8s %6s %8s  %s", "BUS", "LINK", "REQ", "ERR", "RTT", "LAST ERROR"))
		for _, bs := range st.Buses {
			link := "down"
			if bs.Connected {
				link = "up"
			}
			out = append(out, line("%-12s %-5s %8d %6d %6.1fms  %s", fit(bs.Name, 12), link, bs.Requests, bs.Errors, bs.RTTMs, cause(bs.LastError)))
		}
	}

	var alarms, faults []string
	for _, a := range st.Alarms {
		if rows > 0 && a.Level == "fault" {
			faults = append(faults, a.Sensor) // each has its sensor row with the cause
			continue
		}
		v := ""
		if a.Value != nil {
			v = strings.TrimSpace(value(a.Value)+" "+a.Unit) + " "
		}
		alarms = append(alarms, fmt.Sprintf("%s %s %sat %s", strings.ToUpper(a.Level), a.Sensor, v, clock(a.TS)))
	}
	if len(faults) > 0 {
		alarms = append(alarms, fmt.Sprintf("FAULT %d sensor(s): %s", len(faults), strings.Join(faults, " ")))
	}
	if len(alarms) == 0 {
		alarms = []string{"none"}
	}
	if rows > 0 {
		// Keep room for the sensor heading and one line below the alarms.
		alarms = truncate(alarms, max(rows-len(out)-2, 1), "alarms")
	}
	for i, a := range alarms {
		head := "ALARMS "
		if i > 0 {
			head = "       "
		}
		out = append(out, line("%s %s", head, a))
	}

	sensors := append([]control.SensorStatus(nil), st.Sensors...)
	sort.SliceStable(sensors, func(i, j int) bool { return severity(sensors[i].Status) < severity(sensors[j].Status) })
	errW := max(width-56, 0)
	var sl []string
	for _, s := range sensors {
		status := s.Status
		if status == "" {
			status = "no data"
		}
		sl = append(sl, line("%-16s %10s %-7s %-11s %6s  %s", fit(s.ID, 16), value(s.Value), fit(s.Unit, 7), status, age(s.AgeS), fit(cause(s.Error), errW)))
	}
	if rows > 0 {
		left := rows - len(out) - 1
		if left < 1 {
			return out
		}
		sl = truncate(sl, left, "sensors")
	}
	out = append(out, line("%-16s %10s %-7s %-11s %6s  %s", "SENSOR", "VALUE", "UNIT", "STATUS", "AGE", "ERROR"))
	return append(out, sl...)
}

// truncate keeps at most n of lines, the last of them then saying how
// many more there are.
func truncate(lines []string, n int, what string) []string {
	if len(lines) <= n {
		return lines
	}
	keep := max(n-1, 0)
	more := fmt.Sprintf("… %d more %s (hazmon status shows all)", len(lines)-keep, what)
	return append(lines[:keep:keep], more)
}

// detailCause keeps an output detail's label and the root cause of its
// error: "not confirmed: write coil: bus X: bus down: ...: connection
// refused" reads "not confirmed: connection refused".
func detailCause(d string) string {
	label, rest, ok := strings.Cut(d, ": ")
	if !ok {
		return d
	}
	return label + ": " + cause(rest)
}
