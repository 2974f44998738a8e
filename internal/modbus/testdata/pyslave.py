"""An independent Modbus slave for hazmon's acquisition tests: pymodbus
(Debian python3-pymodbus, 3.0.x API) serving fixed values as unit 1.

usage: pyslave.py tcp PORT | pyslave.py rtu DEVICE

Values (0-based protocol addresses), mirrored in pyslave_test.go:
  holding 0 = 1234, holding 1..2 = float32 21.5 (ABCD: 0x41AC 0x0000)
  input 5 = 500, coil 3 = on, discrete 4 = on
"""
import logging
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server import StartSerialServer, StartTcpServer


def context():
    hr = [0] * 100
    hr[0], hr[1], hr[2] = 1234, 0x41AC, 0x0000
    ir = [0] * 100
    ir[5] = 500
    co = [False] * 100
    co[3] = True
    di = [False] * 100
    di[4] = True
    unit = ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, hr),
        ir=ModbusSequentialDataBlock(0, ir),
        co=ModbusSequentialDataBlock(0, co),
        di=ModbusSequentialDataBlock(0, di),
        zero_mode=True,
    )
    return ModbusServerContext(slaves={1: unit}, single=False)


def main():
    logging.basicConfig(level=logging.WARNING)
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "tcp":
        StartTcpServer(context=context(), address=("127.0.0.1", int(where)))
    elif mode == "rtu":
        # A pty has no line discipline for parity, and pyserial 3.5 gets
        # EINVAL setting parity E together with a read timeout on one, so
        # the slave end stays 8N1; the client end under test is 8E1.
        StartSerialServer(context=context(), framer=ModbusRtuFramer, port=where,
                          baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=0.005)
    else:
        sys.exit("usage: pyslave.py tcp PORT | pyslave.py rtu DEVICE")


if __name__ == "__main__":
    main()
