package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// telegrafBuffer is the output buffer strategy of a Telegraf run.
type telegrafBuffer string

const (
	tgMemory telegrafBuffer = "memory"
	// tgDisk is Telegraf 1.37's disk buffer (a write-ahead log per output,
	// fsync'd after every write), enabled by buffer_strategy.
	tgDisk telegrafBuffer = "disk_write_through"
)

var (
	telegrafOnce sync.Once
	telegrafPath string
	telegrafWhy  string
)

// telegrafBinary returns the trimmed Telegraf the side-by-side bench runs:
// $HAZMON_BENCH_TELEGRAF if set ("none": make bench's run of the script
// failed), else what scripts/bench-telegraf.sh prints (it builds Telegraf into a cache directory the first time). When
// there is none, path is "" and why says why.
func telegrafBinary() (path, why string) {
	telegrafOnce.Do(func() {
		if p := os.Getenv("HAZMON_BENCH_TELEGRAF"); p != "" {
			if p == "none" { // make bench ran the script, and it failed
				telegrafWhy = "scripts/bench-telegraf.sh could not build Telegraf (its message is above)"
				return
			}
			if _, err := os.Stat(p); err != nil {
				telegrafWhy = fmt.Sprintf("HAZMON_BENCH_TELEGRAF=%s: %v", p, err)
				return
			}
			telegrafPath = p
			return
		}
		root, _ := filepath.Abs("../..")
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "bench-telegraf.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			telegrafWhy = fmt.Sprintf("scripts/bench-telegraf.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
			return
		}
		telegrafPath = strings.TrimSpace(string(out))
	})
	return telegrafPath, telegrafWhy
}

// telegrafField is one register of the modbus input: a holding register
// read as UINT16 and scaled, as hazmon's sensors are.
type telegrafField struct {
	name  string
	addr  int
	scale float64
}

// telegrafConfig is a telegraf.conf a user would write for the same job as
// hazmon's sensors: one modbus input (request layout, one slave, holding
// registers; Telegraf splits the fields into reads of ≤ 125 registers),
// collected every interval and flushed every second to Mosquitto as JSON,
// one message per metric at QoS 1, like hazmon's telemetry. The buffer is
// in memory or on disk (bufDir).
func telegrafConfig(slave, broker string, interval time.Duration, fields []telegrafField, buf telegrafBuffer, bufDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[agent]
  interval = %q
  round_interval = false
  collection_jitter = "0s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  buffer_strategy = %q
`, interval.String(), string(buf))
	if buf == tgDisk {
		fmt.Fprintf(&b, "  buffer_directory = %q\n", bufDir)
	}
	fmt.Fprintf(&b, `
[[inputs.modbus]]
  name = "bench"
  controller = "tcp://%s"
  timeout = "1s"
  configuration_type = "request"
  [[inputs.modbus.request]]
    slave_id = 1
    byte_order = "ABCD"
    register = "holding"
    measurement = "bench"
    fields = [
`, slave)
	for _, f := range fields {
		fmt.Fprintf(&b, "      { address=%d, name=%q, type=\"UINT16\", scale=%g },\n", f.addr, f.name, f.scale)
	}
	fmt.Fprintf(&b, `    ]

[[outputs.mqtt]]
  servers = [%q]
  topic = "telegraf/bench/{{ .Name }}"
  qos = 1
  keep_alive = 10
  client_id = "telegraf-bench"
  layout = "non-batch"
  data_format = "json"
`, strings.TrimPrefix(broker, "tcp://"))
	return b.String()
}
