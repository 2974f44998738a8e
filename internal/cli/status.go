package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/control"
	"github.com/spf13/cobra"
)

// Width is the terminal width status and watch fit in (an 80×24 SSH
// terminal).
const Width = 80

func newStatus(stdout io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent: sensors, buses, MQTT link, buffer, outputs, alarms",
		Long: "Status asks the running agent over its control socket for a snapshot: each\n" +
			"sensor's last value, unit, status and age; each bus's requests, errors,\n" +
			"round-trip time and last error; the MQTT link; the buffer depth and oldest\n" +
			"sample; the outputs' state and the active alarms.",
		Example: "  hazmon status\n  hazmon status --config configs/demo.yaml\n  hazmon status --json | jq '.sensors[]'",
		Args:    cobra.NoArgs,
	}
	t := addTarget(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the snapshot as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := t.client()
		if err != nil {
			return err
		}
		st, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, st)
		}
		_, err = io.WriteString(stdout, renderStatus(st))
		return err
	}
	return cmd
}

func newWatch(stdout io.Writer) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Show status, refreshed in place (Ctrl-C quits)",
		Long: "Watch redraws the status screen every --interval (default 1s), sized for an\n" +
			"80×24 SSH terminal. If the agent stops, the screen says so and keeps trying.",
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

// clearScreen moves the cursor home and clears the screen (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

func watch(ctx context.Context, b control.Backend, interval time.Duration, w io.Writer) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var frame bytes.Buffer
		frame.WriteString(clearScreen)
		rctx, cancel := context.WithTimeout(ctx, max(interval, 2*time.Second))
		st, err := b.Status(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			fmt.Fprintf(&frame, "%s\n", fit("hazmon: "+err.Error(), Width))
		} else {
			frame.WriteString(renderStatus(st))
		}
		fmt.Fprintf(&frame, "%s\n", fit(fmt.Sprintf("%s  every %s, Ctrl-C quits", time.Now().Format("15:04:05"), interval), Width))
		if _, err := w.Write(frame.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// renderStatus formats a snapshot in lines of at most Width columns.
func renderStatus(st control.Status) string {
	var b strings.Builder
	line := func(format string, a ...any) {
		b.WriteString(fit(strings.TrimRight(fmt.Sprintf(format, a...), " "), Width))
		b.WriteByte('\n')
	}
	line("hazmon %s  %s/%s  %s  up %s", st.Version, st.Site, st.Agent, strings.ToUpper(st.State), age(st.UptimeS))
	line("%-16s %10s %-7s %-11s %6s  %s", "SENSOR", "VALUE", "UNIT", "STATUS", "AGE", "ERROR")
	for _, s := range st.Sensors {
		status := s.Status
		if status == "" {
			status = "no data"
		}
		line("%-16s %10s %-7s %-11s %6s  %s", fit(s.ID, 16), value(s.Value), fit(s.Unit, 7), status, age(s.AgeS), s.Error)
	}
	if len(st.Buses) > 0 {
		line("%-12s %-5s %8s %6s %8s  %s", "BUS", "LINK", "REQ", "ERR", "RTT", "LAST ERROR")
		for _, bs := range st.Buses {
			link := "down"
			if bs.Connected {
				link = "up"
			}
			line("%-12s %-5s %8d %6d %6.1fms  %s", fit(bs.Name, 12), link, bs.Requests, bs.Errors, bs.RTTMs, bs.LastError)
		}
	}
	mq := "DOWN"
	if st.MQTT.Connected {
		mq = "connected"
	}
	since := ""
	if st.MQTT.SinceTS > 0 {
		since = " since " + age(float64(st.NowTS-st.MQTT.SinceTS)/1000)
	}
	mqLine := fmt.Sprintf("MQTT    %s %s%s  in-flight %d", mq, st.MQTT.Broker, since, st.MQTT.InFlight)
	if !st.MQTT.Connected && st.MQTT.LastError != "" {
		mqLine += "  " + st.MQTT.LastError
	}
	line("%s", mqLine)
	oldest := "empty"
	if st.Buffer.OldestAgeS >= 0 {
		oldest = "oldest " + age(st.Buffer.OldestAgeS) + " ago"
	}
	line("BUFFER  %d pending, %d outbox, %s, %s", st.Buffer.Pending, st.Buffer.Outbox, oldest, bytesHuman(st.Buffer.Bytes))
	if len(st.Outputs) > 0 {
		var parts []string
		for _, o := range st.Outputs {
			p := o.Name + "=" + o.State
			if o.Detail != "" && o.State != "unknown" {
				p += " (" + o.Detail + ")"
			}
			parts = append(parts, p)
		}
		line("OUTPUTS %s", strings.Join(parts, "  "))
	}
	if len(st.Alarms) == 0 {
		line("ALARMS  none")
	} else {
		for i, a := range st.Alarms {
			head := "ALARMS "
			if i > 0 {
				head = "       "
			}
			line("%s %s %s %s %s at %s", head, strings.ToUpper(a.Level), a.Sensor, value(a.Value), a.Unit, clock(a.TS))
		}
	}
	return b.String()
}
