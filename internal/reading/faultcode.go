package reading

// FaultCode is the machine-readable cause of a fault reading, published
// beside the human text as the reading's "code". The strings are part of
// the platform contract (v1): a consumer may switch on them; new codes may
// be added, none is ever renamed.
type FaultCode string

// Fault codes. Communication faults (CodeTimeout, CodeBusDown, CodeStalled)
// are what deployed coal-mine monitoring calls "communication lost";
// CodeRange is its over-range / line break.
const (
	// CodeTimeout: the slave did not answer — no reply within the bus
	// timeout, a gateway's exception 10 or 11 (the unit behind it did not
	// answer), a read skipped while the slave is backed off after
	// missing replies, or held while a late reply may still arrive.
	CodeTimeout FaultCode = "timeout"
	// CodeBusDown: the serial port or TCP connection is not usable.
	CodeBusDown FaultCode = "bus_down"
	// CodeException: the slave answered with a Modbus exception (it is
	// alive and refused the request; busy after the busy retries included).
	CodeException FaultCode = "exception"
	// CodeCRC: a reply with a bad CRC (RTU).
	CodeCRC FaultCode = "crc"
	// CodeFrame: a malformed, ambiguous or wrong-length reply.
	CodeFrame FaultCode = "frame"
	// CodeRange: the engineering value is outside the sensor's range.
	CodeRange FaultCode = "range"
	// CodeNoValue: the raw value is one of the sensor's no-value codes.
	CodeNoValue FaultCode = "no_value"
	// CodeNaN: the value is NaN.
	CodeNaN FaultCode = "nan"
	// CodeInf: the value is infinite, or overflows after scale and offset.
	CodeInf FaultCode = "inf"
	// CodeConfig: the sensor's decoding settings are invalid (validate
	// refuses them, so this is a defect if it is ever seen).
	CodeConfig FaultCode = "config"
	// CodeStale: no reading within the sensor's stale_after.
	CodeStale FaultCode = "stale"
	// CodeStalled: the sensor's bus is stuck inside a transaction
	// (no transaction completed within 3 × its timeout).
	CodeStalled FaultCode = "stalled"
	// CodeGPIO: the GPIO line cannot be configured, read or waited on.
	CodeGPIO FaultCode = "gpio"
	// CodeUnknown: a fault whose producer gave no code (a defect).
	CodeUnknown FaultCode = "unknown"
)

// FaultCodes lists every fault code, in the order above (the JSON Schema's
// enum of "code" holds exactly these).
func FaultCodes() []FaultCode {
	return []FaultCode{CodeTimeout, CodeBusDown, CodeException, CodeCRC, CodeFrame, CodeRange, CodeNoValue,
		CodeNaN, CodeInf, CodeConfig, CodeStale, CodeStalled, CodeGPIO, CodeUnknown}
}
