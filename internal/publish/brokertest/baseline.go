package brokertest

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// PahoPublishRate is the baseline of the store-and-forward benchmarks: a
// bare paho loop publishing n copies of payload at QoS 1 to the broker,
// keeping up to window publishes in flight (no buffer, no batching, no
// fsync), and returning the messages per second that were PUBACKed.
func (b *Broker) PahoPublishRate(tb testing.TB, n, window int, payload []byte) float64 {
	tb.Helper()
	o := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(fmt.Sprintf("baseline-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	if b.tls {
		o.SetTLSConfig(b.ClientTLS(tb, b.CAFile))
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		tb.Fatalf("brokertest: baseline connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	inflight := make([]mqtt.Token, 0, window)
	start := time.Now()
	for i := 0; i < n; i++ {
		if len(inflight) == window {
			if !inflight[0].WaitTimeout(30*time.Second) || inflight[0].Error() != nil {
				tb.Fatalf("brokertest: baseline publish: %v", inflight[0].Error())
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, c.Publish("hazmon/bench/baseline", 1, false, payload))
	}
	for _, tok := range inflight {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			tb.Fatalf("brokertest: baseline publish: %v", tok.Error())
		}
	}
	return float64(n) / time.Since(start).Seconds()
}
