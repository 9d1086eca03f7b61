package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/strictjson"
)

const modernVersion = "2026-07-28"

// testGateway is a gateway on a real loopback listener with two API keys and
// a recorder of every method that reached the MCP server.
type testGateway struct {
	*Gateway
	URL        string
	keyA, keyB string
	markers    string // where the test server child writes its marker files
	mu         sync.Mutex
	reached    []string
}

func newTestGateway(t testing.TB, edit func(*config.Config)) *testGateway {
	t.Helper()
	return newLoggedTestGateway(t, edit, slog.New(slog.DiscardHandler))
}

// newLoggedTestGateway is newTestGateway with the gateway logging to logger
// and built with opts.
func newLoggedTestGateway(t testing.TB, edit func(*config.Config), logger *slog.Logger, opts ...Option) *testGateway {
	t.Helper()
	keyA, digestA := authn.NewKey()
	keyB, digestB := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.MaxBodyBytes = 64 << 10
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digestA}, {ID: "bob", SHA256: digestB}}
	markers := withTestServer(t, cfg)
	if edit != nil {
		edit(cfg)
	}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("test config invalid: %v", ps)
	}
	g, err := New(cfg, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	tg := &testGateway{Gateway: g, keyA: keyA, keyB: keyB, markers: markers}
	g.catalog.Server().AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			tg.mu.Lock()
			tg.reached = append(tg.reached, method)
			tg.mu.Unlock()
			return next(ctx, method, req)
		}
	})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	tg.URL = srv.URL + EndpointPath
	return tg
}

func (tg *testGateway) reachedMethods() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.reached...)
}

// post sends one raw body with the headers a modern client sends.
func (tg *testGateway) post(t *testing.T, key string, body string, edit func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	return request(t, http.MethodPost, tg.URL, key, body, edit)
}

// request sends one request with the JSON content type and the Accept header
// of an MCP client, and a bearer key unless key is empty; edit, if not nil,
// changes the request last.
func request(t *testing.T, method, url, key, body string, edit func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func modernHeaders(method, name string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("MCP-Protocol-Version", modernVersion)
		r.Header.Set("Mcp-Method", method)
		if name != "" {
			r.Header.Set("Mcp-Name", name)
		}
	}
}

func modernBody(id int, method, params string) string {
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + modernVersion + `","io.modelcontextprotocol/clientCapabilities":{}}`
	if params != "" {
		meta += "," + params
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":{%s}}`, id, method, meta)
}

type rpcError struct {
	ID    any `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

// decodeRPC reads a JSON or single-event SSE response body.
func decodeRPC(t *testing.T, b []byte) rpcError {
	t.Helper()
	if i := bytes.Index(b, []byte("data: ")); i >= 0 && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		b = b[i+len("data: "):]
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			b = b[:j]
		}
	}
	var r rpcError
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %q is not JSON-RPC: %v", b, err)
	}
	return r
}

func TestModernCallThroughGateway(t *testing.T) {
	tg := newTestGateway(t, nil)
	resp, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hi"}`), modernHeaders("tools/call", "echo"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	r := decodeRPC(t, b)
	if r.Error != nil || !strings.Contains(string(r.Result), "hi") {
		t.Fatalf("echo result %s", b)
	}
	if resp.Header.Get("Mcp-Session-Id") != "" {
		t.Error("a modern (stateless) response carried Mcp-Session-Id")
	}
}

func TestRefusedBeforeTheServer(t *testing.T) {
	tg := newTestGateway(t, nil)
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	valid := modernBody(1, "tools/list", "")
	tests := []struct {
		name     string
		key      string
		body     string
		edit     func(*http.Request)
		status   int
		code     int
		inReason string
	}{
		{"no key", "", valid, nil, 401, -32600, "no credentials"},
		{"wrong key", "mgk_wrong", valid, nil, 401, -32600, "invalid credentials"},
		{"key in query only", "", valid, func(r *http.Request) { r.URL.RawQuery = "api_key=" + tg.keyA + "&access_token=" + tg.keyA }, 401, -32600, "no credentials"},
		{"foreign host", tg.keyA, valid, func(r *http.Request) { r.Host = "evil.example.com" }, 403, -32600, "Host"},
		{"cross-site origin", tg.keyA, valid, func(r *http.Request) { r.Header.Set("Origin", "https://evil.example.com") }, 403, -32600, "Origin"},
		{"text/plain", tg.keyA, valid, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, -32600, "application/json"},
		{"no content type", tg.keyA, valid, func(r *http.Request) { r.Header.Del("Content-Type") }, 415, -32600, "application/json"},
		{"body over the cap", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"x","params":{"p":"` + strings.Repeat("a", 70<<10) + `"}}`, nil, 413, -32600, "too large"},
		{"duplicate key", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, nil, 400, -32700, "duplicate"},
		{"case-variant key", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{},"Params":{}}`, nil, 400, -32700, "case"},
		{"long-s variant key", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{},"paramſ":{}}`, nil, 400, -32700, "case"},
		{"NUL in key", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"a\u0000":1}}`, nil, 400, -32700, "NUL"},
		{"invalid UTF-8", tg.keyA, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"a\":\"\xff\"}}", nil, 400, -32700, "UTF-8"},
		{"BOM", tg.keyA, "\ufeff" + valid, nil, 400, -32700, "byte order mark"},
		{"trailing data", tg.keyA, valid + `{}`, nil, 400, -32700, "trailing"},
		{"too deep", tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":` + deep + `}`, nil, 400, -32700, "deep"},
		{"batch", tg.keyA, "[" + valid + "]", nil, 400, -32600, "batch"},
		{"not JSON-RPC 2.0", tg.keyA, `{"jsonrpc":"1.0","id":1,"method":"tools/list"}`, nil, 400, -32600, "jsonrpc"},
		{"null id", tg.keyA, `{"jsonrpc":"2.0","id":null,"method":"tools/list"}`, nil, 400, -32600, "id"},
		{"malformed", tg.keyA, `{"jsonrpc":`, nil, 400, -32700, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := tg.post(t, tt.key, tt.body, func(r *http.Request) {
				modernHeaders("tools/list", "")(r)
				if tt.edit != nil {
					tt.edit(r)
				}
			})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			r := decodeRPC(t, b)
			if r.Error == nil || r.Error.Code != tt.code || !strings.Contains(strings.ToLower(r.Error.Message), strings.ToLower(tt.inReason)) {
				t.Fatalf("body %s: want code %d and a message containing %q", b, tt.code, tt.inReason)
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := tg.reachedMethods(); len(got) != 0 {
		t.Fatalf("refused requests reached the MCP server: %v", got)
	}
	// And the gateway still serves: one bad request harms no other.
	resp, b := tg.post(t, tg.keyA, valid, modernHeaders("tools/list", ""))
	if resp.StatusCode != 200 || decodeRPC(t, b).Error != nil {
		t.Fatalf("valid request after refusals: %d %s", resp.StatusCode, b)
	}
}

func TestModernHeaderMismatch(t *testing.T) {
	tg := newTestGateway(t, nil)
	resp, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"x"}`), modernHeaders("tools/call", "test_simple_text"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if r := decodeRPC(t, b); r.Error == nil || r.Error.Code != -32020 {
		t.Fatalf("body %s, want error -32020 (header mismatch)", b)
	}
	if got := tg.reachedMethods(); len(got) != 0 {
		t.Fatalf("mismatched request reached the tool: %v", got)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	tg := newTestGateway(t, nil)
	req, _ := http.NewRequest(http.MethodPut, tg.URL, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tg.keyA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Fatalf("PUT: status %d Allow %q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// legacyInit opens a legacy session as key and returns its id.
func legacyInit(t *testing.T, tg *testGateway, key string) string {
	t.Helper()
	resp, b := tg.post(t, key, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: status %d session %q: %s", resp.StatusCode, sid, b)
	}
	resp, b = tg.post(t, key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: status %d: %s", resp.StatusCode, b)
	}
	return sid
}

func TestLegacySessionBoundToPrincipal(t *testing.T) {
	tg := newTestGateway(t, nil)
	sid := legacyInit(t, tg, tg.keyA)
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"mine"}}}`
	withSession := func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, b := tg.post(t, tg.keyA, call, withSession)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "mine") {
		t.Fatalf("owner's call: %d %s", resp.StatusCode, b)
	}
	before := len(tg.reachedMethods())
	resp, b = tg.post(t, tg.keyB, call, withSession)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("other principal with the session id: status %d, want 403: %s", resp.StatusCode, b)
	}
	if after := len(tg.reachedMethods()); after != before {
		t.Fatalf("another principal's request reached the session's server (%d -> %d)", before, after)
	}
}

func TestCancellationPropagates(t *testing.T) {
	tg := newTestGateway(t, nil)
	started, cancelled := addBlockingTool(t, tg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, strings.NewReader(modernBody(7, "tools/call", `"name":"block","arguments":{}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tg.keyA)
	modernHeaders("tools/call", "block")(req)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("tool never started")
	}
	cancel() // the client hangs up: in the modern era that is cancellation
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool's context was not cancelled when the client went away")
	}
	<-done
}

// addBlockingTool returns channels that close when the test server's
// "block" tool starts and when it sees its call cancelled, in the child.
func addBlockingTool(t testing.TB, tg *testGateway) (started, cancelled chan struct{}) {
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	return awaitMarker(ctx, tg.markers, "started"), awaitMarker(ctx, tg.markers, "cancelled")
}

func TestAuthDisabledServesAnonymously(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		c.Auth.APIKeys = nil
		c.Auth.InsecureDisableAuth = true
	})
	resp, b := tg.post(t, "", modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

// FuzzFront sends arbitrary bodies through the whole front. Properties: no
// panic, no 5xx, and a body the strict gate refuses never reaches the server.
func FuzzFront(f *testing.F) {
	f.Add(modernBody(1, "tools/list", ""), true)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"0"}}}`, false)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"x"}`, true)
	f.Add(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, false)
	tg := newTestGateway(f, nil)
	f.Fuzz(func(t *testing.T, body string, modern bool) {
		before := len(tg.reachedMethods())
		r := httptest.NewRequest(http.MethodPost, "http://localhost"+EndpointPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Authorization", "Bearer "+tg.keyA)
		if modern {
			modernHeaders("tools/list", "")(r)
		}
		w := httptest.NewRecorder()
		tg.Handler().ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if _, err := strictjson.ParseMessage([]byte(body), strictjson.DefaultLimits()); err != nil {
			if after := len(tg.reachedMethods()); after != before {
				t.Fatalf("a body the gate refuses reached the server: %q", body)
			}
		}
	})
}

// TestModernAnswerMediaType: a 2026-07-28 request that asks for no
// notifications is answered with one JSON body; one that asks for progress
// or log messages gets an event stream that carries them before the answer.
func TestModernAnswerMediaType(t *testing.T) {
	tg := newTestGateway(t, nil)
	tests := []struct {
		name, tool, arguments string
		meta                  string // members added to the request's _meta
		wantType              string
		wantInBody            []string
	}{
		{"no notifications", "echo", `{"message":"plain"}`, "", "application/json", []string{`"text":"plain"`}},
		{"progress", "test_tool_with_progress", `{}`, `,"progressToken":"tok-7"`,
			"text/event-stream", []string{`"method":"notifications/progress"`, `"progressToken":"tok-7"`, `"progress":100`, `"result":`}},
		{"log level", "test_tool_with_logging", `{}`, `,"io.modelcontextprotocol/logLevel":"debug"`,
			"text/event-stream", []string{`"method":"notifications/message"`, `"result":`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":%s,`+
				`"_meta":{"io.modelcontextprotocol/protocolVersion":%q,"io.modelcontextprotocol/clientCapabilities":{}%s}}}`,
				tt.tool, tt.arguments, modernVersion, tt.meta)
			resp, b := tg.post(t, tg.keyA, body, modernHeaders("tools/call", tt.tool))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tt.wantType {
				t.Fatalf("status %d, Content-Type %q, want 200 and %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantType, b)
			}
			for _, want := range tt.wantInBody {
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("answer lacks %s: %s", want, b)
				}
			}
		})
	}
}
