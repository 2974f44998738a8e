package contract

import "bytes"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// JoinTelemetry is the buffer's form of a telemetry message published in
// both encodings (mqtt.telemetry: both): the v1 payload, a newline, the v2
// payload. Neither encoder writes a raw newline, so the split is
// unambiguous; storing both as one outbox message gives them one seq and
// one acknowledgement, and a resend repeats both byte for byte.
func JoinTelemetry(v1, v2 []byte) []byte {
	out := make([]byte, 0, len(v1)+1+len(v2))
	out = append(out, v1...)
	out = append(out, '\n')
	return append(out, v2...)
}

// SplitTelemetry returns the v1 and v2 payloads of a buffered telemetry
// message (JoinTelemetry's form, a v1 payload, or a v2 payload); a part
// it does not hold is nil.
func SplitTelemetry(payload []byte) (v1, v2 []byte) {
	if a, b, ok := bytes.Cut(payload, []byte{'\n'}); ok {
		return a, b
	}
	if bytes.HasPrefix(payload, []byte(`{"v":2,`)) {
		return nil, payload
	}
	return payload, nil
}
