// Package statefile keeps the small records the agent must find again
// after a restart (how it last stopped, the alarms then active, the outputs
// of the last good config) in JSON files replaced atomically: written to a
// temporary file, fsync'd, renamed over the old one, and the folder
// fsync'd, so a power cut leaves either the old record or the new one,
// never a torn one.
package statefile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// MaxSize bounds a record read back: a larger file is not a state record.
const MaxSize = 4 << 20

// Write replaces the record at path with v encoded as JSON (mode 0600).
func Write(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("state %s: encode: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state %s: %w", path, err)
	}
	name := tmp.Name()
	defer os.Remove(name) // a no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("state %s: write: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state %s: close: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("state %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename is durable once the folder is
		d.Close()
	}
	return nil
}

// Read decodes the record at path into v. A missing file is an error
// wrapping os.ErrNotExist; a damaged one says so.
func Read(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("state %s: %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxSize {
		return fmt.Errorf("state %s: %d bytes is not a state record", path, st.Size())
	}
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("state %s: damaged: %w", path, err)
	}
	return nil
}
