"""An independent Modbus slave (Debian python3-pymodbus, 3.0.x API) serving
known register values as unit 7, for hazmon's end-to-end tests.

usage: pysite.py tcp PORT | pysite.py rtu DEVICE

Values (0-based protocol addresses), mirrored in e2e_test.go:
  holding 0      = 52          (CH4 0.52 %CH4 with scale 0.01)
  holding 1      = 0xFF96      (int16 -106 -> -10.6 with scale 0.1)
  holding 2..3   = 0x9BD4 0x436E  (float32 CDAB 238.6087)
  holding 4..5   = 0xFFFE 0x1DC0  (int32 -123456)
  holding 6      = 0xFFFF      (the sensor's no-value code)
  holding 7      = 500         (5.00 with scale 0.01: outside range [0, 4])
  input 0..1     = 0x47F1 0x2000  (float32 ABCD 123456)
  coil 3 = on, discrete 4 = on
  holding 100+   does not exist (exception 2, illegal data address)
"""
import logging
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server import StartSerialServer, StartTcpServer


def context():
    hr = [0] * 100
    hr[0:8] = [52, 0xFF96, 0x9BD4, 0x436E, 0xFFFE, 0x1DC0, 0xFFFF, 500]
    ir = [0] * 100
    ir[0:2] = [0x47F1, 0x2000]
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
    return ModbusServerContext(slaves={7: unit}, single=False)


def main():
    logging.basicConfig(level=logging.ERROR)
    mode, where = sys.argv[1], sys.argv[2]
    if mode == "tcp":
        StartTcpServer(context=context(), address=("127.0.0.1", int(where)))
    elif mode == "rtu":
        # pyserial 3.5 cannot set parity on a pty together with a read
        # timeout; the slave end stays 8N1 (a pty has no parity bits anyway).
        StartSerialServer(context=context(), framer=ModbusRtuFramer, port=where,
                          baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=0.005)
    else:
        sys.exit("usage: pysite.py tcp PORT | pysite.py rtu DEVICE")


if __name__ == "__main__":
    main()
