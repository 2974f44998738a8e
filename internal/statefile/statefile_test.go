package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rec struct {
	N    int      `json:"n"`
	Tags []string `json:"tags"`
}

// TestStatefile_RoundTripAndReplace: a record reads back as written; a
// second write replaces it; no temporary file is left behind.
func TestStatefile_RoundTripAndReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := Write(p, rec{N: 1, Tags: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, rec{N: 2}); err != nil {
		t.Fatal(err)
	}
	var got rec
	if err := Read(p, &got); err != nil || got.N != 2 {
		t.Fatalf("read %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
}

// TestStatefile_MissingAndDamaged: a missing record wraps os.ErrNotExist;
// a torn one is reported as damaged; an unwritable folder is an error.
func TestStatefile_MissingAndDamaged(t *testing.T) {
	dir := t.TempDir()
	var v rec
	if err := Read(filepath.Join(dir, "none.json"), &v); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	p := filepath.Join(dir, "torn.json")
	os.WriteFile(p, []byte(`{"n": 3, "ta`), 0o600)
	if err := Read(p, &v); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("torn: %v", err)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir.json"), v); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
}
