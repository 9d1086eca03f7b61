package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/demo"
)

// The test binary doubles as the stdio upstream: re-executed with this
// variable set, it serves the demo over stdio, as `mcpgate demo` does.
const childEnv = "FORWARD_TEST_DEMO"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		d := demo.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err := d.ServeStdio(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestForwardsToolCalls runs every combination of front and client against
// a real demo child, in both eras, and checks that the echo comes back with
// the caller's id: the ceiling the benchmark reports must be of calls that
// really reached the upstream.
func TestForwardsToolCalls(t *testing.T) {
	t.Setenv(childEnv, "1")
	argv := []string{os.Args[0]}
	for _, side := range []struct{ server, client string }{
		{"raw", "raw"}, {"raw", "sdk"}, {"sdk", "raw"}, {"sdk", "sdk"},
	} {
		t.Run(side.server+"-"+side.client, func(t *testing.T) {
			ctx := t.Context()
			var up caller
			var err error
			if side.client == "raw" {
				up, err = startUpstream(ctx, argv)
			} else {
				up, err = startSDKUpstream(ctx, argv)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.close)
			var h http.Handler = &rawFront{up: up}
			if side.server == "sdk" {
				if h, err = sdkFront(ctx, up); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)

			// Legacy: a session, then a call in it.
			sid := post(t, srv.URL+"/legacy", "", nil,
				`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`).Get("Mcp-Session-Id")
			if sid == "" {
				t.Fatal("initialize returned no session id")
			}
			post(t, srv.URL+"/legacy", sid, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			checkEcho(t, srv.URL+"/legacy", sid, nil, 7, "hello")

			// Modern: stateless, the era in headers and _meta.
			checkEcho(t, srv.URL+"/modern", "", map[string]string{
				"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo",
			}, 8, "again")
		})
	}
}

// checkEcho calls the demo's echo tool and checks the answer's id and text.
func checkEcho(t *testing.T, url, sid string, headers map[string]string, id int, text string) {
	t.Helper()
	meta := ""
	if headers != nil {
		meta = `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"0"}}`
	}
	body := `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"echo","arguments":{"message":"` + text + `"}` + meta + `}}`
	var got struct {
		ID     int `json:"id"`
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	decodeAnswer(t, postBody(t, url, sid, headers, body), &got)
	if got.ID != id || len(got.Result.Content) == 0 || !strings.Contains(got.Result.Content[0].Text, text) {
		t.Fatalf("tools/call answer %+v, want id %d and the echo of %q", got, id, text)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// decodeAnswer reads a JSON body, or the data of the first SSE message.
func decodeAnswer(t *testing.T, body string, v any) {
	t.Helper()
	if i := strings.Index(body, "data: "); i >= 0 && !strings.HasPrefix(strings.TrimSpace(body), "{") {
		body = strings.SplitN(body[i+len("data: "):], "\n", 2)[0]
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode answer %q: %v", body, err)
	}
}

func post(t *testing.T, url, sid string, headers map[string]string, body string) http.Header {
	t.Helper()
	h, _ := do(t, url, sid, headers, body)
	return h
}

func postBody(t *testing.T, url, sid string, headers map[string]string, body string) string {
	t.Helper()
	_, b := do(t, url, sid, headers, body)
	return b
}

func do(t *testing.T, url, sid string, headers map[string]string, body string) (http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
	return resp.Header, string(b)
}
