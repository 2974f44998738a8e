package store

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rawOutbox returns the outbox records of stream in the closed file at path.
func rawOutbox(t *testing.T, path string, stream Stream) map[uint64][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[uint64][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(outboxBucket(stream)).ForEach(func(k, v []byte) error {
			out[binary.BigEndian.Uint64(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editOutbox changes the outbox record (stream, seq) of the closed file.
func editOutbox(t *testing.T, path string, stream Stream, seq uint64, edit func([]byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(outboxBucket(stream))
		return b.Put(u64key(seq), edit(bytes.Clone(b.Get(u64key(seq)))))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// formBoth forms a large message (200 records) and a small one (1 record)
// and closes the store; it returns their payloads by seq.
func formBoth(t *testing.T, path string) map[uint64][]byte {
	t.Helper()
	s := open(t, path, Options{NoSync: true})
	want := map[uint64][]byte{}
	appendN(t, s, Telemetry, 0, 200)
	big, ok, err := s.Form(Telemetry, 200, 0, joinBuild)
	if err != nil || !ok || len(big.Payload) < 2*zipMin {
		t.Fatalf("Form: %d bytes ok %v err %v", len(big.Payload), ok, err)
	}
	want[big.Seq] = big.Payload
	small := formOneMsg(t, s, 200)
	want[small.Seq] = small.Payload
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// A message of many readings is kept compressed in the file, and Outbox
// gives back its payload byte for byte after a restart (an exact repeat);
// a small one is kept as it is.
func TestOutbox_ALargePayloadIsStoredCompressedAndReadBackByteForByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	raw := rawOutbox(t, path, Telemetry)
	for seq, p := range want {
		v := raw[seq]
		zipped := binary.BigEndian.Uint32(v[8:])&zipFlag != 0
		switch {
		case len(p) >= zipMin && (!zipped || len(v)-outboxHdr >= len(p)/2):
			t.Errorf("seq %d: %d-byte payload stored in %d bytes, compressed %v; want compressed to less than half", seq, len(p), len(v)-outboxHdr, zipped)
		case len(p) < zipMin && (zipped || !bytes.Equal(v[outboxHdr:], p)):
			t.Errorf("seq %d: small payload stored compressed %v; want as it is", seq, zipped)
		}
		if n := outboxItems(v); zipped && n != 200 {
			t.Errorf("seq %d: record count %d, want 200 (the flag is not part of it)", seq, n)
		}
	}
	s := open(t, path, Options{NoSync: true})
	msgs, err := s.Outbox(Telemetry, 0, 0)
	if err != nil || len(msgs) != len(want) {
		t.Fatalf("Outbox after the restart: %d messages err %v; want %d", len(msgs), err, len(want))
	}
	for _, m := range msgs {
		if !bytes.Equal(m.Payload, want[m.Seq]) {
			t.Errorf("seq %d: payload after the restart differs from the one formed", m.Seq)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		kept, again := loadCounters(tx.Bucket(bucketMeta)), recount(tx, counters{})
		if i := streamIndex(Telemetry); kept.outrec[i] != 201 || again.outrec[i] != 201 {
			t.Errorf("outbox records: counter %d, recounted %d; want 201 (the flag is not counted)", kept.outrec[i], again.outrec[i])
		}
		return nil
	})
}

// A compressed payload damaged in the file (bbolt keeps no checksum; zlib
// does) is not sent; the other messages are. The next commit removes it,
// so it does not hold the outbox's depth and the shutdown's drain for
// ever, and a data_loss event (reason unreadable) names its 200 records.
func TestOutbox_ADamagedCompressedPayloadIsRemovedAndReportedAsLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	big, small := bigSmall(want)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { v[len(v)/2] ^= 0x40; return v })
	s := open(t, path, Options{NoSync: true})
	msgs, err := s.Outbox(Telemetry, 0, 0)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != small || !bytes.Equal(msgs[0].Payload, want[small]) {
		t.Fatalf("Outbox with seq %d damaged: %+v err %v; want only seq %d, intact", big, msgs, err, small)
	}
	waitUntil(t, "the damaged message removed", func() bool {
		st, _ := s.Stats()
		return st.Streams[Telemetry].Outbox == 1 && !s.hasWork()
	})
	loss := dataLoss(t, s)
	if len(loss) != 1 || loss[0].Reason != ReasonUnreadable || loss[0].Readings != 200 || len(loss[0].Rec) != 2 ||
		loss[0].Rec[0] != 1 || loss[0].Rec[1] != 200 {
		t.Fatalf("data_loss events %+v; want one, unreadable, 200 readings, rec [1,200]", loss)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if raw := rawOutbox(t, path, Telemetry); len(raw) != 1 || raw[small] == nil {
		t.Fatalf("outbox in the file after the restart: %d records; want only seq %d", len(raw), small)
	}
}

// A flip of the compressed flag itself (bbolt keeps no checksum) is caught
// by the header's CRC-32: the message is still read as compressed and sent
// intact, not published as its compressed bytes.
func TestOutbox_AFlippedCompressedFlagIsStillReadAsCompressed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	big, _ := bigSmall(want)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { v[8] &^= zipFlag >> 24; return v })
	s := open(t, path, Options{NoSync: true})
	msgs, err := s.Outbox(Telemetry, 0, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Outbox: %d messages, err %v; want both", len(msgs), err)
	}
	for _, m := range msgs {
		if !bytes.Equal(m.Payload, want[m.Seq]) {
			t.Errorf("seq %d: payload %.40q..., want the message as formed", m.Seq, m.Payload)
		}
		if m.Seq == big && (m.First != 1 || m.Last != 200) {
			t.Errorf("seq %d: records %d-%d, want 1-200", m.Seq, m.First, m.Last)
		}
	}
	waitUntil(t, "idle", func() bool { return !s.hasWork() })
	if loss := dataLoss(t, s); len(loss) != 0 {
		t.Fatalf("data_loss %+v; want none", loss)
	}
}

// A reset's salvage does not count a compressed message that fails its
// check as salvaged (the buffer_reset event would promise it again): it is
// lost.
func TestSalvage_AnUnreadableCompressedMessageIsLostNotSalvaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	big, small := bigSmall(want)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { v[len(v)/2] ^= 0x40; return v })
	editOutbox(t, path, Telemetry, small, func(v []byte) []byte { return v[:5] }) // the open check finds this: a reset
	s := open(t, path, Options{NoSync: true})
	r := s.Reset()
	if r == nil || r.Salvaged != 0 || r.Lost != 201 {
		t.Fatalf("reset %+v; want salvaged 0, lost 201", r)
	}
}

// A decoded payload holds its length, not the inflater's growth: it waits
// in memory for its PUBACK.
func TestOutbox_ADecodedPayloadKeepsNoSpareCapacity(t *testing.T) {
	var c outboxCodec
	p := bytes.Repeat([]byte(`{"sensor":"CH4-101","value":0.42},`), 400)
	m, err := decodeOutbox(Telemetry, 1, c.value(Message{Payload: p, Items: 400, First: 7}))
	if err != nil || !bytes.Equal(m.Payload, p) || m.First != 7 || m.Last != 406 {
		t.Fatalf("decode: %d bytes first %d last %d err %v", len(m.Payload), m.First, m.Last, err)
	}
	if cap(m.Payload) > len(p)+len(p)/8 {
		t.Fatalf("payload of %d bytes holds a capacity of %d", len(p), cap(m.Payload))
	}
}

// A file written before compression holds plain payloads of any size:
// they are read as they are.
func TestOutbox_APlainPayloadOfAnOlderFileIsReadAsItIs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	big, _ := bigSmall(want)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte {
		plain := make([]byte, outboxHdr, outboxHdr+len(want[big]))
		copy(plain, v[:8])
		binary.BigEndian.PutUint32(plain[8:], 200)
		return append(plain, want[big]...)
	})
	s := open(t, path, Options{NoSync: true})
	msgs, err := s.Outbox(Telemetry, 0, 0)
	if err != nil || len(msgs) != 2 || msgs[0].Seq != big || !bytes.Equal(msgs[0].Payload, want[big]) || msgs[0].Items != 200 {
		t.Fatalf("Outbox of a plain large record: %+v err %v", msgs, err)
	}
}

// bigSmall tells formBoth's large (compressed) message from its small one.
func bigSmall(want map[uint64][]byte) (big, small uint64) {
	for seq, p := range want {
		if len(p) >= zipMin {
			big = seq
		} else {
			small = seq
		}
	}
	return big, small
}

// damagedBig forms formBoth's two messages and damages the large one's
// compressed bytes; it returns the seqs of the large and the small one.
func damagedBig(t *testing.T, path string) (big, small uint64) {
	t.Helper()
	big, small = bigSmall(formBoth(t, path))
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { v[len(v)/2] ^= 0x40; return v })
	return big, small
}

// A damaged message is removed only by a round that also writes its
// data_loss record: with the event deferred behind a backlog (MaxBatch),
// a crash between the two left it removed and never reported.
func TestOutbox_ADamagedMessageIsNotRemovedBeforeItsDataLossIsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	big, _ := damagedBig(t, path)
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, MaxBatch: 2, BeforeCommit: g.before})
	t.Cleanup(g.open)
	waitUntil(t, "idle", func() bool { return !s.hasWork() })
	g.armed.Store(true)
	queueN(t, s, Alarm, 0, 5)
	<-g.entered // round 1 (alarms 1-2) waits to commit
	if _, err := s.Outbox(Telemetry, 0, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 { // let round 1 and round 2 (alarms 3-4, the event deferred) commit
		g.release <- struct{}{}
		<-g.entered
	}
	crashed := crashCopy(t, path)
	removed := rawOutbox(t, crashed, Telemetry)[big] == nil
	s2 := open(t, crashed, Options{NoSync: true})
	if loss := dataLoss(t, s2); removed && len(loss) == 0 {
		t.Fatal("after the crash the damaged message is gone from the file and no data_loss names it")
	}
}

// A damaged record whose count reads 0 is still reported as at least one
// record lost: the event schema requires readings.
func TestOutbox_ADamagedMessageWithoutACountIsReportedAsValidDataLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	big, _ := damagedBig(t, path)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { binary.BigEndian.PutUint32(v[8:], zipFlag); return v })
	s := open(t, path, Options{NoSync: true})
	if _, err := s.Outbox(Telemetry, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the damaged message removed", func() bool { return !s.hasWork() })
	if loss := dataLoss(t, s); len(loss) != 1 || loss[0].Readings != 1 || loss[0].Rec != nil { // dataLoss validates each
		t.Fatalf("data_loss %+v; want one, 1 reading, no rec (the header fails its check)", loss)
	}
}

// The first record number of a compressed record is checked with its
// header (CRC-32): a damaged one is not trusted, so a reset does not push
// rec up by 2^62 from it.
func TestSalvage_ADamagedFirstRecIsNotTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	want := formBoth(t, path)
	big, small := bigSmall(want)
	editOutbox(t, path, Telemetry, big, func(v []byte) []byte { v[outboxHdr] ^= 0x40; return v })
	editOutbox(t, path, Telemetry, small, func(v []byte) []byte { return v[:5] }) // forces a reset
	s := open(t, path, Options{NoSync: true})
	if m := formOneMsg(t, s, 10); m.First > 1000 {
		t.Fatalf("next rec after the reset %d; want about 202", m.First)
	}
}
