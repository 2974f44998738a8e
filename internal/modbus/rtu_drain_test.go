package modbus

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// A slave (or a repeater) that sends each reply twice, the second copy
// 3 ms after the first: the copy is drained, and reads of neighbouring
// registers alternating on it keep their own values. A read during which
// the slave's goroutine overslept the copy past the 5 ms settle time (a
// loaded host) is run again (timedTrials).
func TestRTU_DuplicateReplyNotTakenForNext(t *testing.T) {
	bank := distinctBank(1, 2)
	bank.SetFault(1, mbslave.Fault{Duplicate: 3 * time.Millisecond})
	// At 38400 baud t3.5 is 1.75 ms: the copy comes after it.
	dev := mbslavetest.StartRTU(t, bank, 38400)
	cl := openRTU(t, rtuBus(dev, 38400, 300*time.Millisecond), false)
	timedTrials(t, bank, 30, func(i, _ int) (time.Duration, error) {
		const bound = 2 * time.Millisecond // 3 ms + 2 ms = SettleTime(38400)
		addr := uint16(i % 2)
		data, err := cl.Read(1, TableHolding, addr, 1)
		if err != nil {
			return bound, fmt.Errorf("read %d: %w", i, err)
		}
		if got, want := word(data), valueAt(1, addr); got != want {
			return bound, fmt.Errorf("read %d of register %d = %d, want %d (the duplicate of the previous reply)", i, addr, got, want)
		}
		return bound, nil
	})
}

// A bus that has sent a duplicate settles longer: after copies 3 ms late
// (caught by SettleTime, 5 ms at 38400 baud; the bus learns to wait at
// least 2 × SettleTime = 10 ms), copies 7 ms late are drained too, instead
// of landing in the next transaction. The gaps keep 2 ms or more from each
// bound; a read during which the slave overslept a copy past its bound is
// run again (timedTrials).
func TestRTU_BusThatDuplicatesSettlesLonger(t *testing.T) {
	bank := distinctBank(1, 2)
	dev := mbslavetest.StartRTU(t, bank, 38400)
	cl := openRTU(t, rtuBus(dev, 38400, 300*time.Millisecond), false)
	timedTrials(t, bank, 24, func(i, valid int) (time.Duration, error) {
		gap, bound := 3*time.Millisecond, 2*time.Millisecond // SettleTime 5 ms
		if valid >= 4 {
			gap, bound = 7*time.Millisecond, 3*time.Millisecond // learned 10 ms
		}
		bank.SetFault(1, mbslave.Fault{Duplicate: gap})
		addr := uint16(i % 2)
		data, err := cl.Read(1, TableHolding, addr, 1)
		if err != nil {
			return bound, fmt.Errorf("read %d (copy %v late): %w", i, gap, err)
		}
		if got, want := word(data), valueAt(1, addr); got != want {
			return bound, fmt.Errorf("read %d (copy %v late) of register %d = %d, want %d", i, gap, addr, got, want)
		}
		return bound, nil
	})
}

// A reply that comes after its request timed out, but within the
// turnaround allowance, is drained before the next request to that
// slave, which gets its own answer (goburrow's transporter, and the
// flush-then-send of ours before, took the late one). The late reply is
// planned 60 ms after the request's timeout, 40 ms inside the 100 ms
// allowance; a run in which the script slave overslept it past the
// allowance (a loaded host) is run again, up to 5 times.
func TestRTU_LateReplyAfterTimeoutDrained(t *testing.T) {
	const timeout = 200 * time.Millisecond
	req := fromHex(t, "01 03 00 00 00 01 84 0A")
	for run := 0; ; run++ {
		sl, dev := newScriptSlave(t)
		cl := openRTU(t, rtuBus(dev, 9600, timeout), false)
		lateBy := make(chan time.Duration, 1) // the late reply's lead over the allowance's end
		go func() {
			defer close(lateBy)
			first, err := sl.expect(req, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(timeout + 60*time.Millisecond) // 60 ms after the client gave up
			sent, _ := sl.send(withCRC(1, 3, 2, 0, 111))
			lateBy <- sent.Sub(first) - timeout - DefaultTurnaround
			if _, err := sl.expect(req, 5*time.Second); err != nil {
				t.Error(err)
				return
			}
			sl.send(withCRC(1, 3, 2, 0, 112))
		}()
		if _, err := cl.Read(1, TableHolding, 0, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("first read: err = %v, want timeout", err)
		}
		data, err := cl.Read(1, TableHolding, 0, 1) // at once, as a retry would
		late := <-lateBy
		if err == nil && word(data) == 112 {
			return
		}
		if late > -10*time.Millisecond && run < 4 {
			t.Logf("run %d void: the late reply was written %v from the allowance's end (the script slave overslept): %v", run, late, err)
			continue
		}
		t.Fatalf("second read: % X, %v; want 112, not the late 111 (the late reply came %v from the allowance's end)", data, err, late)
	}
}

// A damaged frame where the reply should be, then the real reply tens of
// milliseconds later: the real reply answers this request, and the next
// request gets its own (the old early ErrCRC left the real reply to be
// read as the next answer).
func TestRTU_DamagedFrameThenReplyAnswersThisRequest(t *testing.T) {
	sl, dev := newScriptSlave(t)
	cl := openRTU(t, rtuBus(dev, 9600, 500*time.Millisecond), false)
	req0 := fromHex(t, "01 03 00 00 00 01 84 0A")
	req1 := fromHex(t, "01 03 00 01 00 01 D5 CA")
	go func() {
		if _, err := sl.expect(req0, 5*time.Second); err != nil {
			t.Error(err)
			return
		}
		bad := withCRC(1, 3, 2, 0, 99)
		bad[len(bad)-1] ^= 0xFF
		sl.send(bad)
		time.Sleep(40 * time.Millisecond)
		sl.send(withCRC(1, 3, 2, 0, 100))
		if _, err := sl.expect(req1, 5*time.Second); err != nil {
			t.Error(err)
			return
		}
		sl.send(withCRC(1, 3, 2, 0, 101))
	}()
	if data, err := cl.Read(1, TableHolding, 0, 1); err != nil || word(data) != 100 {
		t.Fatalf("register 0: % X, %v; want 100", data, err)
	}
	if data, err := cl.Read(1, TableHolding, 1, 1); err != nil || word(data) != 101 {
		t.Fatalf("register 1: % X, %v; want 101", data, err)
	}
}

// Two different replies to one request (a late frame and the answer, in
// either order): the answer is ambiguous, and the transaction fails
// instead of guessing.
func TestRTU_TwoDifferentRepliesAreAmbiguous(t *testing.T) {
	sl, dev := newScriptSlave(t)
	cl := openRTU(t, rtuBus(dev, 9600, 500*time.Millisecond), false)
	go func() {
		if _, err := sl.expect(fromHex(t, "01 03 00 00 00 01 84 0A"), 5*time.Second); err != nil {
			t.Error(err)
			return
		}
		sl.send(withCRC(1, 3, 2, 0, 111))
		time.Sleep(2 * time.Millisecond)
		sl.send(withCRC(1, 3, 2, 0, 112))
	}()
	if data, err := cl.Read(1, TableHolding, 0, 1); !errors.Is(err, ErrFrame) {
		t.Fatalf("read: % X, %v; want ErrFrame (ambiguous)", data, err)
	}
}

// On a real line a frame that is complete before the slave could have
// answered (the request still on the wire, then t3.5, then the frame's
// own length) is not the answer: a stale frame arriving at once is
// skipped, the slave's reply after it is taken.
func TestRTU_FrameBeforeSlaveCouldAnswerIsNotTheAnswer(t *testing.T) {
	sl, dev := newScriptSlave(t)
	cl := openRTU(t, rtuBus(dev, 9600, 500*time.Millisecond), true)
	go func() {
		if _, err := sl.expect(fromHex(t, "01 03 00 00 00 01 84 0A"), 5*time.Second); err != nil {
			t.Error(err)
			return
		}
		sl.send(withCRC(1, 3, 2, 0, 111)) // at once: 8+7 characters and t3.5 (17 ms) have not passed
		time.Sleep(40 * time.Millisecond)
		sl.send(withCRC(1, 3, 2, 0, 112))
	}()
	if data, err := cl.Read(1, TableHolding, 0, 1); err != nil || word(data) != 112 {
		t.Fatalf("read: % X, %v; want 112, not the early 111", data, err)
	}
}
