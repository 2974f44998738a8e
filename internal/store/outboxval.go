package store

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// An outbox record is the message's oldest sample time (unix ms, 8 bytes),
// its record count (4 bytes) and its payload. A payload of at least
// zipMin bytes is stored compressed (zlib at flate.BestSpeed) when that is
// smaller: the top bit of the count says so, and the 8-byte first record
// number of the message and a CRC-32 (IEEE) of the 20 bytes of header and
// first record number come before the compressed bytes. A telemetry
// message of 500 readings shrinks about tenfold, so the disk (the flash
// of the boards) sees a tenth of the bytes, for about 0.1 ms of CPU per
// 50 kB here. zlib's Adler-32 makes a damaged compressed payload fail to
// read (bbolt keeps no checksum of its own): Outbox does not offer it,
// and the next commit removes it, named by a data_loss event (reason
// unreadable) with its records (noteUnreadable). A flip of the flag bit
// to clear is caught by the header's CRC-32 (zipFirst), and the record
// read as compressed; one that sets it on a plain record makes that record
// fail its check (damaged, as above). Files written before compression
// hold plain payloads, read as they are.
const (
	zipMin  = 512
	zipFlag = 1 << 31
	zipHdr  = outboxHdr + 12 // and the first record number and the header's CRC-32
	// zipMaxOut bounds what one compressed payload may inflate to (a
	// message is at most formAheadBytes); past it the record is damaged.
	zipMaxOut = 64 << 20
)

// outboxCodec compresses the payloads of one writer (not safe for
// concurrent use; the writer's goroutine alone encodes).
type outboxCodec struct {
	buf bytes.Buffer
	zw  *zlib.Writer
}

// value encodes m's outbox record.
func (c *outboxCodec) value(m Message) []byte {
	if len(m.Payload) >= zipMin {
		c.buf.Reset()
		if c.zw == nil {
			c.zw, _ = zlib.NewWriterLevel(&c.buf, flate.BestSpeed) // err only for a bad level
		} else {
			c.zw.Reset(&c.buf)
		}
		_, werr := c.zw.Write(m.Payload)
		if cerr := c.zw.Close(); werr == nil && cerr == nil && c.buf.Len()+8 < len(m.Payload) {
			v := make([]byte, zipHdr+c.buf.Len())
			binary.BigEndian.PutUint64(v, uint64(m.OldestTS.UnixMilli()))
			binary.BigEndian.PutUint32(v[8:], uint32(m.Items)|zipFlag)
			binary.BigEndian.PutUint64(v[outboxHdr:], m.First)
			binary.BigEndian.PutUint32(v[outboxHdr+8:], crc32.ChecksumIEEE(v[:outboxHdr+8]))
			copy(v[zipHdr:], c.buf.Bytes())
			return v
		}
	}
	v := make([]byte, outboxHdr+len(m.Payload))
	binary.BigEndian.PutUint64(v, uint64(m.OldestTS.UnixMilli()))
	binary.BigEndian.PutUint32(v[8:], uint32(m.Items))
	copy(v[outboxHdr:], m.Payload)
	return v
}

// outboxItems is the record count of an outbox record (len(v) >= outboxHdr).
func outboxItems(v []byte) int64 {
	return int64(binary.BigEndian.Uint32(v[8:]) &^ zipFlag)
}

var (
	zipReaders sync.Pool // of io.ReadCloser implementing zlib.Resetter
	zipBufs    sync.Pool // of *bytes.Buffer
)

// decodeOutbox reads an outbox record into a Message of stream and seq
// (the payload is a copy: v belongs to a transaction). An error means the
// record is damaged.
func decodeOutbox(stream Stream, seq uint64, v []byte) (Message, error) {
	if len(v) < outboxHdr {
		return Message{}, fmt.Errorf("outbox record %s/%d: %d bytes, shorter than its header", stream, seq, len(v))
	}
	m := Message{Stream: stream, Seq: seq, OldestTS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))), Items: int(outboxItems(v))}
	flagged := binary.BigEndian.Uint32(v[8:])&zipFlag != 0
	first, ok := zipFirst(v)
	switch {
	case !flagged && !ok:
		m.Payload = bytes.Clone(v[outboxHdr:])
		return m, nil
	case !ok:
		return Message{}, fmt.Errorf("outbox record %s/%d: compressed, header damaged (%d bytes)", stream, seq, len(v))
	}
	p, err := inflate(v[zipHdr:])
	switch {
	case err != nil && !flagged: // plain after all: its bytes matched the CRC by chance (2^-32)
		m.Payload = bytes.Clone(v[outboxHdr:])
		return m, nil
	case err != nil:
		return Message{}, fmt.Errorf("outbox record %s/%d: compressed payload unreadable (damaged): %w", stream, seq, err)
	}
	m.First, m.Payload = first, p
	if m.Items > 0 {
		m.Last = m.First + uint64(m.Items) - 1
	}
	return m, nil
}

// zipFirst returns the first record number of the outbox record v; ok is
// false unless v holds a compressed record's whole header and the
// header's CRC-32 matches (a plain record does not keep its first number).
// The CRC is taken with the flag set, as it was written, so a record whose
// flag bit alone flipped is still known as compressed (decodeOutbox reads
// it as one if it inflates: a plain one passes the CRC only by chance).
func zipFirst(v []byte) (first uint64, ok bool) {
	if len(v) < zipHdr {
		return 0, false
	}
	var count [4]byte
	binary.BigEndian.PutUint32(count[:], binary.BigEndian.Uint32(v[8:])|zipFlag)
	crc := crc32.Update(crc32.ChecksumIEEE(v[:8]), crc32.IEEETable, count[:])
	crc = crc32.Update(crc, crc32.IEEETable, v[outboxHdr:outboxHdr+8])
	if binary.BigEndian.Uint32(v[outboxHdr+8:]) != crc {
		return 0, false
	}
	return binary.BigEndian.Uint64(v[outboxHdr:]), true
}

// inflate decompresses a zlib stream of at most zipMaxOut bytes, checked
// by its Adler-32.
func inflate(body []byte) ([]byte, error) {
	var r io.ReadCloser
	var err error
	if p, ok := zipReaders.Get().(io.ReadCloser); ok {
		r, err = p, p.(zlib.Resetter).Reset(bytes.NewReader(body), nil)
	} else {
		r, err = zlib.NewReader(bytes.NewReader(body))
	}
	if err != nil {
		return nil, err
	}
	defer zipReaders.Put(r)
	out, _ := zipBufs.Get().(*bytes.Buffer)
	if out == nil {
		out = new(bytes.Buffer)
	}
	out.Reset()
	n, err := out.ReadFrom(io.LimitReader(r, zipMaxOut+1))
	if err == nil && n > zipMaxOut {
		err = errors.New("inflates past its bound")
	}
	p := bytes.Clone(out.Bytes()) // exactly its length: it waits for its PUBACK
	if out.Cap() <= 4<<20 {
		zipBufs.Put(out)
	}
	return p, err
}

// unreadableMsg is an outbox record Outbox could not read: its header's
// oldest sample time, record count and (when known) first record number.
type unreadableMsg struct {
	seq    uint64
	ts     int64
	n      int64
	first  uint64
	reason error
}

// badOutbox describes the damaged outbox record v of seq.
func badOutbox(seq uint64, v []byte, err error) unreadableMsg {
	b := unreadableMsg{seq: seq, reason: err}
	if len(v) >= outboxHdr {
		b.ts, b.n = int64(binary.BigEndian.Uint64(v)), outboxItems(v)
		b.first, _ = zipFirst(v)
	}
	return b
}

// noteUnreadable handles the damaged outbox records Outbox met, each once
// per run: it is logged, the next commit removes it from the file (so it
// no longer holds the outbox's depth, age and the shutdown's drain), and a
// data_loss event (reason unreadable) names its records: by rec when the
// record says its first one, else by count and time only.
func (s *Store) noteUnreadable(stream Stream, bad []unreadableMsg) {
	for _, b := range bad {
		s.mu.Lock()
		if s.unreadable == nil {
			s.unreadable = map[Stream]map[uint64]bool{}
		}
		if s.unreadable[stream] == nil {
			s.unreadable[stream] = map[uint64]bool{}
		}
		seen := s.unreadable[stream][b.seq]
		if !seen && !s.readOnly {
			s.unreadable[stream][b.seq] = true
			l := s.lanes[stream]
			l.dropMsgs = append(l.dropMsgs, b.seq)
			now := s.opts.Now().UnixMilli()
			ts := b.ts
			if ts <= 0 {
				ts = now
			}
			detail := fmt.Sprintf("%s=%d outbox message seq %d damaged in the buffer file: removed, not sent", stream, b.n, b.seq)
			if b.n <= 0 { // the count itself is unreadable: at least one record
				b.n, detail = 1, detail+" (record count unreadable)"
			}
			e := contract.Event{V: contract.Version, Type: contract.EventDataLoss, TS: now, FromTS: ts, ToTS: ts, Readings: b.n,
				Reason: ReasonUnreadable, Stream: string(stream), Detail: detail}
			if b.first > 0 && b.n > 0 {
				e.Rec = []uint64{b.first, b.first + uint64(b.n) - 1}
			}
			s.queueEventLocked(e)
			s.wakeLocked()
		}
		s.mu.Unlock()
		if !seen {
			s.log.Error("buffer: outbox message unreadable, not sent; removed and reported as data_loss", "stream", stream, "seq", b.seq, "err", b.reason)
		}
	}
}
