package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hazmon/hazmon/internal/store"
)

// LockFile is the file in agent.data_dir whose lock marks the running
// agent, taken before the agent touches any output: two agents on one
// data_dir would drive the same outputs and share a buffer.
const LockFile = "agent.lock"

// instanceLock holds LockFile's lock (nil: none could be taken).
type instanceLock struct{ f *os.File }

// lockInstance takes the agent lock of dir without waiting. Another agent
// holding it is an error wrapping store.ErrInUse. A data_dir that cannot
// hold the file (missing and not creatable, read-only) is no reason not to
// monitor: the lock is skipped and the error returned as a warning.
func lockInstance(dir string) (l *instanceLock, warn, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return &instanceLock{}, fmt.Errorf("data_dir %s: %w", dir, err), nil
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return &instanceLock{}, fmt.Errorf("agent lock %s: %w", path, err), nil
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("data_dir %s: another agent runs on it: %w", dir, store.ErrInUse)
		}
		return &instanceLock{}, fmt.Errorf("agent lock %s: %w", path, err), nil
	}
	return &instanceLock{f: f}, nil, nil
}

// release lets the lock go.
func (l *instanceLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
