//go:build linux

package gpio

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
	pgpio "periph.io/x/conn/v3/gpio"
)

// Line flags of the GPIO uAPI v2 (linux/gpio.h, enum gpio_v2_line_flag);
// x/sys/unix has the structures and ioctl numbers, not these.
const (
	lineFlagInput        = 1 << 2
	lineFlagEdgeRising   = 1 << 4
	lineFlagEdgeFalling  = 1 << 5
	lineFlagBiasPullUp   = 1 << 8
	lineFlagBiasPullDown = 1 << 9
)

// eventSize is the size of one struct gpio_v2_line_event.
const eventSize = int(unsafe.Sizeof(unix.GPIOV2LineEvent{}))

// consumer is the name the kernel shows for hazmon's requests (gpioinfo).
const consumer = "hazmon"

// inputFlags maps a pull and edge to uAPI v2 line flags.
func inputFlags(pull pgpio.Pull, edge pgpio.Edge) uint64 {
	flags := uint64(lineFlagInput)
	switch pull {
	case pgpio.PullUp:
		flags |= lineFlagBiasPullUp
	case pgpio.PullDown:
		flags |= lineFlagBiasPullDown
	}
	switch edge {
	case pgpio.RisingEdge:
		flags |= lineFlagEdgeRising
	case pgpio.FallingEdge:
		flags |= lineFlagEdgeFalling
	case pgpio.BothEdges:
		flags |= lineFlagEdgeRising | lineFlagEdgeFalling
	}
	return flags
}

// inputRequest is the GPIO_V2_GET_LINE_IOCTL request of one line.
func inputRequest(offset int, flags uint64) unix.GPIOV2LineRequest {
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = uint32(offset)
	req.Num_lines = 1
	copy(req.Consumer[:len(req.Consumer)-1], consumer)
	req.Config.Flags = flags
	return req
}

// requestInput requests line offset of the chip device as an input with
// flags and returns the request's file, non-blocking, so that reads of
// edge events honour read deadlines.
func requestInput(chip string, offset int, flags uint64) (*os.File, error) {
	c, err := os.OpenFile(chip, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req := inputRequest(offset, flags)
	if err := ioctl(c, unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(&req)); err != nil {
		return nil, fmt.Errorf("GPIO_V2_GET_LINE_IOCTL: %w", err)
	}
	fd := int(req.Fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("line request: set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("%s line %d", chip, offset)), nil
}

// readValue reads the level of the (single) line of request f.
func readValue(f *os.File) (high bool, err error) {
	v := unix.GPIOV2LineValues{Mask: 1}
	if err := ioctl(f, unix.GPIO_V2_LINE_GET_VALUES_IOCTL, unsafe.Pointer(&v)); err != nil {
		return false, fmt.Errorf("GPIO_V2_LINE_GET_VALUES_IOCTL: %w", err)
	}
	return v.Bits&1 == 1, nil
}

// ioctl runs ioctl req with arg on f's descriptor (held open meanwhile).
func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
