package publish

import (
	"testing"

	"github.com/hazmon/hazmon/internal/contract"
)

// TestWithFaultCode: a buffered fault reading from before fault codes goes
// out with code "unknown" and validates; others are unchanged.
func TestWithFaultCode(t *testing.T) {
	old := []byte(`{"sensor":"S","type":"flow","ts":1,"value":null,"unit":"m","status":"fault","error":"timeout"}`)
	got := withFaultCode(old)
	if err := contract.Validate("reading", got); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	ok := []byte(`{"sensor":"S","type":"flow","ts":1,"value":1,"unit":"m","status":"normal"}`)
	if string(withFaultCode(ok)) != string(ok) {
		t.Fatal("a valid reading was changed")
	}
	coded := []byte(`{"sensor":"S","type":"flow","ts":1,"value":null,"unit":"m","status":"fault","error":"x","code":"range"}`)
	if string(withFaultCode(coded)) != string(coded) {
		t.Fatal("a coded fault was changed")
	}
}
