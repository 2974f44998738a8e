package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/contract/v2consumer"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// bothLog keeps every telemetry and points message a bureau subscriber
// receives, by topic kind.
type bothLog struct {
	mu     sync.Mutex
	points [][]byte
	msgs   map[string]map[uint64][]byte // kind → seq → payload
	errs   []string
	v1B    int // payload bytes received (repeats included)
	v2B    int
}

func (l *bothLog) add(m brokertest.Message) {
	kind := strings.TrimPrefix(m.Topic, "hazmon/v1/"+site+"/"+gateID+"/")
	l.mu.Lock()
	defer l.mu.Unlock()
	switch kind {
	case contract.KindPoints:
		l.points = append(l.points, m.Payload)
		return
	case contract.KindTelemetry, contract.KindTelemetryV2:
	default:
		return
	}
	if err := contract.Validate(kind, m.Payload); err != nil {
		l.errs = append(l.errs, fmt.Sprintf("%s off contract: %v", kind, err))
		return
	}
	var h struct{ Seq uint64 }
	_ = json.Unmarshal(m.Payload, &h)
	if l.msgs[kind] == nil {
		l.msgs[kind] = map[uint64][]byte{}
	}
	if old, ok := l.msgs[kind][h.Seq]; ok && string(old) != string(m.Payload) {
		l.errs = append(l.errs, fmt.Sprintf("%s seq %d sent again with another payload", kind, h.Seq))
	}
	l.msgs[kind][h.Seq] = m.Payload
	if kind == contract.KindTelemetry {
		l.v1B += len(m.Payload)
	} else {
		l.v2B += len(m.Payload)
	}
}

func (l *bothLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs[kind])
}

// historical counts the v2 messages flagged historical.
func (l *bothLog) historical() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.msgs[contract.KindTelemetryV2] {
		if strings.Contains(string(p), `"historical":true`) {
			n++
		}
	}
	return n
}

// TestTelemetryV2_ConsumerSeesExactlyWhatV1Shows: an agent with
// mqtt.telemetry: both runs against the slave and the broker through a
// broker outage (a backlog, historical) and a kill -9 (resends); a v2
// consumer written from the README, using only the retained registry and
// …/telemetry/v2, reconstructs exactly the readings (rec, sensor, ts,
// value, status, fault code) a v1 consumer sees on …/telemetry, message by
// message (same seq, same rec), and a repeat is always byte-identical.
func TestTelemetryV2_ConsumerSeesExactlyWhatV1Shows(t *testing.T) {
	b := brokertest.Start(t)
	s := startSite(t, 3) // FT-4 has no unit at the slave: its readings are faults (exception)
	log := &bothLog{msgs: map[string]map[uint64][]byte{}}
	sub := b.Subscribe(t, "bureau-v2", topics)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case m := <-sub:
				log.add(m)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	cfg := agentConfig{Brokers: []string{b.URL}, DataDir: t.TempDir(), SlaveAddr: s.addr, Sensors: 4, Interval: "100ms", BatchMax: 20,
		Telemetry: "both", Scale: "0.01", BusTimeout: "300ms"}.write(t)
	// Two more sensors (the sensor list ends the file): one whose counter
	// is outside its range (faults, code range), one that alarms from 0.30.
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(`  - {id: RANGE-5, type: flow, bus: site, slave: 5, table: holding, address: 0, format: uint16, unit: "m3/h", interval: 100ms, range: [500, 600]}
  - {id: ALARM-6, type: flow, bus: site, slave: 6, table: holding, address: 0, format: uint16, scale: 0.01, unit: "m3/h", interval: 100ms,
     rules: [{level: alarm, above: 0.3}]}
`)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, cfg)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%d v1, %d v2 messages)", what, log.count(contract.KindTelemetry), log.count(contract.KindTelemetryV2))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("live messages", func() bool { return log.count(contract.KindTelemetryV2) >= 10 })
	b.Stop()
	time.Sleep(3 * time.Second)
	b.Start()
	waitFor("the backlog", func() bool { return log.historical() >= 3 })
	n := log.count(contract.KindTelemetryV2)
	a.kill()
	a = startAgent(t, cfg)
	waitFor("messages after the restart", func() bool { return log.count(contract.KindTelemetryV2) >= n+10 })
	a.term()
	eventually(func() bool { return log.count(contract.KindTelemetry) == log.count(contract.KindTelemetryV2) })

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errs) > 0 {
		t.Fatalf("%d contract errors, the first: %s", len(log.errs), log.errs[0])
	}
	var c v2consumer.Consumer
	for _, p := range log.points {
		if err := c.Registry(p); err != nil {
			t.Fatal(err)
		}
	}
	v1s, v2s := log.msgs[contract.KindTelemetry], log.msgs[contract.KindTelemetryV2]
	if len(v1s) != len(v2s) {
		t.Fatalf("%d v1 messages, %d v2 messages", len(v1s), len(v2s))
	}
	var readings, faults, alarms, fractional int
	for seq, v1 := range v1s {
		v2, ok := v2s[seq]
		if !ok {
			t.Fatalf("seq %d on …/telemetry only", seq)
		}
		want, err := v2consumer.DecodeV1(v1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(v2)
		if errors.Is(err, v2consumer.ErrUnknownRegistry) {
			t.Fatalf("seq %d names a registry never published: %v", seq, err)
		}
		if err != nil {
			t.Fatalf("seq %d: %v\n%s", seq, err, v2)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range want {
				if i >= len(got) || !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("seq %d reading %d: v2 %+v, v1 %+v\nv1 %s\nv2 %s", seq, i, at(got, i), at(want, i), v1, v2)
				}
			}
			t.Fatalf("seq %d: %d v2 readings, %d v1", seq, len(got), len(want))
		}
		for _, r := range want {
			readings++
			if r.Rec == 0 {
				t.Fatalf("seq %d: reading without rec", seq)
			}
			switch {
			case r.Status == "fault" && r.Code == "range":
				faults++
			case r.Status == "alarm":
				alarms++
			}
			if r.Value != nil && *r.Value != float64(int(*r.Value)) {
				fractional++
			}
		}
	}
	if faults == 0 || alarms == 0 || fractional == 0 || readings < 200 {
		t.Fatalf("%d readings, %d range faults, %d alarms, %d with decimals: the run did not cover faults, alarms and scaled values",
			readings, faults, alarms, fractional)
	}
	t.Logf("%d messages, %d readings (%d faults, %d alarms) identical on both topics; bytes received v1 %d, v2 %d (%.1f and %.1f per reading)",
		len(v1s), readings, faults, alarms, log.v1B, log.v2B, float64(log.v1B)/float64(readings), float64(log.v2B)/float64(readings))
}

func at(rs []v2consumer.Reading, i int) string {
	if i >= len(rs) {
		return "none"
	}
	r := rs[i]
	v := "null"
	if r.Value != nil {
		v = fmt.Sprint(*r.Value)
	}
	return fmt.Sprintf("{rec %d %s ts %d value %s %s %s}", r.Rec, r.Sensor, r.TS, v, r.Status, r.Code)
}
