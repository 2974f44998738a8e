// Package sshdtest starts a real OpenSSH server for tests: Debian's sshd on
// a loopback port with its own host key and an authorized key for the
// current user, reached through a proxy the test can cut (the regulator's
// front-end host down) or stall (an upload caught halfway). A missing sshd
// skips the test, unless CI or HAZMON_REQUIRE_SSHD is set: then it fails.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const sshdPath = "/usr/sbin/sshd"

// Server is a real OpenSSH sshd started for one test on a loopback
// port, with its own host key and an authorized key for the current user,
// reached through a proxy the test can cut (the server "down").
type Server struct {
	dir     string // sshd's files
	Inbox   string // the remote directory files are pushed to
	User    string
	KeyFile string // the client's private key
	HostPub ssh.PublicKey
	Proxy   *Proxy // the address clients use (Proxy.Addr)
	stderr  *syncBuffer
}

// Start skips the test when sshd is missing, unless CI or
// HAZMON_REQUIRE_SSHD is set: then it fails.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		msg := "OpenSSH server not installed (" + sshdPath + "): apt-get install openssh-server, or run scripts/deps.sh"
		if os.Getenv("CI") != "" || os.Getenv("HAZMON_REQUIRE_SSHD") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory,
		// which the Debian service creates at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{dir: t.TempDir(), User: u.Username, stderr: &syncBuffer{}}
	s.Inbox = filepath.Join(s.dir, "inbox")
	if err := os.Mkdir(s.Inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	s.HostPub = WriteKey(t, filepath.Join(s.dir, "host_ed25519"))
	s.KeyFile = filepath.Join(s.dir, "client_ed25519")
	clientPub := WriteKey(t, s.KeyFile)
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, filepath.Join(s.dir, "host_ed25519"), filepath.Join(s.dir, "sshd.pid"), filepath.Join(s.dir, "authorized_keys"))
	cfgFile := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	cmd.Stderr = s.stderr
	// A test binary that dies (a timeout panic) takes its sshd with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.stderr.String())
		}
	})
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening on %s within 10 s:\n%s", target, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Proxy = startProxy(t, target)
	return s
}

// WriteKey writes a new Ed25519 private key in OpenSSH form (mode 0600)
// and returns its public key.
func WriteKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// KnownHosts writes a known_hosts file holding key for addr.
func KnownHosts(t testing.TB, addr string, key ssh.PublicKey) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(f, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Proxy forwards a loopback port to sshd. down closes the listener and cuts
// every connection (the server unreachable); up listens again on the same
// port. With stallAfter set, the client-to-server direction stops after
// that many bytes of a connection and stalled is closed: an upload is then
// caught halfway.
type Proxy struct {
	target string
	Addr   string // host:port clients dial
	wg     sync.WaitGroup

	mu         sync.Mutex
	ln         net.Listener
	conns      map[net.Conn]bool
	stallAfter int64
	stalled    chan struct{}
	stallOnce  *sync.Once
}

func startProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), conns: map[net.Conn]bool{}}
	p.Up(t)
	t.Cleanup(func() { p.Down(); p.wg.Wait() })
	return p
}

func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
}

func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Stall arms the stall for the next connections and returns its signal.
func (p *Proxy) Stall(after int64) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallAfter, p.stalled, p.stallOnce = after, make(chan struct{}), &sync.Once{}
	return p.stalled
}

func (p *Proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallAfter = 0
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	p.mu.Lock()
	after, stalled, once := p.stallAfter, p.stalled, p.stallOnce
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		if after > 0 {
			if _, err := io.CopyN(s, c, after); err == nil {
				once.Do(func() { close(stalled) })
				_, _ = io.Copy(io.Discard, c) // hold the rest until cut
			}
		} else {
			_, _ = io.Copy(s, c)
		}
		s.Close()
	})
	wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
	wg.Wait()
	c.Close()
	s.Close()
}
