package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/spf13/cobra"
)

// target is how a technician's command finds the agent: --socket, else
// control.socket of --config, else control.DefaultSocket.
type target struct {
	config string
	socket string
	cmd    *cobra.Command
}

func addTarget(cmd *cobra.Command) *target {
	t := &target{cmd: cmd}
	cmd.Flags().StringVarP(&t.config, "config", "c", defaultConfig, "config file")
	cmd.Flags().StringVar(&t.socket, "socket", "", "control socket (default: control.socket of --config)")
	return t
}

// configNamed reports whether --config was given (or the default file
// exists, which the agent most likely runs from).
func (t *target) configNamed() bool { return t.cmd.Flags().Changed("config") }

// loadConfig loads --config. A missing default file is not an error
// (nil config); an explicitly named file must load.
func (t *target) loadConfig() (*config.Config, error) {
	if !t.configNamed() {
		if _, err := os.Stat(t.config); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	l, err := config.Load(t.config)
	if err != nil {
		return nil, &badConfig{path: t.config, err: err}
	}
	return l.Config, nil
}

// badConfig is a --config file that does not load: its problems are
// printed one a line after what the command could not do because of it.
type badConfig struct {
	path  string
	err   error
	after string // e.g. "; the running agent keeps its config"
}

func (e *badConfig) Error() string {
	var ce *config.Error
	if errors.As(e.err, &ce) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s is invalid%s:", e.path, e.after)
		for _, p := range ce.Problems {
			b.WriteString("\n  " + p.Error())
		}
		return b.String()
	}
	return fmt.Sprintf("%s cannot be read%s: %v", e.path, e.after, e.err)
}

func (e *badConfig) Unwrap() error { return e.err }

// socketPath resolves the socket and says where the path came from (the
// hint of a "no agent answers" error); a config that does not load only
// matters when no --socket is given.
func (t *target) socketPath() (path, hint string, err error) {
	if t.socket != "" {
		return t.socket, "", nil
	}
	c, err := t.loadConfig()
	var bc *badConfig
	if errors.As(err, &bc) {
		// The running agent keeps the config it loaded: a typo in the file
		// on disk must not cut the technician off from it.
		p, perr := config.PeekSocket(t.config)
		if perr != nil {
			bc.after = " (its control.socket is needed; or give --socket PATH)"
			return "", "", err
		}
		from, hint := "its control.socket", "control.socket of "+t.config+", which is invalid; or give --socket PATH"
		if p == "" {
			p, from = control.DefaultSocket, "the default socket (it has no control section)"
			hint = "default socket: " + t.config + ", which is invalid, has no control section; or give --socket PATH"
		}
		fmt.Fprintf(t.cmd.ErrOrStderr(), "warning: %s is invalid (hazmon validate --config %s says why); using %s %s\n", t.config, t.config, from, p)
		return p, hint, nil
	}
	if err != nil {
		return "", "", err
	}
	if c != nil && c.Control.Socket != "" {
		return c.Control.Socket, "control.socket of " + t.config + "; or give --socket PATH", nil
	}
	return control.DefaultSocket, "default; give --config FILE to use its control.socket, or --socket PATH", nil
}

func (t *target) client() (*control.Client, error) {
	p, hint, err := t.socketPath()
	if err != nil {
		return nil, err
	}
	c := control.NewClient(p)
	c.Hint = hint
	return c, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fit cuts s to n columns (runes), marking a cut with "…".
func fit(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// age formats seconds compactly: 0.4s, 12s, 3m05s, 2h10m, 3d04h.
func age(s float64) string {
	if s < 0 {
		return "-"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < 10*time.Second:
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(s))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func value(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'g', 7, 64)
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// clockLayout is how times are shown: local time with its offset from
// UTC, since the agent's logs are in UTC (2026-11-29 20:31:05 +00:00).
const clockLayout = "2006-01-02 15:04:05 -07:00"

// clock formats a unix-millisecond time with clockLayout ("-" for 0).
func clock(ts int64) string {
	if ts == 0 {
		return "-"
	}
	return time.UnixMilli(ts).Format(clockLayout)
}

// cause is the part of an error text a technician acts on: the innermost
// cause ("connection refused", "i/o timeout", "exception 2 (illegal data
// address) ..."), i.e. the text after the last ": ", with the segment
// before it kept while the cause alone is too short to read ("read: EOF").
// A non-Modbus reply is named by its ASCII (see frameHint). The full text
// stays in --json.
func cause(s string) string {
	s = strings.TrimSpace(s)
	if hint := frameHint(s); hint != "" {
		return "reply " + hint
	}
	segs := strings.Split(s, ": ")
	c := strings.TrimSpace(segs[len(segs)-1])
	for i := len(segs) - 2; i >= 0 && len([]rune(c)) < 8; i-- {
		c = strings.TrimSpace(segs[i]) + ": " + c
	}
	return c
}

var mbapHeader = regexp.MustCompile(`MBAP header ((?:[0-9A-F]{2} ?){7})`)

// frameHint reads the bytes of a malformed MBAP header in msg as ASCII:
// a web server or a terminal banner on a Modbus port shows up as text.
// It returns e.g. `"HTTP/1.": not a Modbus TCP server?`, or "" when msg
// has no such header or its bytes are not printable.
func frameHint(msg string) string {
	m := mbapHeader.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	var text []byte
	for _, h := range strings.Fields(m[1]) {
		b, err := strconv.ParseUint(h, 16, 8)
		if err != nil || b < 0x20 || b > 0x7E {
			return ""
		}
		text = append(text, byte(b))
	}
	return strconv.Quote(string(text)) + ": not a Modbus TCP server?"
}

// explainFrame adds frameHint to an error's text.
func explainFrame(err error) error {
	if err == nil {
		return nil
	}
	if hint := frameHint(err.Error()); hint != "" {
		return fmt.Errorf("%w (looks like %s)", err, hint)
	}
	return err
}

// confirm asks a yes/no question on the command's stdin; only "y" or
// "yes" agrees.
func confirm(cmd *cobra.Command, out io.Writer, question string) bool {
	fmt.Fprintf(out, "%s [y/N] ", question)
	var line string
	buf := make([]byte, 1)
	in := cmd.InOrStdin()
	for {
		n, err := in.Read(buf)
		if n == 1 && buf[0] != '\n' {
			line += string(buf[0])
		}
		if err != nil || (n == 1 && buf[0] == '\n') {
			break
		}
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
