package modbus

import (
	"errors"

	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/reading"
)

// FaultCode returns the fault code a failed read's error is published
// with: a decoding fault's own code (decode.Code); bus_down for a link
// that is not usable (ErrBusDown, ErrPortInUse, ErrClosed); timeout for a
// slave that did not answer (ErrTimeout, a gateway's exception 10/11, a
// read skipped while the slave is backed off or held by the late-reply
// guard); exception for any other exception reply; crc; frame; else
// unknown.
func FaultCode(err error) reading.FaultCode {
	if c := decode.Code(err); c != "" {
		return c
	}
	var ee *ExceptionError
	switch {
	case errors.Is(err, ErrBusDown), errors.Is(err, ErrClosed):
		return reading.CodeBusDown
	case errors.As(err, &ee):
		if fromGateway(ee) {
			return reading.CodeTimeout
		}
		return reading.CodeException
	case errors.Is(err, ErrTimeout), errors.Is(err, errLateReply):
		return reading.CodeTimeout
	case errors.Is(err, ErrCRC):
		return reading.CodeCRC
	case errors.Is(err, ErrFrame):
		return reading.CodeFrame
	}
	return reading.CodeUnknown
}
