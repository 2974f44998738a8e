package cli

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hazmon/hazmon/internal/metrics/metricstest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// `hazmon metrics` prints the running agent's metrics through its socket
// in a form promtool accepts, with the agent's own series; metrics.listen
// serves the same families on TCP; without an agent the command says so.
func TestMetrics_SocketAndListen(t *testing.T) {
	broker := brokertest.Start(t)
	addr := closedPort(t) // a free loopback port for metrics.listen
	ag := startAgentWith(t, broker.URL, "", fmt.Sprintf("metrics: {listen: %q}\n", addr))

	var out string
	waitFor(t, "readings counted and a PUBACK in the metrics", func() bool {
		code, o, errs := hz(t, "", "metrics", "--socket", ag.socket)
		if code != 0 {
			t.Fatalf("hazmon metrics: exit %d: %s", code, errs)
		}
		out = o
		f := metricstest.Parse(t, []byte(o))
		n, _ := f.Value("hazmon_readings_total", "sensor", "CH4-101")
		acked, _ := f.Value("hazmon_mqtt_acked_messages_total", "stream", "telemetry")
		return n >= 3 && acked >= 1
	})
	metricstest.Check(t, []byte(out))
	f := metricstest.Parse(t, []byte(out))
	for _, s := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"hazmon_build_info", nil, 1},
		{"hazmon_agent_state", []string{"state", "running"}, 1},
		{"hazmon_readings_total", []string{"sensor", "LVL-1"}, 1},
		{"hazmon_bus_requests_total", []string{"bus", "B"}, 1},
		{"hazmon_bus_rtt_seconds", []string{"bus", "B"}, 1},
		{"hazmon_bus_connected", []string{"bus", "B"}, 1},
		{"hazmon_mqtt_connected", nil, 1},
		{"hazmon_buffer_usable", nil, 1},
		{"hazmon_core_up", nil, 1},
	} {
		if v, ok := f.Value(s.name, s.labels...); !ok || v < s.min {
			t.Errorf("%s%v = %v (present %v), want ≥ %v", s.name, s.labels, v, ok, s.min)
		}
	}

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics.listen: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics on %s: %s %q", addr, resp.Status, resp.Header.Get("Content-Type"))
	}
	tcp := metricstest.Parse(t, body)
	for name := range f {
		if strings.HasPrefix(name, "hazmon_") && tcp[name] == nil {
			t.Errorf("%s on the socket but not on metrics.listen", name)
		}
	}

	ag.stop()
	code, _, errs := hz(t, "", "metrics", "--socket", ag.socket)
	if code != 1 || !strings.Contains(errs, "no agent answers at "+ag.socket) {
		t.Errorf("metrics without an agent: exit %d, %q", code, errs)
	}
}

func TestMetrics_HelpHasExampleAndFits(t *testing.T) {
	code, out, _ := hz(t, "", "metrics", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "hazmon metrics") {
		t.Errorf("metrics --help: exit %d:\n%s", code, out)
	}
	checkWidth(t, "metrics --help", out)
}
