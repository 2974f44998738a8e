package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// bbolt's file format (go.etcd.io/bbolt/internal/common): a 16-byte page
// header, then on pages 0 and 1 the meta, in the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

type boltMeta struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

// precheck reads the meta pages and the freelist page of the file at path
// with plain reads, before bbolt maps it: bbolt's Open itself touches
// them, and a fault or panic there would leave the file locked by a
// handle this process never got back. A truncated file (its high water
// mark beyond the end) or a freelist page that is not one is damage. A
// missing or empty file passes (bbolt creates it).
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file: %w", path, syscall.EISDIR)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	ps := int64(os.Getpagesize())
	buf := make([]byte, 2*ps)
	if _, err := f.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %d bytes, less than two pages", errDamaged, size)
		}
		return err
	}
	var best *boltMeta
	for i := range 2 {
		if m, ok := parseMeta(buf[int64(i)*ps+pageHeaderSize:]); ok && (best == nil || m.txid > best.txid) {
			best = &m
		}
	}
	if best == nil {
		return nil // bbolt says it (ErrInvalid, a version mismatch) without touching more
	}
	ps = int64(best.pageSize)
	if ps == 0 || best.pgid*uint64(ps) > uint64(size) {
		return fmt.Errorf("%w: truncated: the high water mark is page %d, the file holds %d pages", errDamaged, best.pgid, size/max(ps, 1))
	}
	if best.root < 2 || best.root >= best.pgid {
		return fmt.Errorf("%w: root page %d outside the file's %d pages", errDamaged, best.root, best.pgid)
	}
	if best.freelist == noFreelist {
		return nil
	}
	if best.freelist < 2 || best.freelist >= best.pgid {
		return fmt.Errorf("%w: freelist page %d outside the file's %d pages", errDamaged, best.freelist, best.pgid)
	}
	hdr := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(hdr, int64(best.freelist)*ps); err != nil {
		return fmt.Errorf("%w: freelist page %d: %v", errDamaged, best.freelist, err)
	}
	flags, count, overflow := binary.NativeEndian.Uint16(hdr[8:]), uint64(binary.NativeEndian.Uint16(hdr[10:])), uint64(binary.NativeEndian.Uint32(hdr[12:]))
	if flags != freelistPageFlag {
		return fmt.Errorf("%w: page %d is not the freelist (flags %#x)", errDamaged, best.freelist, flags)
	}
	if count == 0xFFFF {
		count = binary.NativeEndian.Uint64(hdr[16:]) + 1
	}
	if best.freelist+overflow >= best.pgid || count*8 > (overflow+1)*uint64(ps) {
		return fmt.Errorf("%w: freelist page %d: %d ids in %d pages", errDamaged, best.freelist, count, overflow+1)
	}
	return nil
}

func parseMeta(b []byte) (boltMeta, bool) {
	e := binary.NativeEndian
	if e.Uint32(b) != boltMagic || e.Uint32(b[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if h.Sum64() != e.Uint64(b[56:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: e.Uint32(b[8:]), root: e.Uint64(b[16:]), freelist: e.Uint64(b[32:]), pgid: e.Uint64(b[40:]), txid: e.Uint64(b[48:])}, true
}

// closeLeaked closes this process's descriptors of path: bbolt's Open
// panicked after locking the file and the handle never came back.
func closeLeaked(path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == abs {
			_ = syscall.Close(fd)
		}
	}
}
