package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// checkAppendRecord fails t unless appendRecord writes exactly what
// json.Marshal writes for r (or fails where it fails), after whatever dst
// already holds.
func checkAppendRecord(t *testing.T, r recordOut) {
	t.Helper()
	want, wantErr := json.Marshal(r)
	prefix := []byte("kept ")
	got, err := appendRecord(bytes.Clone(prefix), r)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("appendRecord error %v, json.Marshal error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("appendRecord lost what dst held: %q", got)
	}
	if got := got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("appendRecord wrote\n%s\njson.Marshal writes\n%s", got, want)
	}
}

func TestAppendRecordMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 30, 1, 120_000_000, time.UTC)
	full := Event{
		Time: at, Call: NewCallID(), Stage: StageResult, Principal: "alice", Roles: []string{"dev", "ops"},
		Scopes: []string{"mcp:tools"}, AuthMethod: "api_key", Session: "s-1", Era: "2025-11-25", Method: "tools/call",
		Upstream: "github", Name: "search", Decision: Deny, Rule: "r1", Reason: "denied by rule",
		ArgsSHA256: ArgsDigest([]byte(`{}`)), ArgumentsOmitted: OmittedTooLarge, Outcome: OutcomeDenied,
		LatencyMS: 12, BytesIn: 345, BytesOut: 6789, HTTPStatus: 200, ErrorCode: -32602, Remote: "192.0.2.1", Count: 3,
	}
	tests := map[string]Event{
		"minimal":         {Time: at, Method: "tools/call", Decision: Allow},
		"every field":     full,
		"empty slices":    {Time: at, Method: "m", Decision: Allow, Roles: []string{}, Scopes: []string{}},
		"whole seconds":   {Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Method: "m", Decision: Allow},
		"nanoseconds":     {Time: time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC), Method: "m", Decision: Allow},
		"not UTC":         {Time: at.In(time.FixedZone("x", -5*3600-1800)), Method: "m", Decision: Allow},
		"offset of a day": {Time: at.In(time.FixedZone("", 25*3600)), Method: "m", Decision: Allow},
		"negative counts": {Time: at, Method: "m", Decision: Allow, LatencyMS: -1, BytesIn: -2, HTTPStatus: -3, Count: -4},
		"escapes": {Time: at, Method: "m\"\\\b\f\n\r\t\x00\x1f\x7f", Decision: Allow,
			Principal: "<script>&amp;</script>", Reason: "line\u2028para\u2029end", Name: "caf\xc3\xa9 \xff\xfe bad",
			Roles: []string{"a\"b", "\xe2\x80"}},
		"arguments":       {Time: at, Method: "tools/call", Decision: Allow, Arguments: json.RawMessage(`{ "a" : "<b>" }`)},
		"year 10000":      {Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Method: "m", Decision: Allow},
		"year before one": {Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), Method: "m", Decision: Allow},
		"zero time":       {Method: "m", Decision: Allow},
	}
	for name, ev := range tests {
		t.Run(name, func(t *testing.T) {
			checkAppendRecord(t, recordOut{Type: typeEvent, Index: 41, Prev: zeroPrev, Event: &ev})
		})
	}
	t.Run("no event", func(t *testing.T) {
		checkAppendRecord(t, recordOut{Type: typeEvent, Index: 0, Prev: zeroPrev})
	})
}

func FuzzAppendRecord(f *testing.F) {
	f.Add("alice", "tools/call", "echo", "r\u2028<&>", []byte("\xff\x00"), int64(1), int64(1_700_000_000_123_456_789), 0, 200, false)
	f.Add("", "http:GET", "", "", []byte(nil), int64(-1), int64(0), -19800, 0, true)
	f.Fuzz(func(t *testing.T, principal, method, name, reason string, raw []byte, n, nanos int64, offset, status int, deny bool) {
		ev := Event{
			Time: time.Unix(nanos/7, nanos).In(time.FixedZone("", offset)), Call: string(raw), Principal: principal, Method: method, Name: name,
			Reason: reason, Roles: []string{name, reason}, Decision: Allow, LatencyMS: n, BytesIn: -n, HTTPStatus: status,
			Remote: string(raw), Count: status,
		}
		if deny {
			ev.Decision, ev.Outcome = Deny, OutcomeRefused
		}
		checkAppendRecord(t, recordOut{Type: typeEvent, Index: n, Prev: reason, Event: &ev})
	})
}

// BenchmarkEncodeRecord compares the record encoder with json.Marshal of
// the same record, in one run.
func BenchmarkEncodeRecord(b *testing.B) {
	ev := Event{
		Time: time.Now().UTC(), Call: NewCallID(), Stage: StageResult, Principal: "bench", Roles: []string{"bench"},
		AuthMethod: "api_key", Session: "3JZ4QF7WQ6N5NMBXQZK2Y6T6LH", Era: "2025-11-25", Method: "tools/call",
		Upstream: "demo", Name: "echo", Decision: Allow, Rule: "bench-echo", ArgsSHA256: ArgsDigest([]byte(`{"message":"hello"}`)),
		Outcome: OutcomeOK, LatencyMS: 3, BytesIn: 180, BytesOut: 250, HTTPStatus: 200,
	}
	r := recordOut{Type: typeEvent, Index: 123456, Prev: zeroPrev, Event: &ev}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendRecord", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			var err error
			if buf, err = appendRecord(buf[:0], r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
