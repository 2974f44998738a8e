package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSample is what the side-by-side bench reads of a process at one
// instant: CPU time (utime+stime of all its threads, /proc/PID/stat), peak
// RSS (VmHWM, /proc/PID/status) and bytes it caused to be written to
// storage (write_bytes, /proc/PID/io).
type procSample struct {
	at         time.Time
	cpu        time.Duration
	hwmKB      int
	writeBytes int64
}

// sampleProc reads pid's counters. write_bytes needs the kernel's task I/O
// accounting; without it (or without permission) writeBytes is -1.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now(), writeBytes: -1}
	cpu, hwm, err := proc(pid)
	if err != nil {
		return s, fmt.Errorf("read /proc/%d: %w", pid, err)
	}
	s.cpu, s.hwmKB = cpu, hwm
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(io))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "write_bytes:"); ok {
				s.writeBytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return s, nil
}

// delta is the change of the counters from a to b.
type delta struct {
	wall       time.Duration
	cpu        time.Duration
	writeBytes int64 // -1: not available
}

func (a procSample) to(b procSample) delta {
	d := delta{wall: b.at.Sub(a.at), cpu: b.cpu - a.cpu, writeBytes: -1}
	if a.writeBytes >= 0 && b.writeBytes >= 0 {
		d.writeBytes = b.writeBytes - a.writeBytes
	}
	return d
}

// syncCount is the number of fsync and fdatasync calls a process made in a
// window, counted by strace; ok is false (with why) when strace is missing
// or could not attach.
type syncCount struct {
	fsync, fdatasync int
	window           time.Duration
	ok               bool
	why              string
}

func (s syncCount) perSecond() float64 {
	return float64(s.fsync+s.fdatasync) / s.window.Seconds()
}

// countSyncs attaches `strace -f -c -e trace=fsync,fdatasync` to pid for d
// and returns its summary counts. Attaching stops the process at every
// system call (ptrace), which distorts its CPU time, so the bench runs this
// after the CPU window, never during it.
func countSyncs(pid int, d time.Duration, dir string) syncCount {
	bin, err := exec.LookPath("strace")
	if err != nil {
		return syncCount{why: "n/a: strace not installed"}
	}
	out := filepath.Join(dir, fmt.Sprintf("strace-%d.txt", pid))
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", "-c", "-o", out, "-e", "trace=fsync,fdatasync", "-p", strconv.Itoa(pid))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return syncCount{why: "n/a: strace: " + err.Error()}
	}
	time.Sleep(d)
	_ = cmd.Process.Signal(syscall.SIGINT) // strace detaches and writes its summary
	if err := cmd.Wait(); err != nil && ctx.Err() != nil {
		return syncCount{why: "n/a: strace did not stop"}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return syncCount{why: "n/a: strace could not attach: " + strings.TrimSpace(stderr.String())}
	}
	if strings.Contains(stderr.String(), "Operation not permitted") {
		return syncCount{why: "n/a: strace: ptrace not permitted"}
	}
	c := syncCount{window: d, ok: true}
	// Summary lines: "% time seconds usecs/call calls [errors] syscall".
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		switch f[len(f)-1] {
		case "fsync":
			c.fsync = n
		case "fdatasync":
			c.fdatasync = n
		}
	}
	return c
}
