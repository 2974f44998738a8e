package actuate

import (
	"context"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/safety"
)

// signalPin is a gpiotest pin that reports every write.
type signalPin struct {
	*gpiotest.Pin
	out chan pgpio.Level
}

func (p signalPin) Out(l pgpio.Level) error {
	err := p.Pin.Out(l)
	p.out <- l
	return err
}

// BenchmarkApplyCutToPinWrite measures the time from Apply of a cut
// change to the write of the relay's GPIO line (gpiotest pin), through the
// output's goroutine. Each op is one cut; the restore between ops is not
// timed.
func BenchmarkApplyCutToPinWrite(b *testing.B) {
	pin := signalPin{Pin: &gpiotest.Pin{N: "GPIO20", Num: 20}, out: make(chan pgpio.Level, 1)}
	m, err := NewManager([]config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}}},
		Options{Pins: gpio.PinMap{{Chip: "gpiochip0", Line: 20}: pin}})
	if err != nil {
		b.Fatal(err)
	}
	<-pin.out // the cut written by NewManager
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for range pin.out {
			}
		}()
		if err := m.Close(ctx); err != nil {
			b.Error(err)
		}
		close(pin.out) // Close has stopped every writer
		<-drained
	}()
	cut := []safety.Change{{Output: "K1", Cut: true}}
	restore := []safety.Change{{Output: "K1", Cut: false}}
	for b.Loop() {
		b.StopTimer()
		m.Apply(restore)
		if l := <-pin.out; l != pgpio.High {
			b.Fatalf("restore wrote %v", l)
		}
		b.StartTimer()
		m.Apply(cut)
		if l := <-pin.out; l != pgpio.Low {
			b.Fatalf("cut wrote %v", l)
		}
	}
}
