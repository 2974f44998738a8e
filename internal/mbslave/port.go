package mbslave

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// speedCode returns the termios speed code of baud.
func speedCode(baud int) (uint32, bool) {
	switch baud {
	case 1200:
		return unix.B1200, true
	case 2400:
		return unix.B2400, true
	case 4800:
		return unix.B4800, true
	case 9600:
		return unix.B9600, true
	case 19200:
		return unix.B19200, true
	case 38400:
		return unix.B38400, true
	case 57600:
		return unix.B57600, true
	case 115200:
		return unix.B115200, true
	}
	return 0, false
}

// OpenPort opens a serial device (or one end of a pty pair) for ServeRTU:
// raw mode, 8 data bits, parity 'N', 'E' or 'O' (one stop bit), at baud
// (one of 1200..115200; a pty ignores the speed). The returned file supports
// read deadlines, so ServeRTU can stop cleanly. The caller closes it.
func OpenPort(device string, baud int, parity byte) (*os.File, error) {
	speed, ok := speedCode(baud)
	if !ok {
		return nil, fmt.Errorf("serial %s: unsupported baud %d", device, baud)
	}
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("serial %s: %w", device, err)
	}
	if err := setRaw(f, speed, parity); err != nil {
		f.Close()
		return nil, fmt.Errorf("serial %s: %w", device, err)
	}
	return f, nil
}

// setRaw puts the tty f in raw mode (like cfmakeraw) with the given speed
// and parity.
func setRaw(f *os.File, speed uint32, parity byte) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	err = sc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			terr = fmt.Errorf("get termios: %w", err)
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CBAUD | unix.CRTSCTS
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
		switch parity {
		case 'N', 0:
		case 'E':
			t.Cflag |= unix.PARENB
		case 'O':
			t.Cflag |= unix.PARENB | unix.PARODD
		default:
			terr = fmt.Errorf("parity %q: want N, E or O", parity)
			return
		}
		t.Ispeed, t.Ospeed = speed, speed
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(int(fd), unix.TCSETS, t); err != nil {
			terr = fmt.Errorf("set termios: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return terr
}
