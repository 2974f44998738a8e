package mbslave

import "encoding/binary"

// exception returns the exception reply PDU for function fc.
func exception(fc, code byte) []byte { return []byte{fc | 0x80, code} }

// addrOK reports whether addresses addr..addr+n-1 of table t exist.
func (u *unit) addrOK(t Table, addr, n int) bool {
	if addr+n > u.size {
		return false
	}
	for _, s := range u.invalid[t] {
		if addr < s.to && s.from < addr+n {
			return false
		}
	}
	return true
}

// execute runs one request PDU on u and returns the reply PDU.
func (u *unit) execute(pdu []byte) []byte {
	fc := pdu[0]
	be := binary.BigEndian
	switch fc {
	case FuncReadCoils, FuncReadDiscreteInputs:
		if len(pdu) != 5 {
			return exception(fc, ExIllegalDataValue)
		}
		addr, n := int(be.Uint16(pdu[1:])), int(be.Uint16(pdu[3:]))
		if n < 1 || n > MaxReadBits {
			return exception(fc, ExIllegalDataValue)
		}
		t, bits := Coils, u.coils
		if fc == FuncReadDiscreteInputs {
			t, bits = DiscreteInputs, u.discrete
		}
		if !u.addrOK(t, addr, n) {
			return exception(fc, ExIllegalDataAddress)
		}
		nb := (n + 7) / 8
		out := make([]byte, 2+nb)
		out[0], out[1] = fc, byte(nb)
		for i := range n {
			if bits[addr+i] {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
		if len(pdu) != 5 {
			return exception(fc, ExIllegalDataValue)
		}
		addr, n := int(be.Uint16(pdu[1:])), int(be.Uint16(pdu[3:]))
		if n < 1 || n > MaxReadRegisters {
			return exception(fc, ExIllegalDataValue)
		}
		t, regs := HoldingRegisters, u.holding
		if fc == FuncReadInputRegisters {
			t, regs = InputRegisters, u.input
		}
		if !u.addrOK(t, addr, n) {
			return exception(fc, ExIllegalDataAddress)
		}
		out := make([]byte, 2, 2+2*n)
		out[0], out[1] = fc, byte(2*n)
		for i := range n {
			out = be.AppendUint16(out, regs[addr+i])
		}
		return out
	case FuncWriteSingleCoil:
		if len(pdu) != 5 {
			return exception(fc, ExIllegalDataValue)
		}
		addr, v := int(be.Uint16(pdu[1:])), be.Uint16(pdu[3:])
		if v != 0xFF00 && v != 0x0000 {
			return exception(fc, ExIllegalDataValue)
		}
		if !u.addrOK(Coils, addr, 1) {
			return exception(fc, ExIllegalDataAddress)
		}
		u.coils[addr] = v == 0xFF00
		return append([]byte(nil), pdu...)
	case FuncWriteSingleRegister:
		if len(pdu) != 5 {
			return exception(fc, ExIllegalDataValue)
		}
		addr := int(be.Uint16(pdu[1:]))
		if !u.addrOK(HoldingRegisters, addr, 1) {
			return exception(fc, ExIllegalDataAddress)
		}
		u.holding[addr] = be.Uint16(pdu[3:])
		return append([]byte(nil), pdu...)
	case FuncWriteMultipleCoils:
		if len(pdu) < 6 {
			return exception(fc, ExIllegalDataValue)
		}
		addr, n, nb := int(be.Uint16(pdu[1:])), int(be.Uint16(pdu[3:])), int(pdu[5])
		if n < 1 || n > MaxWriteBits || nb != (n+7)/8 || len(pdu) != 6+nb {
			return exception(fc, ExIllegalDataValue)
		}
		if !u.addrOK(Coils, addr, n) {
			return exception(fc, ExIllegalDataAddress)
		}
		for i := range n {
			u.coils[addr+i] = pdu[6+i/8]&(1<<(i%8)) != 0
		}
		return append([]byte(nil), pdu[:5]...)
	case FuncWriteMultipleRegisters:
		if len(pdu) < 6 {
			return exception(fc, ExIllegalDataValue)
		}
		addr, n, nb := int(be.Uint16(pdu[1:])), int(be.Uint16(pdu[3:])), int(pdu[5])
		if n < 1 || n > MaxWriteRegisters || nb != 2*n || len(pdu) != 6+nb {
			return exception(fc, ExIllegalDataValue)
		}
		if !u.addrOK(HoldingRegisters, addr, n) {
			return exception(fc, ExIllegalDataAddress)
		}
		for i := range n {
			u.holding[addr+i] = be.Uint16(pdu[6+2*i:])
		}
		return append([]byte(nil), pdu[:5]...)
	}
	return exception(fc, ExIllegalFunction)
}
