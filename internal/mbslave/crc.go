package mbslave

// crcTable is the Modbus CRC-16 table (polynomial 0xA001, reflected 0x8005).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 returns the Modbus RTU CRC of b (initial value 0xFFFF). On the wire
// the CRC is sent low byte first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc = crc>>8 ^ crcTable[byte(crc)^x]
	}
	return crc
}

// appendCRC appends the CRC of b to b, low byte first.
func appendCRC(b []byte) []byte {
	c := CRC16(b)
	return append(b, byte(c), byte(c>>8))
}

// crcOK reports whether adu (frame with its 2 CRC bytes) has a valid CRC.
func crcOK(adu []byte) bool {
	if len(adu) < 4 {
		return false
	}
	n := len(adu) - 2
	c := CRC16(adu[:n])
	return adu[n] == byte(c) && adu[n+1] == byte(c>>8)
}
