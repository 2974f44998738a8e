package modbus

import "encoding/binary"

// replyPDULen is the length of the normal reply PDU (function code and
// data) to the request PDU pdu, from the function and quantity asked
// (Modbus Application Protocol v1.1b3 §6), or 0 when the function is not
// one this package knows. An exception reply PDU is always 2 bytes.
func replyPDULen(pdu []byte) int {
	if len(pdu) < 1 {
		return 0
	}
	be := binary.BigEndian
	switch pdu[0] {
	case 0x01, 0x02: // read coils / discrete inputs: byte count, packed bits
		if len(pdu) < 5 {
			return 0
		}
		return 2 + (int(be.Uint16(pdu[3:]))+7)/8
	case 0x03, 0x04: // read holding / input registers: byte count, words
		if len(pdu) < 5 {
			return 0
		}
		return 2 + 2*int(be.Uint16(pdu[3:]))
	case 0x05, 0x06, 0x0F, 0x10: // echo of address and value or quantity
		return 5
	case 0x16: // mask write: address, AND mask, OR mask
		return 7
	case 0x17: // read/write multiple registers: byte count, words read
		if len(pdu) < 5 {
			return 0
		}
		return 2 + 2*int(be.Uint16(pdu[3:]))
	}
	return 0
}

// hasByteCount reports whether the normal reply of function fc carries a
// byte count after the function code.
func hasByteCount(fc byte) bool {
	switch fc {
	case 0x01, 0x02, 0x03, 0x04, 0x17:
		return true
	}
	return false
}

// replyIsRequestCopy reports whether a normal reply to function fc is
// byte for byte the request (write single coil / register): on a line
// whose adapter echoes, the echo then looks like the reply.
func replyIsRequestCopy(fc byte) bool { return fc == 0x05 || fc == 0x06 }
