package mtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultSFTPTimeout bounds a connection and each file's upload when
// SFTPOptions.Timeout is 0.
const DefaultSFTPTimeout = 30 * time.Second

// Uploader stores spooled files on the regulator's host. The Exporter
// calls it from one goroutine at a time.
type Uploader interface {
	// Upload stores the local file at localPath on the server as name.
	// It returns nil only once the server has confirmed the file complete
	// under its final name; until ctx ends or it returns, it may block.
	Upload(ctx context.Context, name, localPath string) error
	// Close drops any connection.
	Close() error
}

// SFTPOptions says where and as whom files are pushed.
type SFTPOptions struct {
	Address string // host:port of the front-end host
	User    string
	// KeyFile is the unencrypted private key (OpenSSH or PEM form) the
	// agent authenticates with.
	KeyFile string
	// KnownHostsFile holds the server's host key (OpenSSH known_hosts);
	// required: an unverified host is never connected to.
	KnownHostsFile string
	RemoteDir      string        // directory on the server; "" = the login directory
	Timeout        time.Duration // bounds a connection and each upload; 0 = DefaultSFTPTimeout
	// MineCode, when set, lets a new connection remove this mine's
	// temporary files left in RemoteDir by an interrupted upload.
	MineCode string
}

// SFTP pushes files by SFTP over SSH (golang.org/x/crypto/ssh, key
// authentication, host key verified against known_hosts). A file is
// written under a temporary name (".<name>.tmp", which a consumer that
// takes *.txt does not pick up), fsynced where the server supports it, then
// renamed into place, so the server never shows a partial file under the
// final name. The connection is kept between uploads.
type SFTP struct {
	o       SFTPOptions
	signer  ssh.Signer
	hostKey ssh.HostKeyCallback
	algos   []string
	tmpRe   *regexp.Regexp // this mine's temporary names; nil without MineCode

	mu     sync.Mutex
	conn   *ssh.Client
	client *sftp.Client
}

// NewSFTP reads the key and the known_hosts file. It fails when either is
// missing or unreadable, the key is encrypted, or known_hosts has no key
// for the address: errors name the file.
func NewSFTP(o SFTPOptions) (*SFTP, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultSFTPTimeout
	}
	if o.KnownHostsFile == "" {
		return nil, fmt.Errorf("sftp %s: a known_hosts file is required: the server's host key is always verified", o.Address)
	}
	pem, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: key: %w", o.Address, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: key %s: %w", o.Address, o.KeyFile, err)
	}
	cb, err := knownhosts.New(o.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: known_hosts: %w", o.Address, err)
	}
	algos := knownAlgorithms(cb, o.Address)
	if len(algos) == 0 {
		return nil, fmt.Errorf("sftp %s: %s has no host key for %s", o.Address, o.KnownHostsFile, knownhosts.Normalize(o.Address))
	}
	s := &SFTP{o: o, signer: signer, hostKey: cb, algos: algos}
	if o.MineCode != "" {
		s.tmpRe = regexp.MustCompile(`^\.` + regexp.QuoteMeta(o.MineCode) + `_(CDDY|CDSS|YCBJ|TJSJ)_[0-9]{14}\.txt\.tmp$`)
	}
	return s, nil
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for addr, so the server is asked for a key that can be verified
// (not, say, its RSA key when only its Ed25519 key is known).
func knownAlgorithms(cb ssh.HostKeyCallback, addr string) []string {
	// With an address, the callback matches on it alone, not on remote.
	var ke *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{}, probeKey{}); !errors.As(err, &ke) {
		return nil
	}
	var out []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			out = append(out, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			out = append(out, t)
		}
	}
	return out
}

// probeKey is a public key no known_hosts line holds.
type probeKey struct{}

func (probeKey) Type() string                        { return "hazmon-probe" }
func (probeKey) Marshal() []byte                     { return []byte("hazmon-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe") }

// Upload implements Uploader. A failure on a connection kept from an
// earlier upload (the server may have closed it while idle) is retried
// once on a new connection. Errors name the server and the file; a host
// key that does not match known_hosts gives an error wrapping a
// *knownhosts.KeyError.
func (s *SFTP) Upload(ctx context.Context, name, localPath string) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c, reused, err := s.connect(ctx)
		if err != nil {
			return fmt.Errorf("sftp %s@%s: %w", s.o.User, s.o.Address, err)
		}
		stop := context.AfterFunc(ctx, s.drop)
		err = s.put(c, name, localPath)
		stop()
		if err == nil {
			return nil
		}
		s.drop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		if !reused || attempt > 0 || ctx.Err() != nil {
			return fmt.Errorf("sftp %s@%s: upload %s: %w", s.o.User, s.o.Address, name, err)
		}
	}
}

// connect returns the current client or dials a new one within ctx.
func (s *SFTP) connect(ctx context.Context) (c *sftp.Client, reused bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, true, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.o.Address)
	if err != nil {
		return nil, false, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	cfg := &ssh.ClientConfig{
		User:              s.o.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback:   s.hostKey,
		HostKeyAlgorithms: s.algos,
		Timeout:           s.o.Timeout,
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.o.Address, cfg)
	if err != nil {
		nc.Close()
		return nil, false, err
	}
	_ = nc.SetDeadline(time.Time{})
	conn := ssh.NewClient(sc, chans, reqs)
	client, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("sftp subsystem: %w", err)
	}
	s.conn, s.client = conn, client
	s.sweep(client)
	return client, false, nil
}

// sweep removes this mine's temporary files left in the remote directory
// by an upload that was cut off (best effort: uploads are serial, so none
// is in progress on a new connection).
func (s *SFTP) sweep(c *sftp.Client) {
	if s.tmpRe == nil {
		return
	}
	ents, err := c.ReadDir(s.dir())
	if err != nil {
		return
	}
	for _, e := range ents {
		if s.tmpRe.MatchString(e.Name()) {
			_ = c.Remove(path.Join(s.dir(), e.Name()))
		}
	}
}

func (s *SFTP) dir() string {
	if s.o.RemoteDir == "" {
		return "."
	}
	return s.o.RemoteDir
}

// put writes the file under its temporary name, then renames it.
func (s *SFTP) put(c *sftp.Client, name, localPath string) error {
	src, err := os.Open(localPath)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, final := path.Join(s.dir(), "."+name+".tmp"), path.Join(s.dir(), name)
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, ok := c.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	// posix-rename replaces a file of the same name: the same file pushed
	// again after its confirmation was lost. Plain SFTP rename refuses to.
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		err = c.PosixRename(tmp, final)
	} else {
		err = c.Rename(tmp, final)
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	return nil
}

// drop closes the connection (it is redialled by the next Upload). The SSH
// connection goes first: closing the SFTP client waits for its reader,
// which a server that stopped answering would never release.
func (s *SFTP) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.conn.Close()
		s.client.Close()
		s.client, s.conn = nil, nil
	}
}

// Close implements Uploader.
func (s *SFTP) Close() error {
	s.drop()
	return nil
}
