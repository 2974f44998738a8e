package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// reading, telemetry, status, alarm and event are the parts of the platform
// contract (v1) payloads that the subscriber prints. They are decoded
// leniently: unknown fields are ignored, so the viewer keeps working when
// the contract gains fields.
type reading struct {
	Sensor string   `json:"sensor"`
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	Status string   `json:"status"`
	Error  string   `json:"error"`
}

type telemetry struct {
	Seq        uint64    `json:"seq"`
	Historical bool      `json:"historical"`
	Readings   []reading `json:"readings"`
}

type status struct {
	State   string   `json:"state"`
	Version string   `json:"version"`
	Sensors []string `json:"sensors"`
}

type alarm struct {
	Seq         uint64   `json:"seq"`
	AlarmID     string   `json:"alarm_id"`
	Sensor      string   `json:"sensor"`
	Level       string   `json:"level"`
	State       string   `json:"state"`
	Value       *float64 `json:"value"`
	Limit       *float64 `json:"limit"`
	Outputs     []string `json:"outputs"`
	Calibration bool     `json:"calibration"`
}

type event struct {
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
	FromTS   int64  `json:"from_ts"`
	ToTS     int64  `json:"to_ts"`
	Readings int64  `json:"readings"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// num formats a contract number compactly ("0.52", "3"), "null" for nil.
func num(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

// formatReadings appends " SENSOR=VALUEUNIT status" for each reading; a
// fault prints "SENSOR=null fault(reason)".
func formatReadings(b *strings.Builder, rs []reading) {
	for _, r := range rs {
		fmt.Fprintf(b, " %s=", r.Sensor)
		if r.Value == nil {
			b.WriteString("null")
		} else {
			b.WriteString(num(r.Value) + r.Unit)
		}
		b.WriteString(" " + r.Status)
		if r.Error != "" {
			b.WriteString("(" + r.Error + ")")
		}
	}
}

// FormatMessage returns the one-line summary a technician reads for an
// MQTT message received at time at, e.g.
//
//	12:00:01 telemetry seq=5 CH4-101=0.52%CH4 normal CO-101=3ppm normal
//	12:00:01 status online gw-01 version=1.0.0 sensors=6
//	12:00:03 ALARM raised CH4-101 cutoff value=1.52 limit=1.5 outputs=breaker-3 seq=2
//	12:00:04 event data_loss seq=1 readings=10 from=... to=... reason=buffer_full
//
// The kind is the topic's last level ({prefix}/{site}/{agent}/{kind}). A
// payload that is not the expected JSON is printed as the topic and the
// payload text, so nothing received is hidden.
func FormatMessage(topic string, payload []byte, at time.Time) string {
	var b strings.Builder
	b.WriteString(at.Format("15:04:05") + " ")
	levels := strings.Split(topic, "/")
	kind := levels[len(levels)-1]
	agent := ""
	if len(levels) >= 2 {
		agent = levels[len(levels)-2]
	}
	if len(payload) == 0 {
		b.WriteString(kind + " " + agent + " (retained message cleared)")
		return b.String()
	}
	ok := true
	switch kind {
	case "telemetry":
		var m telemetry
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			fmt.Fprintf(&b, "telemetry seq=%d", m.Seq)
			if m.Historical {
				b.WriteString(" historical")
			}
			formatReadings(&b, m.Readings)
		}
	case "current":
		var m struct {
			Readings []reading `json:"readings"`
		}
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			b.WriteString("current")
			formatReadings(&b, m.Readings)
		}
	case "status":
		var m status
		if ok = json.Unmarshal(payload, &m) == nil && m.State != ""; ok {
			fmt.Fprintf(&b, "status %s %s", m.State, agent)
			if m.Version != "" {
				b.WriteString(" version=" + m.Version)
			}
			if m.Sensors != nil {
				fmt.Fprintf(&b, " sensors=%d", len(m.Sensors))
			}
		}
	case "alarm":
		var m alarm
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			fmt.Fprintf(&b, "ALARM %s %s %s value=%s limit=%s", m.State, m.Sensor, m.Level, num(m.Value), num(m.Limit))
			if len(m.Outputs) > 0 {
				b.WriteString(" outputs=" + strings.Join(m.Outputs, ","))
			}
			if m.Calibration {
				b.WriteString(" calibration")
			}
			fmt.Fprintf(&b, " seq=%d", m.Seq)
		}
	case "alarms":
		var m struct {
			Alarms []alarm `json:"alarms"`
		}
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			fmt.Fprintf(&b, "active alarms: %d", len(m.Alarms))
			for _, a := range m.Alarms {
				b.WriteString(" " + a.Sensor + "/" + a.Level)
			}
		}
	case "outputs":
		var m struct {
			Outputs []struct {
				Name      string `json:"name"`
				Commanded string `json:"commanded"`
				ReadBack  string `json:"read_back"`
			} `json:"outputs"`
		}
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			b.WriteString("outputs")
			for _, o := range m.Outputs {
				fmt.Fprintf(&b, " %s=%s/%s", o.Name, o.Commanded, o.ReadBack)
			}
		}
	case "event":
		var m event
		if ok = json.Unmarshal(payload, &m) == nil; ok {
			fmt.Fprintf(&b, "event %s seq=%d", m.Type, m.Seq)
			if m.Readings != 0 {
				fmt.Fprintf(&b, " readings=%d", m.Readings)
			}
			if m.FromTS != 0 || m.ToTS != 0 {
				fmt.Fprintf(&b, " from=%s to=%s", msTime(m.FromTS), msTime(m.ToTS))
			}
			if m.Reason != "" {
				b.WriteString(" reason=" + m.Reason)
			}
			if m.Detail != "" {
				b.WriteString(" detail=" + strconv.Quote(m.Detail))
			}
		}
	default:
		ok = false
	}
	if !ok {
		b.Reset()
		fmt.Fprintf(&b, "%s %s %s", at.Format("15:04:05"), topic, strings.TrimSpace(string(payload)))
	}
	return b.String()
}

// msTime formats unix milliseconds as local "15:04:05.000".
func msTime(ms int64) string { return time.UnixMilli(ms).Format("15:04:05.000") }

// SubscriberConfig says where the subscriber connects and what it prints.
type SubscriberConfig struct {
	Broker   string    // broker URL, e.g. "tcp://127.0.0.1:1883"
	Topic    string    // topic filter, e.g. "hazmon/#"
	Raw      bool      // print "time topic payload" instead of the summary
	Current  bool      // also print the retained "current" snapshots (they repeat telemetry on a change, else every mqtt.current_interval)
	ClientID string    // MQTT client id; "" = "hazmon-sim-sub-<unix nanos>"
	Out      io.Writer // where lines go (one Write per line)
	Log      *slog.Logger
	OnReady  func() // called once after the first successful subscribe (nil: none)
}

// Subscribe connects to cfg.Broker, subscribes to cfg.Topic at QoS 1 and
// writes one line per message to cfg.Out until ctx is done. It reconnects
// (and resubscribes) by itself when the broker goes away. It returns an
// error if the first connection fails, nil when ctx is done.
func Subscribe(ctx context.Context, cfg SubscriberConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "hazmon-sim-sub-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	var outMu sync.Mutex
	handle := func(_ paho.Client, m paho.Message) {
		if !cfg.Current && strings.HasSuffix(m.Topic(), "/current") {
			return
		}
		line := FormatMessage(m.Topic(), m.Payload(), time.Now())
		if cfg.Raw {
			line = time.Now().Format("15:04:05") + " " + m.Topic() + " " + string(m.Payload())
		}
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := io.WriteString(cfg.Out, line+"\n"); err != nil {
			log.Warn("subscriber: write line", "err", err)
		}
	}
	subscribed := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("subscriber: connection lost", "broker", cfg.Broker, "err", err)
		}).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(cfg.Topic, 1, handle)
			tok.Wait()
			if err := tok.Error(); err != nil {
				log.Error("subscriber: subscribe", "topic", cfg.Topic, "err", err)
			} else {
				log.Info("subscriber: subscribed", "broker", cfg.Broker, "topic", cfg.Topic)
			}
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	c := paho.NewClient(opts)
	tok := c.Connect()
	tok.Wait()
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscriber: connect %s: %w", cfg.Broker, err)
	}
	defer c.Disconnect(250)
	select {
	case err := <-subscribed:
		if err != nil {
			return fmt.Errorf("subscriber: subscribe %q on %s: %w", cfg.Topic, cfg.Broker, err)
		}
		if cfg.OnReady != nil {
			cfg.OnReady()
		}
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}
