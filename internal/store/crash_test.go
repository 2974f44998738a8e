package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	envHelperPath  = "HAZMON_STORE_HELPER_PATH"
	envHelperStart = "HAZMON_STORE_HELPER_START"
	envHelperGroup = "HAZMON_STORE_HELPER_COMMIT_INTERVAL"
)

// TestHelperProcess is not a test: re-executed by TestStore_KillNine, it
// appends records from 4 goroutines and prints each id once its Append
// returned (committed), until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(envHelperPath)
	if path == "" {
		t.Skip("helper process for TestStore_KillNine")
	}
	start, _ := strconv.Atoi(os.Getenv(envHelperStart))
	interval, _ := time.ParseDuration(os.Getenv(envHelperGroup))
	s, err := Open(path, Options{Logger: quiet, CommitInterval: interval})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	out := make(chan int, 1024)
	for w := 0; w < 4; w++ {
		go func() {
			for i := start + w; ; i += 4 {
				if err := s.Append(context.Background(), Telemetry, time.Now(), []byte(strconv.Itoa(i))); err != nil {
					fmt.Println("append error:", err)
					os.Exit(3)
				}
				out <- i
			}
		}()
	}
	fmt.Println("ready")
	w := bufio.NewWriter(os.Stdout)
	for i := range out {
		fmt.Fprintln(w, i)
		if len(out) == 0 {
			w.Flush()
		}
	}
}

func TestStore_KillNine(t *testing.T) { killNine(t, 0) }

// With a group-commit window, Append returns only once its window was
// committed: what it confirmed survives kill -9 all the same.
func TestStore_KillNineGroupCommit(t *testing.T) { killNine(t, 50*time.Millisecond) }

func killNine(t *testing.T, interval time.Duration) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "buffer.db")
	committed := map[int]bool{}
	start := 0
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), envHelperPath+"="+path, envHelperStart+"="+strconv.Itoa(start), envHelperGroup+"="+interval.String())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: helper said %q", round, sc.Text())
		}
		// Let it write for a while under load, then SIGKILL mid-commit.
		killed := time.AfterFunc(time.Duration(300+200*round)*time.Millisecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
		n := 0
		for sc.Scan() {
			v, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue // a partial last line cut by the kill
			}
			committed[v] = true
			n++
		}
		killed.Stop()
		cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: helper committed nothing", round)
		}
		start += 1 << 20

		s, err := Open(path, Options{Logger: quiet, LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		if s.Reset() != nil {
			t.Fatalf("round %d: file reset after kill -9: %v", round, s.Reset().Cause)
		}
		present := map[int]bool{}
		var seen int
		for _, it := range pendingItems(t, s, Telemetry) {
			v, _ := strconv.Atoi(string(it.Data))
			present[v] = true
			seen++
		}
		s.Close()
		for v := range committed {
			if !present[v] {
				t.Fatalf("round %d: record %d was committed (Append returned) but is missing after kill -9", round, v)
			}
		}
		t.Logf("round %d: %d committed this round, %d in file", round, n, seen)
	}
}

// pendingItems reads every pending item of stream straight from the file.
func pendingItems(t *testing.T, s *Store, st Stream) []Item {
	t.Helper()
	var items []Item
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(itemsBucket(st)).ForEach(func(k, v []byte) error {
			items = append(items, Item{ID: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v[itemHdr:]...)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}
