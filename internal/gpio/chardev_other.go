//go:build !linux

package gpio

import (
	"errors"
	"os"

	pgpio "periph.io/x/conn/v3/gpio"
)

// eventSize is the size of one struct gpio_v2_line_event.
const eventSize = 48

var errNoCharDev = errors.New("GPIO character device: Linux only")

func inputFlags(pgpio.Pull, pgpio.Edge) uint64 { return 0 }

func requestInput(string, int, uint64) (*os.File, error) { return nil, errNoCharDev }

func readValue(*os.File) (bool, error) { return false, errNoCharDev }
