package contract

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

const testBootID = "0123456789abcdef0123456789abcdef"

// mustValidate encodes v and validates it as kind.
func mustValidate(t *testing.T, kind string, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(kind, b); err != nil {
		t.Fatalf("%s %s: %v", kind, b, err)
	}
	return b
}

func mustReject(t *testing.T, kind, why, payload string) {
	t.Helper()
	if err := Validate(kind, []byte(payload)); err == nil {
		t.Errorf("%s (%s): accepted %s", kind, why, payload)
	}
}

func TestStatus_StatesWillAndReasonsFollowTheSchema(t *testing.T) {
	hash := ConfigHash([]byte("agent: {id: gw-01}\n"))
	mustValidate(t, KindStatus, Status{V: 1, State: StateOnline, TS: 5, BootID: testBootID, Version: "dev", ConfigHash: hash, Sensors: []string{"CH4-101"}})
	mustValidate(t, KindStatus, Status{V: 1, State: StateDegraded, Reasons: []string{"buffer_fault: read-only file system"}, TS: 5, BootID: testBootID, Version: "dev", Sensors: []string{}})
	mustValidate(t, KindStatus, Status{V: 1, State: StateOffline, TS: 5, BootID: testBootID, Version: "dev", Sensors: []string{}})
	will := mustValidate(t, KindStatus, Status{V: 1, State: StateOffline, Will: true, BootID: testBootID, Version: "dev", Sensors: []string{"CH4-101"}})
	if strings.Contains(string(will), `"ts"`) {
		t.Errorf("will %s carries a ts", will)
	}
	const base = `"v":1,"boot_id":"` + testBootID + `","version":"dev","sensors":[]`
	mustReject(t, KindStatus, "degraded without reasons", `{`+base+`,"state":"degraded","ts":5}`)
	mustReject(t, KindStatus, "degraded with no reason", `{`+base+`,"state":"degraded","reasons":[],"ts":5}`)
	mustReject(t, KindStatus, "online with reasons", `{`+base+`,"state":"online","reasons":["x"],"ts":5}`)
	mustReject(t, KindStatus, "a will with a ts", `{`+base+`,"state":"offline","will":true,"ts":5}`)
	mustReject(t, KindStatus, "a will saying online", `{`+base+`,"state":"online","will":true}`)
	mustReject(t, KindStatus, "no ts outside the will", `{`+base+`,"state":"online"}`)
	mustReject(t, KindStatus, "unknown state", `{`+base+`,"state":"sleeping","ts":5}`)
	mustReject(t, KindStatus, "no boot id", `{"v":1,"version":"dev","sensors":[],"state":"online","ts":5}`)
	mustReject(t, KindStatus, "short boot id", `{"v":1,"boot_id":"abc","version":"dev","sensors":[],"state":"online","ts":5}`)
	mustReject(t, KindStatus, "bad config hash", `{`+base+`,"state":"online","ts":5,"config_hash":"xyz"}`)
}

func TestOutputs_PayloadFollowsTheSchema(t *testing.T) {
	mustValidate(t, KindOutputs, Outputs{V: 1, Agent: "gw-01", Site: "site-0001", TS: 5, Outputs: []Output{
		{Name: "breaker-3", Commanded: OutputCut, Why: "rules", ChangedAt: 4, Confirmed: true, ReadBack: OutputCut,
			Feed: &OutputFeed{Input: "feed-3", State: FeedAbsent}},
		{Name: "fan-1", Commanded: OutputOn, Confirmed: false, ReadBack: OutputUnknown, Error: "coil write: timeout"},
		{Name: "pump-2", Commanded: OutputCut, Why: "found cut while commanded on", ReadBack: OutputCut, Latched: "found cut while commanded on", Testing: false,
			Feed: &OutputFeed{Input: "feed-2", State: FeedPresent, Abnormal: true, Reason: "feed present while cut"}},
	}})
	mustValidate(t, KindOutputs, Outputs{V: 1, Agent: "gw-01", Site: "site-0001", TS: 5, Outputs: []Output{}})
	const head = `{"v":1,"agent":"gw-01","site":"s","ts":5,"outputs":[`
	mustReject(t, KindOutputs, "cut without why", head+`{"name":"b","commanded":"cut","confirmed":true,"read_back":"cut","testing":false}]}`)
	mustReject(t, KindOutputs, "on with why", head+`{"name":"b","commanded":"on","why":"rules","confirmed":true,"read_back":"on","testing":false}]}`)
	mustReject(t, KindOutputs, "bad read-back", head+`{"name":"b","commanded":"on","confirmed":true,"read_back":"energised","testing":false}]}`)
	mustReject(t, KindOutputs, "no outputs", `{"v":1,"agent":"gw-01","site":"s","ts":5}`)
}

func TestFaultReading_CodeIsRequiredAndFromTheEnum(t *testing.T) {
	const pre = `{"sensor":"X","type":"methane","ts":1,"unit":"%",`
	mustReject(t, "reading", "fault without code", pre+`"value":null,"status":"fault","error":"timeout"}`)
	mustReject(t, "reading", "fault with a code outside the enum", pre+`"value":null,"status":"fault","error":"timeout","code":"late"}`)
	mustReject(t, "reading", "normal with a code", pre+`"value":1,"status":"normal","code":"timeout"}`)
	for _, c := range reading.FaultCodes() {
		r := FromReading(reading.Reading{Sensor: "X", Type: "methane", Time: time.UnixMilli(1), Status: reading.StatusFault, Err: "why", Code: c})
		b := mustValidate(t, "reading", r)
		if r.Code != string(c) {
			t.Errorf("code %q published as %s", c, b)
		}
	}
}

// The schema's enum of "code" is exactly reading.FaultCodes: a code added
// in Go but not in the schema (or the reverse) fails here.
func TestFaultReading_SchemaEnumIsEveryFaultCode(t *testing.T) {
	b, err := schemaFS.ReadFile("schemas/reading.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties struct {
			Code struct {
				Enum []string `json:"enum"`
			} `json:"code"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range reading.FaultCodes() {
		want = append(want, string(c))
	}
	if !slices.Equal(s.Properties.Code.Enum, want) {
		t.Fatalf("schema code enum %v, want reading.FaultCodes %v", s.Properties.Code.Enum, want)
	}
}

func TestFromReading_FaultWithoutCodeGetsOne(t *testing.T) {
	at := time.UnixMilli(1)
	for _, c := range []struct {
		r    reading.Reading
		want reading.FaultCode
	}{
		{reading.Reading{Sensor: "X", Type: "methane", Time: at, Status: reading.StatusFault, Err: "?"}, reading.CodeUnknown},
		{reading.Reading{Sensor: "X", Type: "methane", Time: at, Status: reading.StatusFault, Value: math.NaN()}, reading.CodeNaN},
		{reading.Reading{Sensor: "X", Type: "methane", Time: at, Status: reading.StatusFault, Value: math.Inf(-1)}, reading.CodeInf},
		{reading.Reading{Sensor: "X", Type: "methane", Time: at, Status: reading.StatusNormal, Value: math.Inf(1)}, reading.CodeInf},
	} {
		r := FromReading(c.r)
		mustValidate(t, "reading", r)
		if r.Code != string(c.want) {
			t.Errorf("%+v: code %q, want %q", c.r, r.Code, c.want)
		}
	}
}

func TestEvents_LifecycleTypesCarryTheirFields(t *testing.T) {
	h1, h2 := ConfigHash([]byte("a")), ConfigHash([]byte("b"))
	ev := func(e Event) Event { e.V, e.Seq, e.Agent, e.Site, e.TS = 1, 1, "gw-01", "site-0001", 5; return e }
	for _, stop := range []string{StopClean, StopCrash, StopUnknown} {
		mustValidate(t, KindEvent, ev(Event{Type: EventStart, PreviousStop: stop}))
	}
	mustValidate(t, KindEvent, ev(Event{Type: EventReload, ConfigHashBefore: h1, ConfigHashAfter: h2}))
	mustValidate(t, KindEvent, ev(Event{Type: EventBufferFault, Reason: "read_only", Detail: "open buffer.db: read-only file system"}))
	const pre = `{"v":1,"seq":1,"agent":"a","site":"s","ts":1,`
	mustReject(t, KindEvent, "start without previous_stop", pre+`"type":"start"}`)
	mustReject(t, KindEvent, "start with an unknown previous_stop", pre+`"type":"start","previous_stop":"sigkill"}`)
	mustReject(t, KindEvent, "previous_stop on another event", pre+`"type":"clock_step","previous_stop":"clean"}`)
	mustReject(t, KindEvent, "reload without hashes", pre+`"type":"reload"}`)
	mustReject(t, KindEvent, "reload with one hash", pre+`"type":"reload","config_hash_after":"`+h2+`"}`)
	mustReject(t, KindEvent, "buffer_fault without reason", pre+`"type":"buffer_fault","detail":"EIO"}`)
	mustReject(t, KindEvent, "an event type outside the enum", pre+`"type":"reboot"}`)
}

func TestConfigHash_IsSHA256Hex(t *testing.T) {
	// sha256("") is well known.
	if h := ConfigHash(nil); h != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("ConfigHash(nil) = %s", h)
	}
	if ConfigHash([]byte("a")) == ConfigHash([]byte("a ")) {
		t.Fatal("different files, same hash")
	}
}
