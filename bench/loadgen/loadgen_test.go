package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const testKey = "test-key"

// slowToolTime is how long the test server's slow tool takes.
const slowToolTime = 50 * time.Millisecond

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
	mcp.AddTool(s, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(slowToolTime):
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Message}}}, nil, nil
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

// TestPlanPacing: paced, calls are due one interval apart from the start,
// whenever the workers ask; unpaced, a call is due when it is asked for.
func TestPlanPacing(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	p := newPlan(start, Config{Rate: 100, Duration: time.Second})
	late := start.Add(time.Hour) // the asking time does not matter
	for i := range 5 {
		if got, want := p.due(late), start.Add(time.Duration(i)*10*time.Millisecond); !got.Equal(want) {
			t.Fatalf("call %d due at %v, want %v", i, got.Sub(start), want.Sub(start))
		}
	}
	unpaced := newPlan(start, Config{Duration: time.Second})
	if got := unpaced.due(late); !got.Equal(late) {
		t.Fatalf("unpaced call due at %v, want when asked (%v)", got, late)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1), 1e12} {
		cfg := testConfig("http://127.0.0.1:1", eraModern)
		cfg.Rate = bad
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "invalid rate") {
			t.Errorf("rate %v: err %v, want invalid rate", bad, err)
		}
	}
}

// TestRunPaced: a paced run sends its calls no faster than the rate, and
// counts a call's latency from when it was due, so a server slower than the
// rate shows as latency growing with the backlog rather than being hidden
// by the workers waiting for it (coordinated omission). Only lower bounds
// are checked: a slow machine can only make the times longer.
func TestRunPaced(t *testing.T) {
	ts := newTestServer(t, false)
	cfg := testConfig(ts.url, eraModern)
	cfg.Rate, cfg.Calls = 200, 40 // the last call is due 195 ms in
	sum, err := Run(t.Context(), cfg)
	if err != nil || sum.TotalErrors() != 0 || sum.Calls != cfg.Calls {
		t.Fatalf("paced run: %+v, %v", sum, err)
	}
	if sum.ElapsedSec < 0.19 || sum.Rate != 200 {
		t.Fatalf("40 calls at 200/s took %.3fs, want at least 0.195s (rate %v)", sum.ElapsedSec, sum.Rate)
	}

	// One worker, calls due every millisecond, each taking slowToolTime:
	// the fifth is due at 4 ms and answered after five calls' time.
	cfg = testConfig(ts.url, eraModern)
	cfg.Concurrency, cfg.Rate, cfg.Calls, cfg.Tool = 1, 1000, 5, "slow"
	sum, err = Run(t.Context(), cfg)
	if err != nil || sum.TotalErrors() != 0 || sum.Calls != cfg.Calls {
		t.Fatalf("paced run of the slow tool: %+v, %v", sum, err)
	}
	if want := ms(5*slowToolTime - 4*time.Millisecond); sum.MaxMs < want {
		t.Fatalf("max latency %.1f ms, want at least %.1f ms: latency must count from when a call was due", sum.MaxMs, want)
	}
}
