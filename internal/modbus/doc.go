// Package modbus is hazmon's Modbus acquisition (client side): one Poller
// per bus polls its sensors on a fixed schedule and emits one
// reading.Reading per poll, a value or a fault with its reason.
//
// It keeps goburrow/modbus v0.1.0's API and packagers (framing, CRC and
// MBAP encoding, exception decoding) and replaces goburrow's transporters,
// whose weak spots would lose or misattribute data in the field:
//
//   - RTUTransporter (serial port via go.bug.st/serial): discards stale
//     input before each request, keeps the t3.5 silence between frames,
//     reads until the reply frame is complete instead of sleeping a
//     computed delay, returns exception replies as soon as their 5 bytes are
//     in (also when they arrive late or in pieces), and accepts only a frame
//     with the request's slave id, function code and a good CRC.
//   - TCPTransporter: a deadline per transaction; replies with an older
//     transaction id (late replies to timed-out requests) are skipped, so
//     reads are never one behind; reconnects after I/O or framing errors.
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
// ErrBusDown or an *ExceptionError. The limits of RTU: it has no
// transaction id, so a late reply from the same slave with the same
// function and length is indistinguishable from the answer; the flush before
// each request and the late-reply guard (after a timeout, the slave's other
// reads of that function wait one timeout past the retry) make that case
// need a reply later than about two timeouts.
package modbus
