package mtt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sfile is a file of kind t named at second s after upload, of size n.
func sfile(t FileType, s, n int) File {
	at := upload.Add(time.Duration(s) * time.Second)
	return File{Name: enc.FileName(t, at), Type: t, Data: bytes.Repeat([]byte("x"), n)}
}

func openSpool(t *testing.T, dir string, maxBytes int64, maxFiles int) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, maxBytes, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func kinds(names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n[13:17] + n[30:32] + " ")
	}
	return strings.TrimSpace(b.String())
}

// A Put leaves the whole file under its name and no temporary file; until
// the rename the file exists only under its temporary name, complete and
// fsynced; a temporary file left by a crash mid-write is removed on
// opening and never pushed, while whole files are kept.
func TestSpool_WritesAreAtomic(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, 0, 0)
	f := enc.Values(upload, []Value{{Point: "P", Value: Some(1), Time: upload}})
	if err := s.Put(f); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{f.Name}) {
		t.Fatalf("spool holds %v, want only %s", got, f.Name)
	}
	data, err := os.ReadFile(filepath.Join(dir, f.Name))
	if err != nil || !bytes.Equal(data, f.Data) {
		t.Fatalf("content %q, %v", data, err)
	}
	var seen []string
	testHookBeforeRename = func(tmp, final string) {
		data, err := os.ReadFile(tmp)
		_, ferr := os.Stat(final)
		seen = append(seen, fmt.Sprintf("tmp %d bytes %v, final exists %v", len(data), err, ferr == nil))
	}
	defer func() { testHookBeforeRename = nil }()
	big := sfile(TypeCDDY, 1, 100000)
	if err := s.Put(big); err != nil {
		t.Fatal(err)
	}
	if want := "tmp 100000 bytes <nil>, final exists false"; len(seen) != 1 || seen[0] != want {
		t.Fatalf("before the rename: %v, want %q: a crash then must leave no partial file under the final name", seen, want)
	}
	half := sfile(TypeCDSS, 5, 10)
	if err := os.WriteFile(filepath.Join(dir, tmpPrefix+half.Name), half.Data[:4], 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("operator's"), 0o640); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, dir, 0, 0)
	if got := s2.Names(); !slices.Equal(got, []string{f.Name, big.Name}) {
		t.Fatalf("reopened spool lists %v, want %s", got, f.Name)
	}
	if got := dirNames(t, dir); slices.Contains(got, tmpPrefix+half.Name) || !slices.Contains(got, "notes.txt") {
		t.Fatalf("after reopen the directory holds %v: the interrupted write must go, others' files stay", got)
	}
}

// Beyond the file bound the oldest real-time file goes first, then the
// oldest statistics; definitions and abnormal records are never dropped,
// even beyond the bound; a new real-time file that cannot fit is itself
// dropped. Drops are counted per kind.
func TestSpool_BoundDropsOldestRealtimeFirstNeverDefinitionsOrAbnormal(t *testing.T) {
	s := openSpool(t, t.TempDir(), 0, 4)
	for _, f := range []File{sfile(TypeCDDY, 0, 10), sfile(TypeCDSS, 1, 10), sfile(TypeTJSJ, 2, 10), sfile(TypeCDSS, 3, 10)} {
		if err := s.Put(f); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		f    File
		want string
	}{
		{sfile(TypeYCBJ, 4, 10), "CDDY00 TJSJ02 CDSS03 YCBJ04"},         // oldest CDSS dropped
		{sfile(TypeCDSS, 5, 10), "CDDY00 TJSJ02 YCBJ04 CDSS05"},         // the next CDSS
		{sfile(TypeCDSS, 6, 10), "CDDY00 TJSJ02 YCBJ04 CDSS06"},         // and again
		{sfile(TypeYCBJ, 7, 10), "CDDY00 TJSJ02 YCBJ04 YCBJ07"},         // CDSS gone first
		{sfile(TypeCDDY, 8, 10), "CDDY00 YCBJ04 YCBJ07 CDDY08"},         // then TJSJ
		{sfile(TypeYCBJ, 9, 10), "CDDY00 YCBJ04 YCBJ07 CDDY08 YCBJ09"},  // over the bound: kept
		{sfile(TypeCDSS, 10, 10), "CDDY00 YCBJ04 YCBJ07 CDDY08 YCBJ09"}, // no room: the new CDSS is dropped
	}
	for _, st := range steps {
		if err := s.Put(st.f); err != nil {
			t.Fatal(err)
		}
		if got := kinds(s.Names()); got != st.want {
			t.Fatalf("after %s: %s, want %s", st.f.Name, got, st.want)
		}
	}
	d := s.Stats().Dropped
	if d[TypeCDSS] != 5 || d[TypeTJSJ] != 1 || d[TypeCDDY] != 0 || d[TypeYCBJ] != 0 {
		t.Fatalf("dropped %v, want 5 CDSS and 1 TJSJ", d)
	}
}

// The byte bound works the same way, and the directory matches the list.
func TestSpool_ByteBound(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, 100, 0)
	for i := range 5 {
		if err := s.Put(sfile(TypeCDSS, i, 30)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Files != 3 || st.Bytes != 90 || st.Dropped[TypeCDSS] != 2 {
		t.Fatalf("stats %+v, want 3 files of 90 bytes, 2 dropped", st)
	}
	if got := kinds(dirNames(t, dir)); got != "CDSS02 CDSS03 CDSS04" {
		t.Fatalf("directory %s", got)
	}
}

// A file handed out for upload is not dropped under it, and nothing leaves
// the spool before Done: a Release puts it back first in line.
func TestSpool_NothingLeavesBeforeConfirmation(t *testing.T) {
	s := openSpool(t, t.TempDir(), 0, 2)
	a, b := sfile(TypeCDSS, 0, 1), sfile(TypeCDSS, 1, 1)
	_ = s.Put(a)
	_ = s.Put(b)
	name, path, ok := s.Next()
	if !ok || name != a.Name {
		t.Fatalf("Next = %s %v", name, ok)
	}
	_ = s.Put(sfile(TypeCDSS, 2, 1)) // must drop b, not the busy a
	if got := kinds(s.Names()); got != "CDSS00 CDSS02" {
		t.Fatalf("spool %s: the file being uploaded was dropped", got)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	s.Release(name)
	if again, _, _ := s.Next(); again != a.Name {
		t.Fatalf("after Release Next = %s, want %s again", again, a.Name)
	}
	if err := s.Done(a.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("confirmed file still on disk: %v", err)
	}
	if got := kinds(s.Names()); got != "CDSS02" {
		t.Fatalf("spool %s", got)
	}
}

// A restart finds the files in push order (by name time, definitions
// before values of the same second) and remembers the newest name per
// kind, so new names come after them.
func TestSpool_ReopenFindsFilesInPushOrder(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, 0, 0)
	for _, f := range []File{sfile(TypeYCBJ, 3, 1), sfile(TypeCDSS, 1, 1), sfile(TypeCDSS, 0, 1), sfile(TypeCDDY, 1, 1)} {
		_ = s.Put(f)
	}
	s2 := openSpool(t, dir, 0, 0)
	if got := kinds(s2.Names()); got != "CDSS00 CDDY01 CDSS01 YCBJ03" {
		t.Fatalf("reopened order %s", got)
	}
	if got := s2.Latest(TypeCDSS); got != "20250301083001" {
		t.Fatalf("Latest(CDSS) = %s", got)
	}
	select {
	case <-s2.Notify():
	default:
		t.Fatal("a reopened spool with files does not signal the pusher")
	}
}

// A name that is not an MT/T file name, or already spooled, is refused.
func TestSpool_PutRefusesBadAndDuplicateNames(t *testing.T) {
	s := openSpool(t, t.TempDir(), 0, 0)
	if err := s.Put(File{Name: "x.txt", Type: TypeCDSS}); err == nil {
		t.Fatal("bad name accepted")
	}
	f := sfile(TypeCDSS, 0, 1)
	if err := s.Put(File{Name: f.Name, Type: TypeCDDY}); err == nil {
		t.Fatal("name of another kind accepted")
	}
	_ = s.Put(f)
	if err := s.Put(f); err == nil {
		t.Fatal("duplicate accepted")
	}
}
