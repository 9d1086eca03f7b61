package upstream

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestSSEGateHoldsAnswerUntilNotificationsRelayed: an event stream carrying a
// progress notification and then the call's answer, in one read. The gate
// must release the notification, count it, and hold the answer's end until
// the relay marks it done.
func TestSSEGateHoldsAnswerUntilNotificationsRelayed(t *testing.T) {
	progress := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"mcpgate-1\",\"progress\":1}}\n\n"
	answer := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
	gate := newRelayGate(slog.New(slog.DiscardHandler))
	s := &sseGate{body: io.NopCloser(strings.NewReader(progress + answer)), gate: gate}

	var got []byte
	buf := make([]byte, 1)
	for len(got) < len(progress) {
		n, err := s.Read(buf)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != progress {
		t.Fatalf("first bytes released = %q, want the notification event", got)
	}
	gate.mu.Lock()
	pending := gate.pending
	gate.mu.Unlock()
	if pending != 1 {
		t.Fatalf("pending = %d after the notification passed, want 1", pending)
	}
	gate.relayed()
	rest, err := io.ReadAll(s)
	if err != nil || string(rest) != answer {
		t.Fatalf("rest = %q, %v; want the answer unchanged", rest, err)
	}
}

// TestSSEGatePassesBytesUnchanged: whatever the stream holds (comments,
// CRLF, multi-line data, a last line without a newline) comes out as it went in.
func TestSSEGatePassesBytesUnchanged(t *testing.T) {
	in := ": comment\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\ntrailing"
	s := &sseGate{body: io.NopCloser(strings.NewReader(in)), gate: newRelayGate(slog.New(slog.DiscardHandler))}
	out, err := io.ReadAll(s)
	if err != nil || string(out) != in {
		t.Fatalf("out = %q, %v", out, err)
	}
}

// FuzzSSEGate: whatever an upstream streams, the gate passes every byte
// through unchanged and in order, however the reads are sized.
func FuzzSSEGate(f *testing.F) {
	f.Add([]byte("data: {\"method\":\"notifications/progress\"}\n\ndata: {\"id\":1,\"result\":{}}\n\n"), uint8(3))
	f.Add([]byte("data: {\"method\":\"notifications/message\"}\r\n\r\n: x\n"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		gate := newRelayGate(slog.New(slog.DiscardHandler))
		// Every gated notification is marked relayed at once, as the relay
		// would: the gate never waits out its timeout here.
		gate.relayedAll = true
		s := &sseGate{body: io.NopCloser(strings.NewReader(string(in))), gate: gate}
		buf := make([]byte, int(chunk)%64+1)
		var out []byte
		for {
			n, err := s.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if string(out) != string(in) {
			t.Fatalf("out %q != in %q", out, in)
		}
	})
}

func TestSSEGateClassify(t *testing.T) {
	tests := []struct {
		name, data string
		want       int
	}{
		{"response", `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}]}}`, eventResponse},
		{"error response", `{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"m"}}`, eventResponse},
		{"progress", `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`, eventGated},
		{"log message", `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`, eventGated},
		{"other notification", `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`, eventOther},
		{"request", `{"jsonrpc":"2.0","id":9,"method":"notifications/progress"}`, eventOther},
		{"not JSON", `{"jsonrpc":`, eventOther},
		{"case variant", `{"jsonrpc":"2.0","ID":1,"result":{}}`, eventOther},
		{"empty", ``, eventOther},
		// Past the strict gate's default limits (a 2 MiB string): still read.
		{"large result", `{"jsonrpc":"2.0","id":1,"result":{"text":"` + strings.Repeat("x", 2<<20) + `"}}`, eventResponse},
		{"deep result", `{"jsonrpc":"2.0","id":1,"result":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, eventResponse},
	}
	for _, tt := range tests {
		s := &sseGate{data: []byte(tt.data)}
		if got := s.classify(); got != tt.want {
			t.Errorf("%s: classify = %d, want %d", tt.name, got, tt.want)
		}
	}
}
