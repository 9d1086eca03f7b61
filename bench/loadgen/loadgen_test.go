package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const testKey = "test-key"

// testServer serves a trivial echo tool (and an always-failing tool) on
// /legacy (stateful) and /modern (stateless), behind a bearer-key check, and
// counts DELETEs so tests can see legacy sessions being closed.
type testServer struct {
	url     string
	deletes atomic.Int64
}

func newTestServer(t *testing.T, jsonResponse bool) *testServer {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	type in struct {
		Message string `json:"message"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Message}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "fail"}, func(_ context.Context, _ *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "boom"}}}, nil, nil
	})
	getServer := func(*http.Request) *mcp.Server { return s }
	mux := http.NewServeMux()
	mux.Handle("/legacy", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse}))
	mux.Handle("/modern", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: jsonResponse}))

	ts := &testServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodDelete {
			ts.deletes.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

func testConfig(url, era string) Config {
	return Config{
		URL:         url + "/" + era,
		Era:         era,
		Concurrency: 4,
		Calls:       60,
		Key:         testKey,
		Tool:        "echo",
		Args:        json.RawMessage(`{"message":"hello"}`),
	}
}

func TestRunFixedCalls(t *testing.T) {
	for _, era := range []string{eraLegacy, eraModern} {
		for _, jsonResponse := range []bool{false, true} {
			name := era + "/sse"
			if jsonResponse {
				name = era + "/json"
			}
			t.Run(name, func(t *testing.T) {
				ts := newTestServer(t, jsonResponse)
				cfg := testConfig(ts.url, era)
				sum, err := Run(t.Context(), cfg)
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if sum.TotalErrors() != 0 || sum.Calls != cfg.Calls {
					t.Fatalf("got %d calls, %d errors (%v); want %d calls, 0 errors", sum.Calls, sum.TotalErrors(), sum.ErrorSamples, cfg.Calls)
				}
				wantDeletes := int64(0)
				if era == eraLegacy {
					wantDeletes = int64(cfg.Concurrency)
				}
				if got := ts.deletes.Load(); got != wantDeletes {
					t.Errorf("server saw %d DELETEs, want %d", got, wantDeletes)
				}
			})
		}
	}
}

// A tool result with isError is a JSON-RPC success; it must still count as a failure.
func TestRunCountsToolErrors(t *testing.T) {
	ts := newTestServer(t, false)
	for _, era := range []string{eraLegacy, eraModern} {
		cfg := testConfig(ts.url, era)
		cfg.Tool = "fail"
		sum, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("%s: Run: %v", era, err)
		}
		if sum.Calls != 0 || sum.Errors != cfg.Calls {
			t.Errorf("%s: got %d calls, %d errors; want 0 calls, %d errors", era, sum.Calls, sum.Errors, cfg.Calls)
		}
		if len(sum.ErrorSamples) == 0 || !strings.Contains(sum.ErrorSamples[0], "boom") {
			t.Errorf("%s: error samples %q do not mention the tool's message", era, sum.ErrorSamples)
		}
	}
}

func TestRunWithoutKey(t *testing.T) {
	ts := newTestServer(t, false)

	legacy := testConfig(ts.url, eraLegacy)
	legacy.Key = ""
	if _, err := Run(t.Context(), legacy); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("legacy without key: got err %v, want a 401 from initialize", err)
	}

	modern := testConfig(ts.url, eraModern)
	modern.Key = ""
	sum, err := Run(t.Context(), modern)
	if err != nil {
		t.Fatalf("modern without key: Run: %v", err)
	}
	if sum.Errors != modern.Calls {
		t.Errorf("modern without key: got %d errors, want %d", sum.Errors, modern.Calls)
	}
}

func TestFindSSEResponse(t *testing.T) {
	stream := "event: prime\nid: 0\ndata: \n\n" +
		": keep-alive\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":7,\"result\":{\"ok\":true}}\r\n\r\n"
	msg, err := findSSEResponse(strings.NewReader(stream), 7)
	if err != nil {
		t.Fatalf("findSSEResponse: %v", err)
	}
	if got := string(msg.Result); got != `{"ok":true}` {
		t.Errorf("result = %s, want {\"ok\":true}", got)
	}
	if _, err := findSSEResponse(strings.NewReader(stream), 8); err == nil {
		t.Error("findSSEResponse found a response to an id that was never sent")
	}
}

func TestPercentile(t *testing.T) {
	durations := make([]time.Duration, 100)
	for i := range durations {
		durations[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want int
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(durations, tc.p); int(got) != tc.want {
			t.Errorf("percentile(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}
