// Package safety is hazmon's safety function, and its only owner: the rule
// engine (limits, on-delays, fault lockout, calibration, the Art. 498
// methane table), warning groups, feed checks, output holds and alarm
// identity, run by one goroutine (Core.Run).
//
// The rest of the agent cannot stall it. Sources (bus pollers, GPIO inputs,
// the bus supervisor) hand readings to it through bounded queues that never
// block (Source.Offer: a full queue is a counted overrun). It commands each
// output through that output's own lane (Lane.Command, which never blocks)
// and hears back from the lanes the same way (Core.Observe). Evaluated
// readings, alarms and events leave through a bounded Outbox that another
// goroutine drains to log, buffer and publish them. The Core does no I/O and
// holds no lock while it evaluates, and it reads time only from its Clock, so
// its tests step it on a fake clock without sleeping.
//
// An output "cut" means the safe state: power removed from the controlled
// circuit (or, for an alarm output, the alarm device driven). An output is
// cut while any rule demands it or any hold keeps it (start-up, output test,
// a read-back mismatch, a reload that removed the rule that cut it) and is
// restored only when every demand and hold has cleared. Every output starts
// cut until each sensor that controls it has read validly once.
package safety
