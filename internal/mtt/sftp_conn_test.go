package mtt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mtt/sshdtest"

	"golang.org/x/crypto/ssh/knownhosts"
)

// A temporary file of this mine left on the server by an upload that was
// cut off (its file since dropped from the spool, so never retried) is
// removed on the next connection; another mine's are left alone.
func TestSFTP_NewConnectionSweepsLeftoverTempFiles(t *testing.T) {
	srv := sshdtest.Start(t)
	ours := filepath.Join(srv.Inbox, ".140105001234_CDSS_20250101000000.txt.tmp")
	theirs := filepath.Join(srv.Inbox, ".999999999999_CDSS_20250101000000.txt.tmp")
	for _, f := range []string{ours, theirs} {
		if err := os.WriteFile(f, []byte("140105001234;"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(local, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	up, err := NewSFTP(SFTPOptions{Address: srv.Proxy.Addr, User: srv.User, KeyFile: srv.KeyFile, MineCode: mine.Code,
		KnownHostsFile: sshdtest.KnownHosts(t, srv.Proxy.Addr, srv.HostPub), RemoteDir: srv.Inbox})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := up.Upload(context.Background(), "140105001234_CDSS_20250301083000.txt", local); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ours); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("this mine's leftover temporary file is still there: %v", err)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("another mine's temporary file was touched: %v", err)
	}
}

// The host key must match known_hosts: a server with another key is
// refused before anything is sent; without a known_hosts file, or with
// none for the address, the pusher does not even start.
func TestSFTP_WrongHostKeyRefused(t *testing.T) {
	srv := sshdtest.Start(t)
	local := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(local, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := sshdtest.WriteKey(t, filepath.Join(t.TempDir(), "other"))
	opts := SFTPOptions{Address: srv.Proxy.Addr, User: srv.User, KeyFile: srv.KeyFile, RemoteDir: srv.Inbox, Timeout: 10 * time.Second}

	opts.KnownHostsFile = sshdtest.KnownHosts(t, srv.Proxy.Addr, other)
	wrong, err := NewSFTP(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.Upload(context.Background(), "140105001234_CDSS_20250301083000.txt", local)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Fatalf("wrong host key: err = %v, want a known_hosts key mismatch", err)
	}
	if ents, _ := os.ReadDir(srv.Inbox); len(ents) != 0 {
		t.Fatalf("something reached the server past a wrong host key: %v", ents)
	}

	opts.KnownHostsFile = sshdtest.KnownHosts(t, srv.Proxy.Addr, srv.HostPub)
	right, err := NewSFTP(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := right.Upload(context.Background(), "140105001234_CDSS_20250301083000.txt", local); err != nil {
		t.Fatalf("the right host key: %v", err)
	}
	right.Close()

	for what, kh := range map[string]string{
		"no known_hosts":      "",
		"missing known_hosts": filepath.Join(t.TempDir(), "none"),
		"another host only":   sshdtest.KnownHosts(t, "10.9.9.9:22", srv.HostPub),
	} {
		opts.KnownHostsFile = kh
		if _, err := NewSFTP(opts); err == nil {
			t.Errorf("%s: the pusher started", what)
		}
	}
}
