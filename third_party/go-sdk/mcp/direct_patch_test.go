// mcpgate patch 7 (PATCHES.md): a stateless POST of one 2026-07-28 call is
// served without a jsonrpc2 connection. What a client gets must be what the
// connected session gives it.

package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// directTestServer has a tool for each way a handler can end, and reports in
// every result how many sessions the server lists: a connected session is
// listed while it serves its call, a direct one never is.
func directTestServer() *Server {
	s := NewServer(&Implementation{Name: "direct", Version: "1"}, nil)
	sessions := func() string { return fmt.Sprint(len(slices.Collect(s.Sessions()))) }
	text := func(t string) *CallToolResult {
		return &CallToolResult{Content: []Content{&TextContent{Text: t}}}
	}
	obj := &jsonschemaObject
	s.AddTool(&Tool{Name: "echo", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		return text(string(req.Params.Arguments) + " sessions=" + sessions()), nil
	})
	s.AddTool(&Tool{Name: "fail", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		return nil, errors.New("it failed")
	})
	s.AddTool(&Tool{Name: "rpcerr", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "bad argument"}
	})
	s.AddTool(&Tool{Name: "iserror", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		r := text("tool error")
		r.IsError = true
		return r, nil
	})
	s.AddTool(&Tool{Name: "notify", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		if tok := req.Params.GetProgressToken(); tok != nil {
			if err := req.Session.NotifyProgress(ctx, &ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2, Message: "half"}); err != nil {
				return nil, err
			}
		}
		if err := req.Session.Log(ctx, &LoggingMessageParams{Level: "warning", Data: "careful"}); err != nil {
			return nil, err
		}
		return text("done"), nil
	})
	s.AddTool(&Tool{Name: "elicit", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		_, err := req.Session.Elicit(ctx, &ElicitParams{Message: "name?", RequestedSchema: obj})
		return nil, err
	})
	s.AddTool(&Tool{Name: "input", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		return &CallToolResult{InputRequests: map[string]InputRequest{"q": &ElicitParams{Message: "name?", RequestedSchema: obj}}, RequestState: "s1"}, nil
	})
	return s
}

var jsonschemaObject = map[string]any{"type": "object"}

const directMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`

type directCase struct {
	name    string
	body    string
	headers map[string]string
	// wantMessages is how many messages an event stream answer carries
	// (an http.Error's text counts as one).
	wantMessages int
}

func callBody(tool, extra string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"a":1},` + directMeta + extra + `}}`
}

func directCases() []directCase {
	call := func(tool string) map[string]string {
		return map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": tool}
	}
	metaWith := func(extra string) string {
		return strings.Replace(callBody("notify", ""), `"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}`, `"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},`+extra, 1)
	}
	return []directCase{
		{"echo", callBody("echo", ""), call("echo"), 1},
		{"unknown tool", callBody("nope", ""), call("nope"), 1},
		{"handler error", callBody("fail", ""), call("fail"), 1},
		{"handler JSON-RPC error", callBody("rpcerr", ""), call("rpcerr"), 1},
		{"isError result", callBody("iserror", ""), call("iserror"), 1},
		{"notifications asked for", metaWith(`"progressToken":"p1","io.modelcontextprotocol/logLevel":"info"`), call("notify"), 3},
		{"no notifications asked for", callBody("notify", ""), call("notify"), 1},
		{"elicitation refused", callBody("elicit", ""), call("elicit"), 1},
		{"input required", callBody("input", ""), call("input"), 1},
		{"tools/list", `{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{` + directMeta + `}}`, map[string]string{"Mcp-Method": "tools/list"}, 1},
		{"discover", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{` + directMeta + `}}`, map[string]string{"Mcp-Method": "server/discover"}, 1},
		{"initialize removed", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"t","version":"1"},` + directMeta + `}}`, map[string]string{"Mcp-Method": "initialize"}, 1},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"no/such","params":{` + directMeta + `}}`, map[string]string{"Mcp-Method": "no/such"}, 1},
		{"capabilities missing", strings.Replace(callBody("echo", ""), `"io.modelcontextprotocol/clientCapabilities":{},`, "", 1), call("echo"), 1},
		{"unsupported version", strings.ReplaceAll(callBody("echo", ""), "2026-07-28", "2099-01-01"), map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo", "MCP-Protocol-Version": "2099-01-01"}, 1},
		{"meta version mismatch", strings.Replace(callBody("echo", ""), `"2026-07-28"`, `"2025-11-25"`, 1), call("echo"), 1},
		{"name header mismatch", callBody("echo", ""), call("other"), 1},
		{"no method header", callBody("echo", ""), map[string]string{}, 1},
		{"bad params", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":3,` + directMeta + `}}`, call("echo"), 1},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, map[string]string{"Mcp-Method": "notifications/cancelled"}, 1},
		{"batch", `[` + callBody("echo", "") + `]`, call("echo"), 1},
	}
}

// directAnswer is what a client can see of an answer: its status, media type
// and JSON-RPC messages.
type directAnswer struct {
	status    int
	mediaType string
	messages  []string
}

// directRequest is c as a 2026-07-28 client sends it.
func directRequest(c directCase) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	return req
}

func serveDirectCase(t *testing.T, h http.Handler, c directCase) directAnswer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, directRequest(c))
	a := directAnswer{status: rec.Code, mediaType: rec.Header().Get("Content-Type")}
	body := rec.Body.Bytes()
	if a.mediaType != "text/event-stream" {
		a.messages = []string{canonicalJSON(t, body)}
		return a
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			a.messages = append(a.messages, canonicalJSON(t, []byte(data)))
		}
	}
	return a
}

// canonicalJSON re-encodes data with sorted keys; data that is not JSON (an
// http.Error) is kept as it is.
func canonicalJSON(t *testing.T, data []byte) string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return strings.TrimSpace(string(data))
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPatchDirectCallsAnswerAsConnected(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		h := NewStreamableHTTPHandler(func(*http.Request) *Server { return directTestServer() }, &StreamableHTTPOptions{
			Stateless:                    true,
			JSONResponse:                 jsonResponse,
			PropagateRequestCancellation: true,
		})
		for _, c := range directCases() {
			t.Run(fmt.Sprintf("json=%v/%s", jsonResponse, c.name), func(t *testing.T) {
				defer func() { serveDirectly = true }()
				serveDirectly = false
				connected := serveDirectCase(t, h, c)
				serveDirectly = true
				direct := serveDirectCase(t, h, c)
				// The echo tool reports how many sessions the server listed:
				// a direct call's session is not listed.
				if c.name == "echo" {
					if !strings.Contains(fmt.Sprint(connected.messages), "sessions=1") {
						t.Fatalf("connected answer %v does not show its session", connected.messages)
					}
					if !strings.Contains(fmt.Sprint(direct.messages), "sessions=0") {
						t.Fatalf("answer %v: the call was not served directly", direct.messages)
					}
				}
				sessions := strings.NewReplacer("sessions=0", "sessions=N", "sessions=1", "sessions=N")
				if d, c := sessions.Replace(fmt.Sprint(direct)), sessions.Replace(fmt.Sprint(connected)); d != c {
					t.Fatalf("answers differ\n direct:    %s\n connected: %s", d, c)
				}
				want := c.wantMessages
				if jsonResponse {
					want = 1 // notifications go to the standalone stream, which a stateless server has not
				}
				if len(direct.messages) != want {
					t.Fatalf("%d messages, want %d: %v", len(direct.messages), want, direct.messages)
				}
			})
		}
	}
}

// FuzzPatchDirectCalls sends any body, with a tools/call's headers, both
// ways: the answers must be equal.
func FuzzPatchDirectCalls(f *testing.F) {
	for _, c := range directCases() {
		f.Add(c.body, c.headers["Mcp-Name"])
	}
	h := NewStreamableHTTPHandler(func(*http.Request) *Server { return directTestServer() }, &StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
	})
	sessions := strings.NewReplacer("sessions=0", "sessions=N", "sessions=1", "sessions=N")
	f.Fuzz(func(t *testing.T, body, name string) {
		c := directCase{body: body, headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": name}}
		defer func() { serveDirectly = true }()
		serveDirectly = false
		connected := serveDirectCase(t, h, c)
		serveDirectly = true
		direct := serveDirectCase(t, h, c)
		if d, c := sessions.Replace(fmt.Sprint(direct)), sessions.Replace(fmt.Sprint(connected)); d != c {
			t.Fatalf("answers differ\n direct:    %s\n connected: %s", d, c)
		}
	})
}

// BenchmarkPatchDirectCall serves one 2026-07-28 tools/call through a
// stateless handler, connected (v1.8.0's way) and direct.
func BenchmarkPatchDirectCall(b *testing.B) {
	server := directTestServer()
	c := directCases()[0] // echo
	for _, jsonResponse := range []bool{false, true} {
		h := NewStreamableHTTPHandler(func(*http.Request) *Server { return server }, &StreamableHTTPOptions{
			Stateless:                    true,
			JSONResponse:                 jsonResponse,
			PropagateRequestCancellation: true,
		})
		for _, direct := range []bool{false, true} {
			b.Run(fmt.Sprintf("json=%v/direct=%v", jsonResponse, direct), func(b *testing.B) {
				defer func() { serveDirectly = true }()
				serveDirectly = direct
				b.ReportAllocs()
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, directRequest(c))
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
