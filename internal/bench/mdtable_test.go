package bench

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// mdTable is a markdown table whose columns are padded to their widest cell.
type mdTable struct {
	head []string
	rows [][]string
}

func (m *mdTable) add(cells ...string) { m.rows = append(m.rows, cells) }

func (m *mdTable) String() string {
	w := make([]int, len(m.head))
	for _, r := range append([][]string{m.head}, m.rows...) {
		for i, c := range r {
			if i < len(w) {
				w[i] = max(w[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i := range w {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", w[i]-utf8.RuneCountInString(c)))
		}
		b.WriteString("\n")
	}
	line(m.head)
	b.WriteString("|")
	for i := range w {
		b.WriteString(strings.Repeat("-", w[i]+2) + "|")
	}
	b.WriteString("\n")
	for _, r := range m.rows {
		line(r)
	}
	return b.String()
}

// machine describes this machine for the bench output: CPU model, cores,
// memory, kernel.
func machine() string {
	mem := "?"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.Fields(v)[0])
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d cores, %s RAM, %s/%s, Linux %s, %s, host %s, %s", cpuModel(), runtime.NumCPU(), mem,
		runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), runtime.Version(), host, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// num formats x with prec decimals, "n/a" for NaN.
func num(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

// ratio formats a/b as "0.42×", "n/a" when either is missing or b is 0.
func ratio(a, b float64) (string, float64) {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a", math.NaN()
	}
	r := a / b
	return num(r, 2) + "×", r
}

// met is "yes" or "NO" for a figure against its target; "n/a" when the
// figure could not be measured.
func met(x float64, ok func(float64) bool) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	if ok(x) {
		return "yes"
	}
	return "NO"
}

func atMost(lim float64) func(float64) bool  { return func(x float64) bool { return x <= lim } }
func atLeast(lim float64) func(float64) bool { return func(x float64) bool { return x >= lim } }

// envDuration reads whole seconds from env var k, def when unset or bad.
func envDuration(k string, def time.Duration) time.Duration {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil && v > 0 {
		return time.Duration(v * float64(time.Second))
	}
	return def
}

// envInt reads a positive integer from env var k, def when unset or bad.
func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// envInts reads a comma-separated list of positive integers from env var
// k, def when unset or bad.
func envInts(k string, def []int) []int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return def
		}
		out = append(out, n)
	}
	return out
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute figures: the bench shares
// its machine, and polls/s and throughput depend on what else runs.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}
