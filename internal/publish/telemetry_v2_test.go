package publish

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/contract/v2consumer"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

var v2Sensors = []contract.PointSensor{{ID: "CH4-100", Index: 0, Decimals: 2}, {ID: "CH4-101", Index: 1, Decimals: 2}}

// drainTelemetry publishes 450 buffered readings with the given encoding
// and returns the telemetry payloads received, by topic and seq.
func drainTelemetry(t *testing.T, mode string) map[string]map[uint64][]byte {
	t.Helper()
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-"+mode, "hazmon/v1/site-0001/gw-01/#")
	s := openStore(t)
	base := time.UnixMilli(1700000000000)
	appendReadings(t, s, 0, 450, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	p, err := New(s, Options{Brokers: []string{b.URL}, Site: "site-0001", Agent: "gw-01", Logger: quiet, Telemetry: mode,
		BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.SetTelemetryIndex(contract.NewTelemetryV2Index(v2Sensors)) // before Run, as the app does
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stop := func() { cancel(); <-done }
	defer stop()
	got := map[string]map[uint64][]byte{}
	add := func(m brokertest.Message) {
		kind := strings.TrimPrefix(m.Topic, "hazmon/v1/site-0001/gw-01/")
		if kind != contract.KindTelemetry && kind != contract.KindTelemetryV2 {
			return
		}
		var h struct{ Seq uint64 }
		if err := json.Unmarshal(m.Payload, &h); err != nil {
			t.Fatal(err)
		}
		if got[kind] == nil {
			got[kind] = map[uint64][]byte{}
		}
		got[kind][h.Seq] = m.Payload
	}
	// Until the buffer is drained (every message acknowledged by the
	// broker) and the subscriber has what the broker had: 3 messages on
	// each topic the mode uses, nothing more within a moment.
	want := map[string]int{contract.KindTelemetry: 3, contract.KindTelemetryV2: 3}
	switch mode {
	case config.TelemetryV1:
		want[contract.KindTelemetryV2] = 0
	case config.TelemetryV2:
		want[contract.KindTelemetry] = 0
	}
	deadline := time.After(wait)
	for {
		st, _ := s.Stats()
		pend, out := st.Depth()
		if pend == 0 && out == 0 && len(got[contract.KindTelemetry]) >= want[contract.KindTelemetry] &&
			len(got[contract.KindTelemetryV2]) >= want[contract.KindTelemetryV2] {
			break
		}
		select {
		case m := <-sub:
			add(m)
		case <-deadline:
			t.Fatalf("buffer depth %d+%d; got %d v1, %d v2 messages", pend, out, len(got[contract.KindTelemetry]), len(got[contract.KindTelemetryV2]))
		case <-time.After(50 * time.Millisecond):
		}
	}
	settle := time.After(300 * time.Millisecond) // anything more (there should be nothing)
	for {
		select {
		case m := <-sub:
			add(m)
			continue
		case <-settle:
		}
		break
	}
	return got
}

// With mqtt.telemetry both, every telemetry message goes out on
// …/telemetry exactly as a v1 agent sends it (byte for byte) and on
// …/telemetry/v2 with the same seq and rec, carrying the same readings;
// with v2 only …/telemetry/v2 is used.
func TestPublisher_BothEncodingsShareSeqAndRecAndV1IsUnchanged(t *testing.T) {
	v1only := drainTelemetry(t, config.TelemetryV1)
	both := drainTelemetry(t, config.TelemetryBoth)
	v2only := drainTelemetry(t, config.TelemetryV2)
	if len(v1only[contract.KindTelemetryV2]) != 0 || len(v2only[contract.KindTelemetry]) != 0 {
		t.Fatalf("v1 mode sent %d v2 messages, v2 mode %d v1 messages", len(v1only[contract.KindTelemetryV2]), len(v2only[contract.KindTelemetry]))
	}
	if len(v1only[contract.KindTelemetry]) != 3 || len(both[contract.KindTelemetry]) != 3 || len(both[contract.KindTelemetryV2]) != 3 ||
		len(v2only[contract.KindTelemetryV2]) != 3 {
		t.Fatalf("messages: v1 mode %d, both %d+%d, v2 mode %d; want 3 each (200+200+50)", len(v1only[contract.KindTelemetry]),
			len(both[contract.KindTelemetry]), len(both[contract.KindTelemetryV2]), len(v2only[contract.KindTelemetryV2]))
	}
	var c v2consumer.Consumer
	reg, _ := contract.Marshal(contract.Points{Reg: contract.RegHash(v2Sensors), Sensors: v2Sensors})
	if err := c.Registry(reg); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		v1 := both[contract.KindTelemetry][seq]
		if string(v1) != string(v1only[contract.KindTelemetry][seq]) {
			t.Fatalf("seq %d: v1 payload differs in mode both:\n%s\n%s", seq, v1, v1only[contract.KindTelemetry][seq])
		}
		v2 := both[contract.KindTelemetryV2][seq]
		if string(v2) != string(v2only[contract.KindTelemetryV2][seq]) {
			t.Fatalf("seq %d: v2 payload differs between modes both and v2", seq)
		}
		if err := contract.Validate(contract.KindTelemetryV2, v2); err != nil {
			t.Fatal(err)
		}
		want, err := v2consumer.DecodeV1(v1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(v2), `"reg":"`+contract.RegHash(v2Sensors)+`"`) {
			t.Fatalf("seq %d: v2 does not index the registry set: %.120s", seq, v2)
		}
		if !reflect.DeepEqual(got, want) || want[0].Rec == 0 {
			t.Fatalf("seq %d: v2 readings differ from v1 (first %+v vs %+v)", seq, got[0], want[0])
		}
		t.Logf("seq %d: %d readings, v1 %d bytes, v2 %d bytes", seq, len(want), len(v1), len(v2))
	}
}

func TestNew_RefusesAnUnknownTelemetryEncoding(t *testing.T) {
	if _, err := New(openStore(t), Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "s", Agent: "a", Telemetry: "v3"}); err == nil {
		t.Fatal("telemetry v3 accepted")
	}
}
