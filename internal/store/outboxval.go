package store

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"
)

// An outbox record is the message's oldest sample time (unix ms, 8 bytes),
// its record count (4 bytes) and its payload. A payload of at least
// zipMin bytes is stored compressed (zlib at flate.BestSpeed) when that is
// smaller: the top bit of the count says so. A telemetry message of 500
// readings shrinks about tenfold, so the disk (the flash of the boards)
// sees a tenth of the bytes, for about 0.1 ms of CPU per 50 kB here.
// zlib's Adler-32 makes a damaged compressed payload fail to read
// (bbolt keeps no checksum of its own); the message is then not sent.
// Files written before compression hold plain payloads, read as they are.
const (
	zipMin  = 512
	zipFlag = 1 << 31
)

// outboxCodec compresses the payloads of one writer (not safe for
// concurrent use; the writer's goroutine alone encodes).
type outboxCodec struct {
	buf bytes.Buffer
	zw  *zlib.Writer
}

// value encodes m's outbox record.
func (c *outboxCodec) value(m Message) []byte {
	payload, n := m.Payload, uint32(m.Items)
	if len(payload) >= zipMin {
		c.buf.Reset()
		if c.zw == nil {
			c.zw, _ = zlib.NewWriterLevel(&c.buf, flate.BestSpeed) // err only for a bad level
		} else {
			c.zw.Reset(&c.buf)
		}
		_, werr := c.zw.Write(payload)
		if cerr := c.zw.Close(); werr == nil && cerr == nil && c.buf.Len() < len(payload) {
			payload, n = c.buf.Bytes(), n|zipFlag
		}
	}
	v := make([]byte, outboxHdr+len(payload))
	binary.BigEndian.PutUint64(v, uint64(m.OldestTS.UnixMilli()))
	binary.BigEndian.PutUint32(v[8:], n)
	copy(v[outboxHdr:], payload)
	return v
}

// outboxItems is the record count of an outbox record (len(v) >= outboxHdr).
func outboxItems(v []byte) int64 {
	return int64(binary.BigEndian.Uint32(v[8:]) &^ zipFlag)
}

var zipReaders sync.Pool // of io.ReadCloser implementing zlib.Resetter

// decodeOutbox reads an outbox record into a Message of stream and seq
// (the payload is a copy: v belongs to a transaction).
func decodeOutbox(stream Stream, seq uint64, v []byte) (Message, error) {
	if len(v) < outboxHdr {
		return Message{}, fmt.Errorf("outbox record %s/%d: %d bytes, shorter than its header", stream, seq, len(v))
	}
	m := Message{Stream: stream, Seq: seq, OldestTS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))), Items: int(outboxItems(v))}
	body := v[outboxHdr:]
	if binary.BigEndian.Uint32(v[8:])&zipFlag == 0 {
		m.Payload = bytes.Clone(body)
		return m, nil
	}
	var r io.ReadCloser
	var err error
	if p, ok := zipReaders.Get().(io.ReadCloser); ok {
		r, err = p, p.(zlib.Resetter).Reset(bytes.NewReader(body), nil)
	} else {
		r, err = zlib.NewReader(bytes.NewReader(body))
	}
	if err == nil {
		var out bytes.Buffer
		out.Grow(8 * len(body))
		if _, err = out.ReadFrom(r); err == nil {
			m.Payload = out.Bytes()
		}
		zipReaders.Put(r)
	}
	if err != nil {
		return Message{}, fmt.Errorf("outbox record %s/%d: compressed payload unreadable (damaged): %w", stream, seq, err)
	}
	return m, nil
}

// unreadableMsg is an outbox record Outbox could not read.
type unreadableMsg struct {
	seq uint64
	err error
}

// noteUnreadable logs each unreadable outbox record once: it is not
// sent (nor exported), and stays in the file.
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
		s.unreadable[stream][b.seq] = true
		s.mu.Unlock()
		if !seen {
			s.log.Error("buffer: outbox message unreadable, not sent", "stream", stream, "seq", b.seq, "err", b.err)
		}
	}
}
