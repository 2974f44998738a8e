package mbslave_test

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// rtuRaw starts an RTU slave on b and returns the client end of its pty,
// opened for raw frames.
func rtuRaw(t *testing.T, b *mbslave.Bank) func(req []byte, want int, d time.Duration) []byte {
	t.Helper()
	p := rawPort(t, mbslavetest.StartRTU(t, b, 0))
	return func(req []byte, want int, d time.Duration) []byte {
		if req != nil {
			if _, err := p.Write(req); err != nil {
				t.Fatal(err)
			}
		}
		return readFor(t, p, want, d)
	}
}

func TestRTUFaults_DuplicateEchoAndLostReplies(t *testing.T) {
	req := frame(1, 3, 0, 0, 0, 1)
	reply := frame(1, 3, 2, 0, 42)
	t.Run("duplicate", func(t *testing.T) {
		b := mbslave.NewBank()
		b.SetHolding(1, 0, 42)
		b.SetFault(1, mbslave.Fault{Duplicate: 50 * time.Millisecond})
		x := rtuRaw(t, b)
		if got := x(req, len(reply), 5*time.Second); !slices.Equal(got, reply) {
			t.Fatalf("reply % x, want % x", got, reply)
		}
		if got := x(nil, len(reply), 5*time.Second); !slices.Equal(got, reply) {
			t.Fatalf("second copy % x, want % x", got, reply)
		}
	})
	t.Run("echo", func(t *testing.T) {
		b := mbslave.NewBank()
		b.SetHolding(1, 0, 42)
		b.SetEcho(true)
		x := rtuRaw(t, b)
		want := append(slices.Clone(req), reply...)
		if got := x(req, len(want), 5*time.Second); !slices.Equal(got, want) {
			t.Fatalf("line gave % x, want the echo then the reply % x", got, want)
		}
		// Absent units and broadcasts are echoed too: it is the adapter.
		absent := frame(9, 3, 0, 0, 0, 1)
		if got := x(absent, len(absent)+1, 300*time.Millisecond); !slices.Equal(got, absent) {
			t.Fatalf("line gave % x, want only the echo % x", got, absent)
		}
	})
	t.Run("every 3rd lost", func(t *testing.T) {
		b := mbslave.NewBank()
		b.AddUnit(1)
		b.SetFault(1, mbslave.Fault{DropEvery: 3})
		x := rtuRaw(t, b)
		for i := 1; i <= 6; i++ {
			w := frame(1, 6, 0, 7, 0, byte(i)) // write register 7 = i
			got := x(w, len(w), 300*time.Millisecond)
			if lost := i%3 == 0; lost != (len(got) == 0) {
				t.Fatalf("request %d: reply % x, want lost = %v", i, got, lost)
			}
			if v := b.Holding(1, 7); v != uint16(i) {
				t.Fatalf("request %d: register 7 = %d, want %d (executed even when the reply is lost)", i, v, i)
			}
		}
	})
}

// DropProb loses the same replies for the same seed.
func TestRTUFaults_RandomLossReproducibleFromSeed(t *testing.T) {
	pattern := func() []bool {
		b := mbslave.NewBank()
		b.SetHolding(1, 0, 42)
		b.SetFault(1, mbslave.Fault{DropProb: 0.5, Seed: 7})
		x := rtuRaw(t, b)
		var lost []bool
		for range 12 {
			lost = append(lost, len(x(frame(1, 3, 0, 0, 0, 1), 7, 150*time.Millisecond)) == 0)
		}
		return lost
	}
	a, b := pattern(), pattern()
	if !slices.Equal(a, b) || !slices.Contains(a, true) || !slices.Contains(a, false) {
		t.Fatalf("losses %v then %v: want the same mix of lost and delivered replies", a, b)
	}
}

// TCP: a corrupt MBAP header (protocol id, length field) as a broken
// gateway sends it.
func TestTCPFaults_CorruptMBAP(t *testing.T) {
	for _, c := range []struct {
		name          string
		fault         mbslave.Fault
		proto, length uint16
	}{
		{"protocol", mbslave.Fault{WrongProtocol: true}, 1, 5},
		{"length", mbslave.Fault{LengthSkew: 3}, 0, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mbslave.NewBank()
			b.SetHolding(1, 0, 42)
			b.SetFault(1, c.fault)
			conn, err := net.Dial("tcp", mbslavetest.StartTCP(t, b))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1})
			got := make([]byte, 11) // header + 03 02 00 2A, as sent whatever the header says
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatal(err)
			}
			if p, l := binary.BigEndian.Uint16(got[2:]), binary.BigEndian.Uint16(got[4:]); p != c.proto || l != c.length || !slices.Equal(got[7:], []byte{3, 2, 0, 42}) {
				t.Fatalf("reply % x: protocol %d length %d, want %d %d and PDU 03 02 00 2a", got, p, l, c.proto, c.length)
			}
		})
	}
}
