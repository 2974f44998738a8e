package sim_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/sim"
)

func TestFormatMessage(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 1, 0, time.Local)
	const p = "hazmon/v1/site-0001/gw-01/"
	for _, tc := range []struct {
		topic, payload, want string
	}{
		{p + "telemetry",
			`{"v":1,"agent":"gw-01","site":"site-0001","seq":5,"historical":false,"readings":[{"sensor":"CH4-101","type":"methane","ts":1700000000000,"value":0.52,"unit":"%CH4","status":"normal"},{"sensor":"CO-101","type":"co","ts":1700000000000,"value":3,"unit":"ppm","status":"normal"}]}`,
			"12:00:01 telemetry seq=5 CH4-101=0.52%CH4 normal CO-101=3ppm normal"},
		{p + "telemetry",
			`{"v":1,"seq":9,"historical":true,"readings":[{"sensor":"CH4-101","value":null,"unit":"%CH4","status":"fault","error":"timeout"}]}`,
			"12:00:01 telemetry seq=9 historical CH4-101=null fault(timeout)"},
		{p + "status",
			`{"v":1,"state":"online","ts":1700000000000,"version":"1.2.0","sensors":["CH4-101","CO-101"]}`,
			"12:00:01 status online gw-01 version=1.2.0 sensors=2"},
		{p + "status", `{"v":1,"state":"offline","ts":1700000000000}`, "12:00:01 status offline gw-01"},
		{p + "status", ``, "12:00:01 status gw-01 (retained message cleared)"},
		{p + "alarm",
			`{"v":1,"seq":3,"alarm_id":"CH4-101/cutoff/1700000000000","sensor":"CH4-101","level":"cutoff","state":"raised","ts":1700000000000,"value":1.52,"limit":1.5,"outputs":["breaker-3"]}`,
			"12:00:01 ALARM raised CH4-101 cutoff value=1.52 limit=1.5 outputs=breaker-3 seq=3"},
		{p + "alarm",
			`{"v":1,"seq":4,"sensor":"CH4-101","level":"alarm","state":"cleared","value":null,"limit":1,"outputs":[],"calibration":true}`,
			"12:00:01 ALARM cleared CH4-101 alarm value=null limit=1 calibration seq=4"},
		{p + "event",
			`{"v":1,"seq":1,"type":"data_loss","ts":5,"from_ts":` + ms(at) + `,"to_ts":` + ms(at.Add(time.Second)) + `,"readings":10,"reason":"buffer_full"}`,
			"12:00:01 event data_loss seq=1 readings=10 from=12:00:01.000 to=12:00:02.000 reason=buffer_full"},
		{p + "current",
			`{"v":1,"readings":[{"sensor":"O2-101","value":20.9,"unit":"%vol","status":"normal"}]}`,
			"12:00:01 current O2-101=20.9%vol normal"},
		{p + "telemetry", `not json`, "12:00:01 " + p + "telemetry not json"},
		{"other/topic", `{"x":1}`, `12:00:01 other/topic {"x":1}`},
	} {
		if got := sim.FormatMessage(tc.topic, []byte(tc.payload), at); got != tc.want {
			t.Errorf("%s %s:\n got  %s\n want %s", tc.topic, tc.payload, got, tc.want)
		}
	}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
