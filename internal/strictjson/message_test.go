package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMessageAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message
	}{
		{"tools/call", typicalCall, Message{Kind: Request, Method: "tools/call", ID: []byte(`42`), Name: "search_issues",
			ProtocolVersion: "2025-11-25", WantsNotifications: true, Arguments: []byte(`{"query":"is:open label:bug sort:updated","repo":"mcpgate/mcpgate","limit":20,` +
				`"include_closed":false,"labels":["bug","security"]}`)}},
		{"string id", `{"jsonrpc":"2.0","id":"a-1","method":"ping"}`, Message{Kind: Request, Method: "ping", ID: []byte(`"a-1"`)}},
		{"negative id", `{"jsonrpc":"2.0","id":-9007199254740991,"method":"ping"}`, Message{Kind: Request, Method: "ping", ID: []byte(`-9007199254740991`)}},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, Message{Kind: Notification, Method: "notifications/initialized"}},
		{"response result", `{"jsonrpc":"2.0","id":1,"result":{}}`, Message{Kind: Response, ID: []byte(`1`)}},
		{"response null result", `{"jsonrpc":"2.0","id":1,"result":null}`, Message{Kind: Response, ID: []byte(`1`)}},
		{"response error", `{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"m"}}`, Message{Kind: Response, ID: []byte(`"x"`)}},
		{"resources/read", `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/hosts"}}`,
			Message{Kind: Request, Method: "resources/read", ID: []byte(`2`), URI: "file:///etc/hosts"}},
		{"escaped routing values", `{"\u006a\u0073\u006f\u006e\u0072\u0070\u0063":"2\u002e0","id":1,"method":"tools\/call","params":{"na\u006de":"r\u00e9sum\u00e9"}}`,
			Message{Kind: Request, Method: "tools/call", ID: []byte(`1`), Name: "résumé"}},
		{"non-string name ignored", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":7,"uri":{}}}`, Message{Kind: Request, Method: "m", ID: []byte(`1`)}},
		// Only the exact paths are routed.
		{"nested name not routed", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"arguments":{"name":"x","uri":"y","_meta":{}}}}`,
			Message{Kind: Request, Method: "m", ID: []byte(`1`), Arguments: []byte(`{"name":"x","uri":"y","_meta":{}}`)}},
		{"arguments verbatim", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments": {"a": [1, 2.50]} ,"name":"t"}}`,
			Message{Kind: Request, Method: "tools/call", ID: []byte(`1`), Name: "t", Arguments: []byte(`{"a": [1, 2.50]}`)}},
		{"null arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":null}}`,
			Message{Kind: Request, Method: "tools/call", ID: []byte(`1`), Arguments: []byte(`null`)}},
		{"arguments only in params", `{"jsonrpc":"2.0","id":1,"method":"m","arguments":{},"params":{}}`, Message{Kind: Request, Method: "m", ID: []byte(`1`)}},
		{"top-level name not routed", `{"jsonrpc":"2.0","id":1,"method":"m","name":"x","params":{}}`, Message{Kind: Request, Method: "m", ID: []byte(`1`)}},
		{"meta key case-sensitive", `{"jsonrpc":"2.0","method":"m","params":{"_meta":{"io.modelcontextprotocol/protocolversion":"x"}}}`,
			Message{Kind: Notification, Method: "m"}},
		{"meta keys other", `{"jsonrpc":"2.0","method":"m","params":{"_meta":{"progressToken":1,"io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}`,
			Message{Kind: Notification, Method: "m", ProtocolVersion: "2025-06-18", WantsNotifications: true}},
		{"log level asked", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"io.modelcontextprotocol/logLevel":"debug"}}}`,
			Message{Kind: Request, Method: "m", ID: []byte(`1`), WantsNotifications: true}},
		{"null progress token", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"progressToken":null}}}`,
			Message{Kind: Request, Method: "m", ID: []byte(`1`), WantsNotifications: true}},
		{"notification keys elsewhere", `{"jsonrpc":"2.0","id":1,"method":"m","progressToken":1,"params":{"progressToken":1,"arguments":{"_meta":{"progressToken":1}},` +
			`"_meta":{"ProgressToken":1,"io.modelcontextprotocol/loglevel":"info","x":{"progressToken":1}}}}`,
			Message{Kind: Request, Method: "m", ID: []byte(`1`), Arguments: []byte(`{"_meta":{"progressToken":1}}`)}},
		{"whitespace", " \n{ \"jsonrpc\" : \"2.0\" , \"method\" : \"m\" } \n", Message{Kind: Notification, Method: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage([]byte(tt.in), DefaultLimits())
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if m.Kind != tt.want.Kind || m.Method != tt.want.Method || string(m.ID) != string(tt.want.ID) ||
				(m.ID == nil) != (tt.want.ID == nil) || m.Name != tt.want.Name || m.URI != tt.want.URI ||
				m.ProtocolVersion != tt.want.ProtocolVersion || m.WantsNotifications != tt.want.WantsNotifications ||
				string(m.Arguments) != string(tt.want.Arguments) || (m.Arguments == nil) != (tt.want.Arguments == nil) {
				t.Fatalf("got %+v (ID %s)\nwant %+v (ID %s)", *m, m.ID, tt.want, tt.want.ID)
			}
		})
	}
}

func TestParseMessageDoesNotAlias(t *testing.T) {
	in := []byte(`{"jsonrpc":"2.0","id":"abc","method":"m"}`)
	m, err := ParseMessage(in, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if string(m.ID) != `"abc"` {
		t.Fatalf("ID aliases input: %s", m.ID)
	}
}

// TestParseMessageOwnsItsStrings: a Message keeps its strings when later
// scans reuse the scratch space its own scan had (the pool), and an error
// keeps its reason.
func TestParseMessageOwnsItsStrings(t *testing.T) {
	first, err := ParseMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"first-tool","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	_, bad := ParseMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"m","params":{"NAME":"x"}}`), DefaultLimits())
	for range 100 {
		if _, err := ParseMessage([]byte(`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}}`), DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		if err := Check([]byte(`{"aaaaaaaaaaaaaaaaaaaa":{"bbbbbbbbbbbbbbbbbbbbbbbb":"cccccccccccccccccccccccccccc"}}`), DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	if first.Method != "tools/call" || first.Name != "first-tool" || first.ProtocolVersion != "2026-07-28" {
		t.Fatalf("a later scan changed an earlier Message: %+v", first)
	}
	if bad == nil || !strings.Contains(bad.Error(), `non-canonical key "NAME" at $.params, expected "name"`) {
		t.Fatalf("a later scan changed an earlier error: %v", bad)
	}
}

func TestParseMessageRejects(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		code   int
		reason string
	}{
		{"malformed", `{"jsonrpc":"2.0",`, CodeParseError, "unexpected end of input"},
		{"malformed batch is parse error", `[{"jsonrpc":"2.0"`, CodeParseError, "unexpected end"},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`, CodeParseError, `duplicate key "method" at $`},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, CodeInvalidRequest, "batch requests are not supported"},
		{"empty batch", ` []`, CodeInvalidRequest, "batch requests are not supported"},
		{"scalar", `"hi"`, CodeInvalidRequest, "message must be a JSON object"},
		{"null", `null`, CodeInvalidRequest, "message must be a JSON object"},
		{"missing jsonrpc", `{"id":1,"method":"m"}`, CodeInvalidRequest, `missing "jsonrpc"`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"m"}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`},
		{"jsonrpc number", `{"jsonrpc":2.0,"id":1,"method":"m"}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`},
		{"jsonrpc padded", `{"jsonrpc":"2.0 ","id":1,"method":"m"}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`},
		{"empty method", `{"jsonrpc":"2.0","id":1,"method":""}`, CodeInvalidRequest, `"method" must be a non-empty string`},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":1}`, CodeInvalidRequest, `"method" must be a non-empty string`},
		{"method null", `{"jsonrpc":"2.0","method":null}`, CodeInvalidRequest, `"method" must be a non-empty string`},
		{"id null", `{"jsonrpc":"2.0","id":null,"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id float", `{"jsonrpc":"2.0","id":1.5,"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id float integral", `{"jsonrpc":"2.0","id":1.0,"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id exponent", `{"jsonrpc":"2.0","id":1e3,"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"m"}`, CodeInvalidRequest, `"id" must be a string or an integer`},
		{"id too big", `{"jsonrpc":"2.0","id":9007199254740992,"method":"m"}`, CodeInvalidRequest, `"id" integer out of range`},
		{"id huge", `{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"m"}`, CodeInvalidRequest, `"id" integer out of range`},
		{"params array", `{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}`, CodeInvalidRequest, `"params" must be an object`},
		{"params null", `{"jsonrpc":"2.0","id":1,"method":"m","params":null}`, CodeInvalidRequest, `"params" must be an object`},
		{"params string", `{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}`, CodeInvalidRequest, `"params" must be an object`},
		{"request with result", `{"jsonrpc":"2.0","id":1,"method":"m","result":1}`, CodeInvalidRequest, `request must not have "result" or "error"`},
		{"notification with error", `{"jsonrpc":"2.0","method":"m","error":{}}`, CodeInvalidRequest, `request must not have "result" or "error"`},
		{"neither", `{"jsonrpc":"2.0"}`, CodeInvalidRequest, `message has neither "method" nor "id"`},
		{"response without result", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest, `response must have "result" or "error"`},
		{"response with both", `{"jsonrpc":"2.0","id":1,"result":1,"error":{}}`, CodeInvalidRequest, `response must not have both`},
		{"response with params", `{"jsonrpc":"2.0","id":1,"result":1,"params":{}}`, CodeInvalidRequest, `response must not have "params"`},
		{"error not object", `{"jsonrpc":"2.0","id":1,"error":"bad"}`, CodeInvalidRequest, `"error" must be an object`},
		{"response without id", `{"jsonrpc":"2.0","result":1}`, CodeInvalidRequest, `neither "method" nor "id"`},
		// A lone case variant is what encoding/json would route as the real key.
		{"Method alone", `{"jsonrpc":"2.0","id":1,"Method":"tools/call"}`, CodeInvalidRequest, `non-canonical key "Method" at $, expected "method"`},
		{"paramſ alone", `{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"x"}}`, CodeInvalidRequest, `non-canonical key "paramſ" at $, expected "params"`},
		{"JSONRPC", `{"JSONRPC":"2.0","id":1,"method":"m"}`, CodeInvalidRequest, `non-canonical key "JSONRPC"`},
		{"ID", `{"jsonrpc":"2.0","ID":1,"method":"m"}`, CodeInvalidRequest, `non-canonical key "ID"`},
		{"NAME in params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"evil"}}`, CodeInvalidRequest, `non-canonical key "NAME" at $.params, expected "name"`},
		{"kelvin-free uri variant", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"Uri":"x"}}`, CodeInvalidRequest, `non-canonical key "Uri" at $.params`},
		{"Arguments in params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","Arguments":{"a":1}}}`, CodeInvalidRequest, `non-canonical key "Arguments" at $.params, expected "arguments"`},
		{"_Meta in params", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"_META":{}}}`, CodeInvalidRequest, `non-canonical key "_META"`},
		{"name beside NAME", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a","NAME":"b"}}`, CodeParseError, `case-variant key "NAME" beside "name" at $.params`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage([]byte(tt.in), DefaultLimits())
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseMessage(%q) = %+v, %v; want *Error", tt.in, m, err)
			}
			if m != nil {
				t.Errorf("message returned with error")
			}
			if e.Code != tt.code || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("got code %d reason %q, want %d containing %q", e.Code, e.Reason, tt.code, tt.reason)
			}
			if e.Offset < -1 || e.Offset > len(tt.in) {
				t.Errorf("offset %d out of range", e.Offset)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Request: "request", Notification: "notification", Response: "response", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", int(k), k.String())
		}
	}
}

func TestParseMessageAllocs(t *testing.T) {
	body := []byte(typicalCall)
	// scanner, Message, one string for the routed fields, ID copy.
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseMessage(body, DefaultLimits()) }); n > 4 {
		t.Errorf("ParseMessage allocates %v times per call, want <= 4", n)
	}
}
