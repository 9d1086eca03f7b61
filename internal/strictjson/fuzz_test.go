package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		typicalCall,
		`{}`, `[]`, `""`, `0`, `-0.0e-0`, `null`, `true`,
		`{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"a":1,"\u0041":2}`, "{\"k\":1,\"\u212a\":2}", "{\"params\":{},\"param\u017f\":{}}",
		`{"\u0000":1}`, `["\ud800"]`, `["\ud83d\ude00"]`, "\xef\xbb\xbf{}", "[\"\xff\"]", `{} {}`, `[1e400]`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"n","uri":"u","_meta":{"io.modelcontextprotocol/protocolVersion":"v"}}}`,
		`{"jsonrpc":"2.0","id":"x","result":{"a":[1,2,{"b":null}]}}`,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"n","_meta":{"progressToken":"t","io.modelcontextprotocol/logLevel":"info"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments": {"message":"hi","n":[1, 2]} }}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":null}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","Arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"m"}`, `[{"jsonrpc":"2.0","id":1,"method":"m"}]`,
		manyKeys(20, "k%d"),
	} {
		f.Add([]byte(s))
	}
}

// fuzzLimits are small enough that the fuzzer reaches every limit.
func fuzzLimits() Limits {
	return Limits{MaxBytes: 1 << 16, MaxDepth: 8, MaxStringBytes: 64, MaxObjectMembers: 24, MaxArrayLen: 24}
}

func FuzzCheck(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range []Limits{fuzzLimits(), DefaultLimits()} {
			err := Check(data, lim)
			if err != nil {
				checkError(t, data, err, CodeParseError)
				continue
			}
			checkAccepted(t, data)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data, fuzzLimits())
		checkErr := Check(data, fuzzLimits())
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == CodeParseError {
				if checkErr == nil {
					t.Fatalf("ParseMessage parse error %v but Check accepts", err)
				}
			} else if checkErr != nil {
				t.Fatalf("Check rejects (%v) but ParseMessage says %v", checkErr, err)
			}
			checkError(t, data, err, 0)
			return
		}
		if checkErr != nil {
			t.Fatalf("ParseMessage accepts but Check rejects: %v", checkErr)
		}
		checkAccepted(t, data)
		checkRouting(t, data, m)
	})
}

func checkError(t *testing.T, data []byte, err error, code int) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *Error", err)
	}
	if code != 0 && e.Code != code || e.Code != CodeParseError && e.Code != CodeInvalidRequest {
		t.Fatalf("bad code %d", e.Code)
	}
	if e.Offset < -1 || e.Offset > len(data) {
		t.Fatalf("offset %d out of range [-1,%d]", e.Offset, len(data))
	}
	if e.Reason == "" || len(e.Reason) > 300 {
		t.Fatalf("bad reason %q", e.Reason)
	}
}

// checkAccepted verifies, independently of this package, that accepted input
// has exactly one reading.
func checkAccepted(t *testing.T, data []byte) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("accepted but json.Valid rejects: %q", data)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("accepted but json.Unmarshal fails: %v", err)
	}
	if err := foldedKeysUnique(data); err != nil {
		t.Fatalf("accepted %q but %v", data, err)
	}
	// Re-encoding must not meet U+FFFD that was not in the input: that would
	// mean invalid UTF-8 or a lone surrogate slipped through.
	if out, _ := json.Marshal(v); bytes.Count(out, []byte("\ufffd")) > bytes.Count(data, []byte("\ufffd"))+bytes.Count(bytes.ToLower(data), []byte(`\ufffd`)) {
		t.Fatalf("accepted %q which decodes with replacement characters", data)
	}
}

// foldedKeysUnique walks data with encoding/json's tokenizer and compares
// every pair of keys in each object with strings.EqualFold, which is the
// matching rule encoding/json itself uses for struct fields.
func foldedKeysUnique(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type obj struct {
		keys      []string
		expectKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if strings.IndexByte(k, 0) >= 0 {
				return fmt.Errorf("key %q contains NUL", k)
			}
			for _, prev := range top.keys {
				if strings.EqualFold(prev, k) {
					return fmt.Errorf("keys %q and %q fold equal", prev, k)
				}
			}
			top.keys = append(top.keys, k)
			top.expectKey = false
			continue
		}
		if top != nil {
			top.expectKey = true // the value just read completes a member
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &obj{expectKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// Inside an array top is nil, so expectKey was not touched; for
		// a container value the member completes when it closes, which
		// the flag above already anticipated.
	}
}

// checkRouting decodes data the way an SDK would, with encoding/json into
// structs whose fields match case-insensitively, and requires it to agree
// with the routing view.
func checkRouting(t *testing.T, data []byte, m *Message) {
	t.Helper()
	var sdk struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  *string         `json:"method"`
		ID      json.RawMessage `json:"id"`
		Params  *struct {
			Name      any             `json:"name"`
			URI       any             `json:"uri"`
			Meta      map[string]any  `json:"_meta"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &sdk); err != nil {
		t.Fatalf("accepted message fails SDK-style decode: %v", err)
	}
	if sdk.JSONRPC != "2.0" {
		t.Fatalf("jsonrpc %q", sdk.JSONRPC)
	}
	var method string
	if sdk.Method != nil {
		method = *sdk.Method
	}
	if method != m.Method {
		t.Fatalf("Method %q, SDK sees %q", m.Method, method)
	}
	if !bytes.Equal(sdk.ID, m.ID) {
		t.Fatalf("ID %s, SDK sees %s", m.ID, sdk.ID)
	}
	var name, uri, pv string
	var notified bool
	if p := sdk.Params; p != nil {
		name, _ = p.Name.(string)
		uri, _ = p.URI.(string)
		pv, _ = p.Meta[protocolVersionKey].(string)
		_, progress := p.Meta[progressTokenKey]
		_, logs := p.Meta[logLevelKey]
		notified = progress || logs
	}
	if name != m.Name || uri != m.URI || pv != m.ProtocolVersion || notified != m.WantsNotifications {
		t.Fatalf("routing %q %q %q %v, SDK sees %q %q %q %v", m.Name, m.URI, m.ProtocolVersion, m.WantsNotifications, name, uri, pv, notified)
	}
	var args json.RawMessage
	if sdk.Params != nil {
		args = sdk.Params.Arguments
	}
	if !bytes.Equal(args, m.Arguments) || (args == nil) != (m.Arguments == nil) {
		t.Fatalf("Arguments %q, SDK sees %q", m.Arguments, args)
	}
	var want Kind
	switch {
	case sdk.Method != nil && sdk.ID != nil:
		want = Request
	case sdk.Method != nil:
		want = Notification
	default:
		want = Response
	}
	if m.Kind != want {
		t.Fatalf("Kind %v, want %v", m.Kind, want)
	}
}
