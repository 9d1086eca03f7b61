package audit

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends the line of record r (without its newline) to dst:
// the bytes json.Marshal makes of r, which it is tested to match
// (TestAppendRecordMatchesMarshal, FuzzAppendRecord), made without
// reflection. The writer encodes every record under its lock, once per
// call or more, so this is on every call's path.
//
// Events it does not encode itself go to json.Marshal: recorded arguments,
// which json.Marshal compacts and escapes, and a time not in UTC (the Log
// records only UTC) or outside years 0-9999, which json.Marshal refuses
// (as it refuses offsets of a day or more).
func appendRecord(dst []byte, r recordOut) ([]byte, error) {
	ev := r.Event
	if ev == nil || len(ev.Arguments) > 0 || ev.Time.Location() != time.UTC || ev.Time.Year() < 0 || ev.Time.Year() > 9999 {
		line, err := json.Marshal(r)
		return append(dst, line...), err
	}
	b := append(dst, `{"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, r.Index, 10)
	b = append(b, `,"prev":`...)
	b = appendString(b, r.Prev)
	b = append(b, `,"event":{"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "call", ev.Call, true)
	b = appendField(b, "stage", string(ev.Stage), true)
	b = appendField(b, "principal", ev.Principal, false)
	b = appendStrings(b, "roles", ev.Roles)
	b = appendStrings(b, "scopes", ev.Scopes)
	b = appendField(b, "auth_method", ev.AuthMethod, true)
	b = appendField(b, "session", ev.Session, true)
	b = appendField(b, "era", ev.Era, true)
	b = appendField(b, "method", ev.Method, false)
	b = appendField(b, "upstream", ev.Upstream, true)
	b = appendField(b, "name", ev.Name, true)
	b = appendField(b, "decision", string(ev.Decision), false)
	b = appendField(b, "rule", ev.Rule, true)
	b = appendField(b, "reason", ev.Reason, true)
	b = appendField(b, "args_sha256", ev.ArgsSHA256, true)
	b = appendField(b, "arguments_omitted", ev.ArgumentsOmitted, true)
	b = appendField(b, "outcome", ev.Outcome, true)
	b = appendInt(b, "latency_ms", ev.LatencyMS, false)
	b = appendInt(b, "bytes_in", ev.BytesIn, false)
	b = appendInt(b, "bytes_out", ev.BytesOut, false)
	b = appendInt(b, "http_status", int64(ev.HTTPStatus), true)
	b = appendInt(b, "error_code", int64(ev.ErrorCode), true)
	b = appendField(b, "remote", ev.Remote, true)
	b = appendInt(b, "count", int64(ev.Count), true)
	return append(b, "}}"...), nil
}

// appendField appends ,"key":"value", or nothing if omitEmpty and value
// is empty.
func appendField(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	return appendString(appendKey(b, key), value)
}

// appendKey appends ,"key": (keys are plain ASCII and need no escaping).
func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendInt(b []byte, key string, v int64, omitEmpty bool) []byte {
	if omitEmpty && v == 0 {
		return b
	}
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

func appendStrings(b []byte, key string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(appendKey(b, key), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendString appends s as json.Marshal writes a string: HTML-safe (<, >
// and & escaped), U+2028 and U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
