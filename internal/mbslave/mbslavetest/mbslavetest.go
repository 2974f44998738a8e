// Package mbslavetest starts mbslave Modbus slaves for tests of other
// packages: a TCP slave on a loopback port and an RTU slave on one end of a
// socat pty pair. Everything started is stopped by t.Cleanup.
package mbslavetest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
)

// StartTCP serves b as a Modbus TCP slave on 127.0.0.1 (free port) and
// returns its "host:port". The slave stops at test cleanup; a serve error
// fails the test.
func StartTCP(t testing.TB, b *mbslave.Bank) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mbslavetest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mbslave.ServeTCP(ctx, ln, b) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mbslavetest: tcp slave: %v", err)
		}
	})
	return ln.Addr().String()
}

// PtyPair starts `socat pty,raw,echo=0 pty,raw,echo=0` and returns the
// paths of its two linked ends (in a temporary folder): bytes written to one
// are read from the other. socat is killed at test cleanup. A missing socat
// fails the test (CI installs it: apt-get install socat).
func PtyPair(t testing.TB) (slaveEnd, clientEnd string) {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Fatalf("mbslavetest: socat not found (apt-get install socat): %v", err)
	}
	dir := t.TempDir()
	slaveEnd, clientEnd = filepath.Join(dir, "slave"), filepath.Join(dir, "client")
	cmd := exec.Command(socat, "-d", "-d",
		"pty,raw,echo=0,link="+slaveEnd, "pty,raw,echo=0,link="+clientEnd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("mbslavetest: start socat: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, e1 := os.Stat(slaveEnd)
		_, e2 := os.Stat(clientEnd)
		if e1 == nil && e2 == nil {
			return slaveEnd, clientEnd
		}
		select {
		case <-exited:
			t.Fatalf("mbslavetest: socat exited before creating the pty pair")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mbslavetest: socat did not create %s and %s within 10s", slaveEnd, clientEnd)
		}
	}
}

// StartRTU serves b as a Modbus RTU slave on one end of a socat pty pair,
// pacing its replies at baud (0 = no pacing, see mbslave.ServeRTU), and
// returns the device path of the other end for the client under test to
// open. Everything stops at test cleanup; a serve error fails the test.
func StartRTU(t testing.TB, b *mbslave.Bank, baud int) (clientDevice string) {
	t.Helper()
	slaveEnd, clientEnd := PtyPair(t)
	f, err := mbslave.OpenPort(slaveEnd, 9600, 'N') // a pty has no line speed; pacing is ServeRTU's

	if err != nil {
		t.Fatalf("mbslavetest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mbslave.ServeRTU(ctx, f, b, baud) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mbslavetest: rtu slave: %v", err)
		}
		f.Close()
	})
	return clientEnd
}
