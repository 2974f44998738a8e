// Package modbus is hazmon's Modbus acquisition (client side): one Poller
// per bus polls its sensors on a fixed schedule and emits one
// reading.Reading per poll, a value or a fault with its reason.
//
// It keeps goburrow/modbus v0.1.0's API and packagers (framing, CRC and
// MBAP encoding, exception decoding) and replaces goburrow's transporters,
// whose weak spots would lose or misattribute data in the field. Client
// (Dial, Read, WriteCoil, Close) is the one Modbus master of hazmon: the
// Poller and the CLI's probe and scan use it.
//
//   - SerialPort (OpenSerial): a Linux tty of our own over x/sys/unix, in
//     raw mode, non-blocking under Go's runtime poller, so every read and
//     write ends by its deadline whatever the port does (another process
//     reading the same device costs a timeout, never a blocked bus), and
//     held exclusively (flock, TIOCEXCL): a second open by hazmon fails at
//     once with ErrPortInUse.
//   - RTUTransporter: a reply answers a request only if slave id,
//     function (or its exception), the length the request implies and the
//     CRC match and it arrived inside the request's window (on a real
//     line, not before the request had left and t3.5 had passed). The
//     adapter's echo is skipped (buses[].echo). Before a request the line
//     must have been silent for SettleTime since the last frame and, after
//     that slave's last transaction failed or after bytes arrived unasked,
//     for the turnaround allowance (DefaultTurnaround); after a good reply
//     the line must settle before Send returns, so a duplicate is drained
//     and a different second reply makes the answer ambiguous (ErrFrame).
//   - TCPTransporter: a deadline per transaction; replies with an older
//     transaction id (late replies to timed-out requests) are skipped, so
//     reads are never one behind; an implausible MBAP header closes the
//     connection at once (ErrBusDown: the poller reopens the link);
//     reconnects after I/O errors.
//
// Close of a client is safe from any goroutine and makes a transaction in
// progress return at once with ErrBusDown.
//
// The Poller coalesces the reads of sensors of one slave, table and
// interval whose addresses are close (config.Bus.MaxGap, default
// DefaultMaxGap) into one request of at most 125 registers or 2000 bits,
// and falls back to per-sensor reads for SplitHold after an exception to a
// merged read. Its scheduler keeps each read on its own grid without
// drift; when the reads ask for more than LoadTarget of the bus it keeps
// the on-time reads (Options.OnTime: what a cut depends on) on time and
// stretches the others to whole multiples of their interval. A missed
// reply is a fault only after fault_after polls in a row; coil writes run
// at every transaction boundary; Liveness, Stalled and Interrupt let a
// supervisor see and break a transaction stuck in the transport. BusStats
// carry requests/s, errors, missed polls, retries, RTT percentiles and the
// bus utilisation (RTU: from frame sizes and baud).
// The steady-state poll path allocates about 0.1 times per reading with
// 100 coalesced sensors (goburrow's packager allocates per request).
//
// Errors carry bus and slave context and wrap ErrTimeout, ErrCRC, ErrFrame,
// ErrBusDown (ErrPortInUse) or an *ExceptionError. The limits of RTU: it
// has no transaction id, so a late reply from the same slave with the
// same function and length is indistinguishable from the answer; the
// turnaround drain after a failed transaction and the late-reply guard
// (after a timeout, the slave's other reads of that function wait one
// timeout past the retry) make that case need a reply later than about
// two timeouts. On a pseudo-terminal (no line) and behind USB adapters that
// hold received bytes back (a latency timer), the reply window cannot use
// the line's timing and a duplicate must come within SettleTime to be
// drained.
package modbus
