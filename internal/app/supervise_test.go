package app

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/reading"
)

// The supervisor's fault for a stalled bus carries code stalled and the
// reason, and is a valid fault reading on the wire.
func TestSupervise_StallFaultCarriesCodeStalled(t *testing.T) {
	r := stallFault("plc", config.Sensor{ID: "CH4-101", Type: "methane", Unit: "%CH4"}, time.UnixMilli(1_764_403_200_000))
	if r.Valid() || r.Code != reading.CodeStalled || r.Err == "" {
		t.Fatalf("stall fault %+v, want a fault with code stalled and a reason", r)
	}
	b, err := contract.Marshal(contract.FromReading(r))
	if err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate("reading", b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
}
