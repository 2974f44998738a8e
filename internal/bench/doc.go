// Package bench is the driver of `make bench` (issue 6, "close to the
// wire"): one test, TestBenchTable, that runs only with HAZMON_BENCH=1 and
// prints one table of every figure the issue asks for, each with its target
// and whether it was met on this machine:
//
//   - poll throughput on one Modbus TCP slave, the agent's Poller against a
//     bare goburrow/modbus loop on the same slave, interleaved in the same
//     run;
//   - requests per poll cycle for 100 sensors on adjacent registers,
//     coalesced and not, counted by the slave;
//   - RTU over a socat pty at 9600 and 115200 baud (the slave paces its
//     bytes at the baud): achieved polls/s of a 10-register read against
//     the wire limit from frame sizes and t3.5 (modbus.WireLimit);
//   - allocations per reading of decode + rules, and of the poll path;
//   - the real hazmon binary against a Modbus TCP slave and Mosquitto with
//     500 sensors at 1 Hz: start-up to the first published reading, CPU
//     seconds per 1000 readings, peak RSS, and alarm latency from a
//     register change to the cut-off output (coil write seen by the slave)
//     and to the alarm at a subscriber, p50/p99, also counted from the
//     sample time of the reading that crossed the limit ("beyond the
//     poll");
//   - allocations per reading of the whole agent (app.App in-process, with
//     the same config).
//
// It needs mosquitto and socat (scripts/deps.sh) and takes about two
// minutes.
//
// TestBenchSideBySide (issue 12, also HAZMON_BENCH=1) runs the real hazmon
// binary and Telegraf 1.37 (memory and disk buffer; built by
// scripts/bench-telegraf.sh into a cache directory, its columns skipped
// with the reason when it cannot be) from config files a user could write,
// against the same Modbus TCP slave and Mosquitto, at 1, 100 and 500
// sensors at 1 Hz: CPU (utime+stime) per 1000 readings, peak RSS, MQTT
// payload bytes per reading, disk bytes written and fsync+fdatasync per
// second (strace), with ratios hazmon / Telegraf and the targets.
// Then the poll ceiling through a config (hazmon, Telegraf and a bare
// goburrow loop, each in its own process, polls counted by the slave) and
// the throughput steps at which hazmon stops keeping up or reports
// data_loss. It takes about seven minutes with the default windows
// (HAZMON_BENCH_SECONDS, HAZMON_BENCH_RUNS: see the test's comment).
package bench
