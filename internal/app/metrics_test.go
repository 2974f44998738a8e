package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/metrics"
	"github.com/hazmon/hazmon/internal/metrics/metricstest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// scrapeSocket is `curl --unix-socket SOCK http://hazmon/metrics`.
func scrapeSocket(t *testing.T, sock string) []byte {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}, DisableKeepAlives: true}}
	resp, err := hc.Get("http://hazmon/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != control.MetricsContentType {
		t.Fatalf("GET /metrics: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return body
}

// The metrics of a real agent (an mbslave slave with a breaker coil, a
// real Mosquitto) over its control socket pass promtool and follow what
// happens: readings are counted per sensor and keep growing, the broker's
// PUBACKs are counted, methane at the cut-off shows the breaker cut and a
// cutoff alarm, and a slave gone silent shows its readings' fault code
// (timeout), the bus's timeouts and a fault alarm.
func TestMetrics_FollowARealAgent(t *testing.T) {
	bank := mbslave.NewBank()
	bank.SetHolding(7, 0, 50) // 0.50 %CH4
	bank.SetHolding(7, 1, 215)
	bank.SetCoil(7, 100, false)
	addr := mbslavetest.StartTCP(t, bank)
	broker := brokertest.Start(t)
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-met, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 5s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc, slave: 7, coil: 100}}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 7, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
  - {id: T-1, type: temperature, bus: plc, slave: 7, table: holding, address: 1, scale: 0.1, unit: degC,
     interval: 100ms, range: [-40, 80]}
`, t.TempDir(), broker.URL, addr))
	runApp(t, cfg)
	sock := cfg.Control.Socket

	// scrapeUntil scrapes until cond holds on the parsed series, checking
	// each exposition with promtool once it does.
	scrapeUntil := func(what string, cond func(metricstest.Families) bool) metricstest.Families {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			body := scrapeSocket(t, sock)
			f := metricstest.Parse(t, body)
			if cond(f) {
				metricstest.Check(t, body)
				return f
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s; last scrape:\n%s", what, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	val := func(f metricstest.Families, name string, labels ...string) float64 {
		v, _ := f.Value(name, labels...)
		return v
	}

	f := scrapeUntil("breaker energised, readings counted, a telemetry PUBACK", func(f metricstest.Families) bool {
		return val(f, "hazmon_output_energised", "output", "breaker-3") == 1 && bank.Coil(7, 100) &&
			val(f, "hazmon_readings_total", "sensor", "CH4-101") >= 3 &&
			val(f, "hazmon_mqtt_acked_messages_total", "stream", "telemetry") >= 1
	})
	n0 := val(f, "hazmon_readings_total", "sensor", "CH4-101")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hazmon_agent_state", []string{"state", "running"}, 1},
		{"hazmon_core_up", nil, 1},
		{"hazmon_output_cut", []string{"output", "breaker-3"}, 0},
		{"hazmon_output_confirmed", []string{"output", "breaker-3"}, 1},
		{"hazmon_alarms_active", []string{"level", "cutoff"}, 0},
		{"hazmon_bus_connected", []string{"bus", "plc"}, 1},
		{"hazmon_buffer_usable", nil, 1},
		{"hazmon_mqtt_connected", nil, 1},
		{"hazmon_buffer_limit_bytes", nil, float64(cfg.Buffer.MaxBytes)},
		{"hazmon_source_overruns_total", []string{"source", "bus plc"}, 0},
	} {
		if v, ok := f.Value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := f.Value("hazmon_reading_faults_total", "sensor", "CH4-101"); ok {
		t.Errorf("a fault counted while every reading is valid")
	}
	if v := val(f, "hazmon_bus_rtt_seconds", "bus", "plc"); v < val(f, "hazmon_bus_requests_total", "bus", "plc") || v == 0 {
		t.Errorf("RTT histogram holds %v transactions, requests %v", v, val(f, "hazmon_bus_requests_total", "bus", "plc"))
	}
	scrapeUntil("readings_total grows", func(f metricstest.Families) bool {
		return val(f, "hazmon_readings_total", "sensor", "CH4-101") >= n0+5
	})

	bank.SetHolding(7, 0, 150) // the coal-face cut-off, 1.50 %CH4
	scrapeUntil("breaker cut with a cutoff alarm", func(f metricstest.Families) bool {
		return val(f, "hazmon_output_cut", "output", "breaker-3") == 1 && val(f, "hazmon_output_energised", "output", "breaker-3") == 0 &&
			val(f, "hazmon_output_cuts_total", "output", "breaker-3") >= 1 && val(f, "hazmon_alarms_active", "level", "cutoff") == 1
	})

	bank.SetFault(7, mbslave.Fault{Silent: true})
	f = scrapeUntil("timeout faults of a silent slave", func(f metricstest.Families) bool {
		return val(f, "hazmon_reading_faults_total", "sensor", "CH4-101", "code", "timeout") >= 1 &&
			val(f, "hazmon_reading_faults_total", "sensor", "T-1", "code", "timeout") >= 1 &&
			val(f, "hazmon_alarms_active", "level", "fault") >= 1
	})
	if v := val(f, "hazmon_bus_timeouts_total", "bus", "plc"); v < 2 {
		t.Errorf("bus timeouts %v with a silent slave", v)
	}
}

// A safety core that does not answer (here: one not yet running) holds a
// scrape for at most metrics.ScrapeCoreTimeout; the scrape then reports
// hazmon_core_up 0 with everything else, still valid.
func TestMetrics_ScrapeBoundedWhenTheCoreDoesNotAnswer(t *testing.T) {
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-met2, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
buses:
  - {name: plc, protocol: tcp, address: "127.0.0.1:1", timeout: 300ms}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 7, table: holding, address: 0, scale: 0.01, unit: "%%CH4", range: [0, 4]}
`, t.TempDir()))
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { a.discard(a.pl, nil); a.lock.release() }()
	var b bytes.Buffer
	start := time.Now()
	if err := (*controlBackend)(a).Metrics(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > metrics.ScrapeCoreTimeout+2*time.Second {
		t.Errorf("scrape took %s with a silent core (bound %s)", took, metrics.ScrapeCoreTimeout)
	}
	metricstest.Check(t, b.Bytes())
	f := metricstest.Parse(t, b.Bytes())
	if v, ok := f.Value("hazmon_core_up"); !ok || v != 0 {
		t.Errorf("hazmon_core_up = %v (present %v), want 0", v, ok)
	}
	if _, ok := f.Value("hazmon_readings_total", "sensor", "CH4-101"); !ok {
		t.Error("the rest of the scrape is missing")
	}
}
