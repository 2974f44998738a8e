package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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
	cmd.Flags().StringVarP(&t.config, "config", "c", defaultConfig, "config file (for the socket path and bus settings)")
	cmd.Flags().StringVar(&t.socket, "socket", "", "control socket (default: control.socket of --config, else "+control.DefaultSocket+")")
	return t
}

// loadConfig loads --config. A missing default file is not an error
// (nil config); an explicitly named file must load.
func (t *target) loadConfig() (*config.Config, error) {
	if !t.cmd.Flags().Changed("config") {
		if _, err := os.Stat(t.config); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	l, err := config.Load(t.config)
	if err != nil {
		return nil, err
	}
	return l.Config, nil
}

// socketPath resolves the socket; a config that does not load only
// matters when no --socket is given and it was named explicitly.
func (t *target) socketPath() (string, error) {
	if t.socket != "" {
		return t.socket, nil
	}
	c, err := t.loadConfig()
	if err != nil {
		return "", fmt.Errorf("find the control socket (or give --socket): %w", err)
	}
	if c != nil && c.Control.Socket != "" {
		return c.Control.Socket, nil
	}
	return control.DefaultSocket, nil
}

func (t *target) client() (*control.Client, error) {
	p, err := t.socketPath()
	if err != nil {
		return nil, err
	}
	return control.NewClient(p), nil
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

func clock(ts int64) string {
	if ts == 0 {
		return "-"
	}
	return time.UnixMilli(ts).Format("2006-01-02 15:04:05")
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
