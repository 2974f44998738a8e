package asynclog

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func records(buf *bytes.Buffer) []string {
	s := strings.TrimSuffix(buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A library printing the same error on every read (periph's gpioioctl
// does) gives one record per 10 s, the next one saying how many were left
// out; another message has its own limit.
func TestStdLog_OneLinePerMessagePerWindow(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{now: t0}
	noTime := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	b := NewStdLog(slog.New(slog.NewTextHandler(&buf, noTime)), 10*time.Second, clk.Now)
	std := log.New(b, "", 0)

	for range 100 {
		std.Println("GPIOLine.Read():  input/output error")
	}
	std.Print("gpioioctl: other")
	clk.advance(5 * time.Second)
	for range 10 {
		std.Println("GPIOLine.Read():  input/output error")
	}
	clk.advance(5 * time.Second)
	std.Println("GPIOLine.Read():  input/output error")

	want := []string{
		`level=WARN msg="GPIOLine.Read():  input/output error"`,
		`level=WARN msg="gpioioctl: other"`,
		`level=WARN msg="GPIOLine.Read():  input/output error" suppressed=109`,
	}
	got := records(&buf)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Distinct messages beyond the bound share one limit, so a flood of
// different texts cannot grow the map or the log without bound.
func TestStdLog_ManyDistinctMessagesBounded(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{now: t0}
	b := NewStdLog(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, clk.Now)
	for i := range 1000 {
		_, _ = fmt.Fprintf(b, "error %d\n", i)
	}
	if n := len(records(&buf)); n != maxStdKeys+1 {
		t.Fatalf("%d records for 1000 distinct messages, want %d", n, maxStdKeys+1)
	}
	if len(b.seen) > maxStdKeys+1 {
		t.Fatalf("%d messages remembered", len(b.seen))
	}
	// A window later, idle messages are forgotten and new ones get through.
	clk.advance(10 * time.Second)
	buf.Reset()
	_, _ = fmt.Fprintf(b, "error %d\n", 5000)
	_, _ = fmt.Fprintf(b, "error %d\n", 5001)
	if n := len(records(&buf)); n != 2 {
		t.Fatalf("%d records after the window, want 2", n)
	}
}

// RedirectStdLog sends the log package's lines through the bridge, with
// no second time stamp, and restores the previous output.
func TestRedirectStdLog_RoutesAndRestores(t *testing.T) {
	var buf, before bytes.Buffer
	orig := log.Writer()
	log.SetOutput(&before)
	defer log.SetOutput(orig)
	restore := RedirectStdLog(NewStdLog(slog.New(slog.NewTextHandler(&buf, nil)), 0, nil))
	log.Printf("chip %s: %s", "gpiochip0", "boom")
	restore()
	log.Print("after")
	if got := buf.String(); !strings.Contains(got, `level=WARN msg="chip gpiochip0: boom"`) || strings.Count(got, "\n") != 1 {
		t.Fatalf("bridged: %q", got)
	}
	if !strings.HasSuffix(before.String(), "after\n") || log.Flags() != log.LstdFlags {
		t.Fatalf("not restored: %q flags %d", before.String(), log.Flags())
	}
}
