package brokertest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is one message received by a Subscriber.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Subscribe connects a test subscriber with a persistent session (clean
// session off, QoS 1), so it gets what was published while it was away
// and across a broker Stop/Start. Messages arrive on the returned channel
// in broker order. It disconnects when the test ends.
func (b *Broker) Subscribe(t testing.TB, clientID, topic string) <-chan Message {
	t.Helper()
	ch := make(chan Message, 100000)
	o := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(clientID).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(300 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(300 * time.Millisecond).SetOrderMatters(true)
	if b.tls {
		o.SetTLSConfig(b.ClientTLS(t, b.CAFile))
	}
	o.SetOnConnectHandler(func(c mqtt.Client) {
		c.Subscribe(topic, 1, nil)
	})
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		ch <- Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()}
	})
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("brokertest: subscriber connect: %v", tok.Error())
	}
	// Wait for the SUBACK so nothing published after this call is missed.
	st := c.Subscribe(topic, 1, nil)
	if !st.WaitTimeout(15*time.Second) || st.Error() != nil {
		t.Fatalf("brokertest: subscribe %s: %v", topic, st.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return ch
}

// ClientTLS returns a TLS config trusting caFile and presenting the
// generated client certificate.
func (b *Broker) ClientTLS(t testing.TB, caFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
