package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/safety"
)

// keyDocs holds each key's default and meaning for `hazmon config keys`
// (Keys). Its paths are those of Keys: a key added to Config without an
// entry here fails TestKeys_EveryYAMLKeyDocumented.
var keyDocs = map[string]keyDoc{
	"agent":          {"", "This gateway's identity and where it keeps its data."},
	"agent.id":       {"required", "Gateway id, used in MQTT topics: letters, digits, '-', '_'."},
	"agent.site":     {"required", "Site (enterprise) code given by the bureau, used in MQTT topics: letters, digits, '-', '_'."},
	"agent.data_dir": {DefaultDataDir, "Folder of the store-and-forward buffer (buffer.db) and the agent's state files."},

	"mqtt":              {"", "The link to the bureau's MQTT broker."},
	"mqtt.brokers":      {"required", "Broker URLs, tried in order: tcp://host:1883 (plaintext), ssl://host:8883 or tls:// or mqtts:// (TLS), ws:// or wss://. A password in a URL is never shown (REDACTED); prefer username and password_file."},
	"mqtt.topic_prefix": {DefaultTopicPrefix, "First part of every topic; no wildcards (+ #), no leading or trailing '/'."},
	"mqtt.client_id":    {"hazmon-<site>-<id>", "MQTT client id."},
	"mqtt.username":     {"", "MQTT user name; required with password_file."},
	"mqtt.password_file": {"", "File holding only the MQTT password, read at each connect and never logged or shown. " +
		"Keep it mode 0640 root:hazmon: validate warns when every user can read it."},
	"mqtt.tls":                      {"", "TLS of the broker link; only with an ssl://, tls://, mqtts:// or wss:// broker (with plaintext brokers only it is an error). validate loads these files as the agent will."},
	"mqtt.tls.ca_file":              {"system roots", "PEM file of the CA certificate(s) that signed the broker's certificate."},
	"mqtt.tls.cert_file":            {"", "Client certificate (PEM) for mutual TLS; with key_file."},
	"mqtt.tls.key_file":             {"", "Private key (PEM) of cert_file; it must match the certificate. validate warns when every user can read it."},
	"mqtt.tls.server_name":          {"the broker's host", "Name the broker's certificate must carry, when it differs from the host in the URL."},
	"mqtt.tls.insecure_skip_verify": {"false", "Do not verify the broker's certificate (anyone on the path can impersonate the broker); validate warns."},
	"mqtt.reconnect_max":            {DefaultReconnectMax.String(), "Cap of the reconnect back-off after a lost broker link (1s..60s); the first retry comes within 1 s."},
	"mqtt.keepalive":                {DefaultKeepAlive.String(), "MQTT keepalive (at least 1s); the broker's last will says offline within 1.5 x this of a silent agent."},
	"mqtt.connect_timeout":          {(10 * time.Second).String(), "How long one connection attempt to one broker may take."},
	"mqtt.publish_timeout":          {(10 * time.Second).String(), "How long to wait for a PUBACK before the link is taken for dead and the message is sent again from the buffer."},
	"mqtt.batch_max":                {fmt.Sprint(DefaultBatchMax), "Most readings in one telemetry message (1..10000)."},
	"mqtt.window_bytes":             {fmt.Sprint(DefaultWindowBytes), "Payload bytes waiting for PUBACKs during a backlog replay."},
	"mqtt.rate_bytes":               {"0 (unlimited)", "Bytes per second a backlog replay may send; set it below a slow uplink's capacity so keepalive pings are never starved."},

	"buffer":           {"", "The store-and-forward buffer (bbolt) that keeps what the broker has not acknowledged."},
	"buffer.max_bytes": {fmt.Sprint(DefaultBufferBytes), "Cap of the buffer in bytes (at least 1 MiB); beyond it the oldest telemetry is evicted, counted as data loss."},
	"buffer.max_age":   {DefaultBufferMaxAge.String(), "Records older than this are evicted (records of major hazard sources are kept at least 30 days)."},

	"buses":             {"", "Modbus links: one per RS-485 port or Modbus TCP device."},
	"buses[].name":      {"required", "Unique name, referred to by sensors[].bus and outputs[].modbus.bus."},
	"buses[].protocol":  {"required", "tcp (Modbus TCP) or rtu (Modbus RTU over a serial port)."},
	"buses[].address":   {"", "tcp: host:port of the device, e.g. 192.168.1.10:502."},
	"buses[].device":    {"", "rtu: the serial port, e.g. /dev/ttyUSB0."},
	"buses[].baud":      {"9600", "rtu: 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200; must match every slave on the line."},
	"buses[].data_bits": {"8", "rtu: 7 or 8."},
	"buses[].parity":    {"E", "rtu: N, E or O."},
	"buses[].stop_bits": {"1", "rtu: 1 or 2."},
	"buses[].timeout": {DefaultTCPTimeout.String() + " tcp, " + DefaultRTUTimeout.String() + " rtu",
		"Per transaction, 10ms..30s; at most 1s on a bus carrying outputs or on-time sensors (GB 50581-2010 §3.1.4: cut within 2 s)."},
	"buses[].echo":       {"auto", "rtu: whether the RS-485 adapter receives what it sends: auto (skip a copy of the request, learn from reads), on or off."},
	"buses[].turnaround": {"100ms", "rtu: silence after a slave's failed transaction before the next request to it, so a late reply is drained (Modbus over Serial Line §2.4.1); 1ms..2s."},
	"buses[].max_gap":    {fmt.Sprint(DefaultMaxGap), "Unused registers a merged read of one slave and table may span (-1..125; -1: one request per sensor)."},

	"sensors":                       {"", "Measured points: where each is read and how it is decoded and judged."},
	"sensors[].id":                  {"required", "Unique id (letters, digits, '-', '_'), used in messages and alarms."},
	"sensors[].type":                {"required", strings.Join(SensorTypes, "|") + "."},
	"sensors[].bus":                 {"required (bus sensors)", "Name of the bus in buses it is read from."},
	"sensors[].slave":               {"required (bus sensors)", "Modbus unit id: 1..247 on rtu, 0..255 on tcp."},
	"sensors[].table":               {"required (bus sensors)", "holding, input, coil or discrete."},
	"sensors[].address":             {"0", "0-based protocol address (register 40001 is holding address 0)."},
	"sensors[].format":              {"uint16 (bool for coil/discrete/gpio)", "int16, uint16, int32, uint32, float32 or bool."},
	"sensors[].byte_order":          {"ABCD", "Word and byte order of a 32-bit value: ABCD, CDAB, BADC or DCBA."},
	"sensors[].scale":               {"1", "value = raw x scale + offset."},
	"sensors[].offset":              {"0", "Added after scale."},
	"sensors[].unit":                {"", "Engineering unit, e.g. %CH4, ppm, m; validate warns when a number has none."},
	"sensors[].interval":            {DefaultInterval.String(), "Poll interval (at least " + MinInterval.String() + ")."},
	"sensors[].range":               {"", "[min, max] valid engineering range; a value outside it is a fault (broken line, over-range)."},
	"sensors[].no_value":            {"", "Raw codes the sensor sends for \"no value\" (e.g. 65535): a fault."},
	"sensors[].location":            {"", "Methane preset from the methane table (Coal Mine Safety Regulations Art. 498): alarm, cut-off and restore limits of that place."},
	"sensors[].gpio":                {"", "Read a digital sensor from a GPIO line instead of a bus (float switch, door, fan or feed contact)."},
	"sensors[].gpio.chip":           {"required", "GPIO chip, e.g. gpiochip0."},
	"sensors[].gpio.line":           {"0", "Line offset on the chip, 0..511."},
	"sensors[].gpio.active_low":     {"false", "The value is 1 when the line is low."},
	"sensors[].gpio.pull":           {"none", "Bias: up, down or none (left as the board set it)."},
	"sensors[].gpio.debounce":       {DefaultDebounce.String(), "How long the line must be stable before a change counts, 0..10s."},
	"sensors[].rules":               {"location preset or type default", "The sensor's local safety rules (README \"Safety rules\")."},
	"sensors[].rules[].level":       {"required", strings.Join(ruleLevels, "|") + "."},
	"sensors[].rules[].above":       {"", "Trigger at value >= this (exactly one of above, below, equals)."},
	"sensors[].rules[].below":       {"", "Trigger at value <= this."},
	"sensors[].rules[].equals":      {"", "Digital sensor: trigger when the value is this (true or false)."},
	"sensors[].rules[].clear_below": {"the above limit", "Restore only when the value is strictly below this."},
	"sensors[].rules[].clear_above": {"the below limit", "Restore only when the value is strictly above this."},
	"sensors[].rules[].for":         {"0", "On-delay: the condition must hold this long; none on a methane cut-off, at most " + MaxCutoffDelay.String() + " on other cut-offs (GB 50581-2010 §3.1.4)."},
	"sensors[].rules[].outputs":     {"", "Outputs cut while the rule is raised."},
	"sensors[].rules[].on_fault":    {"cut for cut-offs and methane, else hold", "What the rule does while its sensor is faulty: cut or hold (keep the last state)."},
	"sensors[].cut_outputs":         {"", "With location and no hand-written rules: the outputs the preset's cut-off de-energises."},
	"sensors[].override_regulation": {"false", "Accept rules looser than the regulation's limits (validate then warns instead of failing)."},
	"sensors[].fault_unlock_after":  {safety.DefaultFaultUnlockAfter.String(), "Fault lockout: how long the sensor must read validly after a fault before its on_fault: cut outputs are released."},
	"sensors[].resolution":          {"one raw count x scale", "Comparison step of the rules in engineering units."},
	"sensors[].fault_after": {fmt.Sprint(DefaultFaultAfter), "Polls in a row without a valid reply before a communication fault; at least 1, at most " +
		fmt.Sprint(MaxCutFaultAfter) + " on a sensor whose rules cut outputs (GB 50581-2010 §3.1.4)."},
	"sensors[].calibration_due": {"", "When the next calibration is due (2006-01-02 or RFC 3339): a calibration_due event 24 h before, the alarm calibration_overdue from it."},
	"sensors[].stale_after":     {"3 poll periods (see README)", "No reading for this long: the rules treat the sensor as faulty (a backstop for a poller that stopped)."},

	"outputs":                   {"", "Actuators: relays on GPIO lines or coils on Modbus slaves, energised while power is allowed (fail-safe)."},
	"outputs[].name":            {"required", "Unique name, referred to by rules' outputs and cut_outputs."},
	"outputs[].gpio":            {"", "A relay on a GPIO line (set exactly one of gpio or modbus)."},
	"outputs[].gpio.chip":       {"required", "GPIO chip, e.g. gpiochip0."},
	"outputs[].gpio.line":       {"0", "Line offset on the chip, 0..511."},
	"outputs[].gpio.active_low": {"false", "The relay is energised by a low line."},
	"outputs[].modbus":          {"", "A coil on a Modbus slave (a PLC-driven breaker)."},
	"outputs[].modbus.bus":      {"required", "Name of the bus in buses."},
	"outputs[].modbus.slave":    {"0", "Modbus unit id of the slave."},
	"outputs[].modbus.coil":     {"0", "0-based coil address, 0..65535."},
	"outputs[].feed":            {"", "Digital sensor id showing whether power is really present (read back after each switch)."},
	"outputs[].feed_timeout":    {DefaultFeedTimeout.String(), "How long the feed may take to follow a switch before the output is reported not confirmed."},
	"outputs[].heartbeat":       {"", "Modbus outputs: a coil the agent toggles while its safety loop runs, for the PLC's communications watchdog."},
	"outputs[].heartbeat.coil":  {"required", "0-based coil address on the output's slave (not the output's own coil)."},
	"outputs[].heartbeat.every": {DefaultHeartbeatEvery.String(), "Toggle period, " + MinHeartbeatEvery.String() + ".." + MaxHeartbeatEvery.String() + "."},

	"warning_groups":           {"", "Sets of sensors whose blue/yellow/orange/red levels combine into one warning (GB 51108-2015)."},
	"warning_groups[].name":    {"required", "Unique name, not a sensor id; the group's warnings carry it as their sensor."},
	"warning_groups[].sensors": {"required", "At least 2 sensor ids."},

	"control":        {"", "The local control socket the CLI talks to."},
	"control.socket": {DefaultSocket, "Path of the socket (mode 0660, group hazmon)."},

	"metrics":        {"", "Prometheus metrics over TCP; they are always on the control socket too (GET /metrics, hazmon metrics)."},
	"metrics.listen": {"off", "host:port serving GET /metrics in the Prometheus text format, e.g. " + DefaultMetricsListen + ". No authentication: an address other hosts can reach gets a warning."},

	"log":        {"", "The agent's log (stderr; journald under systemd)."},
	"log.level":  {"info", "debug, info, warn or error."},
	"log.format": {"text", "text or json."},
}
