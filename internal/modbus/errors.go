package modbus

import (
	"errors"
	"fmt"

	gmodbus "github.com/goburrow/modbus"
)

// Sentinel errors of a Modbus transaction. Errors returned by this package
// wrap one of them (or an *ExceptionError), so callers test with errors.Is
// and errors.As; the wrapping adds the bus, slave and table context.
var (
	// ErrTimeout means no valid reply arrived within the bus timeout.
	ErrTimeout = errors.New("timeout")
	// ErrCRC means a reply addressed to us arrived with a bad CRC (RTU).
	ErrCRC = errors.New("CRC mismatch")
	// ErrFrame means the reply was malformed (bad MBAP header, wrong
	// length, reply from the wrong unit), ambiguous (two different
	// replies) or the adapter's echo was wrong, and was rejected.
	ErrFrame = errors.New("malformed reply")
	// ErrBusDown means the serial port or TCP connection is not usable
	// (open/connect failed, or the link failed mid-transaction). The
	// poller reconnects with backoff.
	ErrBusDown = errors.New("bus down")
	// ErrClosed is returned by Read and WriteCoil when the poller's Run
	// has returned.
	ErrClosed = errors.New("poller stopped")
	// ErrPortInUse means the serial port is held by another process
	// (another hazmon: the running agent, a scan or a probe; see
	// OpenSerial). Errors wrapping it also wrap ErrBusDown.
	ErrPortInUse = errors.New("serial port in use")
)

// Exception codes of the Modbus Application Protocol v1.1b3 §7.
const (
	ExIllegalFunction     = 0x01
	ExIllegalDataAddress  = 0x02
	ExIllegalDataValue    = 0x03
	ExSlaveDeviceFailure  = 0x04
	ExAcknowledge         = 0x05
	ExSlaveDeviceBusy     = 0x06
	ExGatewayPathUnavail  = 0x0A
	ExGatewayTargetFailed = 0x0B
)

// ExceptionError is an exception reply from a slave: the slave is alive
// but refused the request. Function is the request's function code (without
// the 0x80 exception flag), Code the exception code.
type ExceptionError struct {
	Function byte
	Code     byte
}

// Error returns e.g. "exception 2 (illegal data address) to function 0x03".
func (e *ExceptionError) Error() string {
	return fmt.Sprintf("exception %d (%s) to function 0x%02X", e.Code, ExceptionName(e.Code), e.Function)
}

// Busy reports whether the slave said it is busy (exception 6): it is
// alive and the request should be retried shortly.
func (e *ExceptionError) Busy() bool { return e.Code == ExSlaveDeviceBusy }

// ExceptionName returns the standard name of a Modbus exception code, or
// "unknown exception" for codes the standard does not define.
func ExceptionName(code byte) string {
	switch code {
	case ExIllegalFunction:
		return "illegal function"
	case ExIllegalDataAddress:
		return "illegal data address"
	case ExIllegalDataValue:
		return "illegal data value"
	case ExSlaveDeviceFailure:
		return "slave device failure"
	case ExAcknowledge:
		return "acknowledge"
	case ExSlaveDeviceBusy:
		return "slave device busy"
	case 0x08:
		return "memory parity error"
	case ExGatewayPathUnavail:
		return "gateway path unavailable"
	case ExGatewayTargetFailed:
		return "gateway target failed to respond"
	}
	return "unknown exception"
}

// convertErr maps goburrow's errors onto this package's: a
// *modbus.ModbusError becomes an *ExceptionError, goburrow's own reply
// checks (length, count, echoed address) wrap ErrFrame, and errors of our
// transporters pass through.
func convertErr(err error) error {
	if err == nil {
		return nil
	}
	var me *gmodbus.ModbusError
	if errors.As(err, &me) {
		return &ExceptionError{Function: me.FunctionCode &^ 0x80, Code: me.ExceptionCode}
	}
	for _, s := range []error{ErrTimeout, ErrCRC, ErrFrame, ErrBusDown} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", ErrFrame, err)
}

// isBusy reports whether err is a "slave device busy" exception.
func isBusy(err error) bool {
	var ee *ExceptionError
	return errors.As(err, &ee) && ee.Busy()
}
