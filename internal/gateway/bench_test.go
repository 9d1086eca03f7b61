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
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
)

// benchConcurrency is how many calls the upstream benchmarks keep in flight
// at once, whatever GOMAXPROCS is: the target is set at
// concurrency 16.
const benchConcurrency = 16

// echoBody is one modern tools/call of the demo's echo tool.
var echoBody = modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hello"}`)

// raiseLimits keeps the limits on (their cost is measured) but high enough
// never to refuse the one principal that drives all the load.
func raiseLimits(c *config.Config) {
	c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 1e6, Burst: 1_000_000, Concurrent: 1_000_000}
	c.Limits.ConcurrentTotal = 1_000_000
}

// runHTTPCalls drives tools/call POSTs at url from b.RunParallel and fails
// the benchmark on any non-200 answer, JSON-RPC error or isError result.
// Modern: stateless requests. Legacy: each goroutine calls in a 2025-11-25
// session of its own, opened before the timer starts.
func runHTTPCalls(b *testing.B, url, key string, parallelism int, legacy bool) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	if parallelism > 0 {
		b.SetParallelism(parallelism)
	}
	goroutines := max(parallelism, 1) * runtime.GOMAXPROCS(0)
	sessions := make(chan string, goroutines)
	for range goroutines {
		sid := ""
		if legacy {
			var err error
			if sid, err = openLegacySession(client, url, key); err != nil {
				b.Fatal(err)
			}
		}
		sessions <- sid
	}
	b.ReportAllocs()
	cpu, gc := processCPU(b), gcCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sid := <-sessions
		for pb.Next() {
			if err := httpCall(client, url, key, sid); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportCPU(b, cpu, gc)
}

// openLegacySession initializes a 2025-11-25 session at url and returns its
// id.
func openLegacySession(client *http.Client, url, key string) (string, error) {
	post := func(body, sid string) (*http.Response, error) {
		req, err := benchRequest(url, key, sid, body)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	resp, err := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}`, "")
	if err != nil {
		return "", err
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		return "", fmt.Errorf("initialize: status %d, session %q", resp.StatusCode, sid)
	}
	if resp, err = post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("notifications/initialized: status %d", resp.StatusCode)
	}
	return sid, nil
}

// processCPU is the CPU time this process has used so far (user and
// system). On a shared, noisy host, CPU time per call moves far less between
// runs than wall time does, so it is the figure to compare two builds by.
// It covers the whole test process: the load-generating client as well as
// the server, and not the server's child processes.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPU reads the runtime's estimate of the CPU time spent on garbage
// collection so far, and of all CPU time, in seconds.
func gcCPU() [2]float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return [2]float64{s[0].Value.Float64(), s[1].Value.Float64()}
}

// reportCPU reports the CPU time used since start per operation, as
// cpu-ns/op, and the share of the CPU the garbage collector took since gc
// was read, as gc-cpu-%.
func reportCPU(b *testing.B, start time.Duration, gc [2]float64) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
	now := gcCPU()
	if total := now[1] - gc[1]; total > 0 {
		b.ReportMetric(100*(now[0]-gc[0])/total, "gc-cpu-%")
	}
}

// benchRequest is a POST of body to url with an MCP client's headers, the
// bearer key unless it is empty, and the headers of the legacy session sid
// unless that is empty.
func benchRequest(url, key, sid, body string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", config.ProtocolLegacy)
	}
	return req, nil
}

// legacyEchoBody is one 2025-11-25 tools/call of the demo's echo tool.
const legacyEchoBody = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`

// httpCall makes one call of the demo's echo tool: in the legacy session
// sid, or a modern stateless request if sid is empty.
func httpCall(client *http.Client, url, key, sid string) error {
	payload := echoBody
	if sid != "" {
		payload = legacyEchoBody
	}
	req, err := benchRequest(url, key, sid, payload)
	if err != nil {
		return err
	}
	if sid == "" {
		modernHeaders("tools/call", "echo")(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return checkCallBody(body)
}

// checkCallBody accepts a JSON body or an SSE stream whose last data line is
// the response, and fails on a JSON-RPC error or a tool error.
func checkCallBody(body []byte) error {
	msg := bytes.TrimSpace(body)
	if !bytes.HasPrefix(msg, []byte("{")) {
		i := bytes.LastIndex(msg, []byte("data: "))
		if i < 0 {
			return fmt.Errorf("no JSON-RPC message in %q", body)
		}
		msg = msg[i+len("data: "):]
		if j := bytes.IndexByte(msg, '\n'); j >= 0 {
			msg = msg[:j]
		}
	}
	var r struct {
		Error  *json.RawMessage `json:"error"`
		Result *struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(msg, &r); err != nil {
		return fmt.Errorf("response %q: %v", body, err)
	}
	if r.Error != nil || r.Result == nil || r.Result.IsError {
		return fmt.Errorf("call failed: %s", msg)
	}
	return nil
}

// BenchmarkCall measures one modern tools/call through the whole gateway
// against the same call to a bare SDK handler serving the same demo server,
// in the same run: the ratio of the two is the gateway's cost.
func BenchmarkCall(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		s := demo.New(slog.New(slog.DiscardHandler)).Server()
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
		srv := httptest.NewServer(h)
		defer srv.Close()
		runHTTPCalls(b, srv.URL, "", 0, false)
	})
	b.Run("gateway", func(b *testing.B) {
		tg := newTestGateway(b, raiseLimits)
		runHTTPCalls(b, tg.URL, tg.keyA, 0, false)
	})
	b.Run("bare-legacy", func(b *testing.B) {
		s := demo.New(slog.New(slog.DiscardHandler)).Server()
		srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
		defer srv.Close()
		runHTTPCalls(b, srv.URL, "", 0, true)
	})
	b.Run("gateway-legacy", func(b *testing.B) {
		tg := newTestGateway(b, raiseLimits)
		runHTTPCalls(b, tg.URL, tg.keyA, 0, true)
	})
}

// BenchmarkUpstream measures tools/call through the gateway to a real
// upstream against calling that upstream directly, in one run, with
// benchConcurrency calls in flight:
//
//	direct-http             modern POSTs to the demo's own Streamable HTTP
//	                        handler (demo.Handler, both eras) on loopback
//	gateway-http-upstream   the same POSTs to a gateway whose only upstream
//	                        is url: that same server
//	direct-stdio            cs.CallTool on one go-sdk ClientSession over
//	                        stdio to a demo child (BuiltinCommand("demo"))
//	gateway-stdio-upstream  modern POSTs to a gateway whose demo is such a
//	                        child (the default config)
//	gateway-stdio-upstream-legacy
//	                        the same in 2025-11-25 sessions, one per
//	                        goroutine
//
// The gateway rows include the gateway's HTTP front (the client's POST, auth,
// limits, JSON gate); direct-stdio has no HTTP at all, so its ratio is the
// whole price of reaching a stdio server over HTTP through mcpgate.
func BenchmarkUpstream(b *testing.B) {
	parallelism := (benchConcurrency + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)

	d := demo.New(nil)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { stop(); <-done }()
	upstream := httptest.NewServer(d.Handler())
	defer upstream.Close()
	upstreamURL := upstream.URL + EndpointPath

	b.Run("direct-http", func(b *testing.B) {
		runHTTPCalls(b, upstreamURL, "", parallelism, false)
	})
	b.Run("gateway-http-upstream", func(b *testing.B) {
		tg := newTestGateway(b, func(c *config.Config) {
			raiseLimits(c)
			none := ""
			// The url upstream is the only one: no demo child, no test
			// server "t" (which withTestServer added) runs beside it.
			c.Upstreams = map[string]config.Upstream{"remote": {
				URL:          upstreamURL,
				Namespace:    &none,
				Start:        config.StartBoot,
				Instances:    config.InstancesShared,
				MaxInstances: config.DefaultMaxInstances,
				IdleTimeout:  config.DefaultUpstreamIdleTimeout,
				CallTimeout:  config.DefaultCallTimeout,
			}}
		})
		awaitTool(b, tg, "echo")
		runHTTPCalls(b, tg.URL, tg.keyA, parallelism, false)
	})
	b.Run("direct-stdio", func(b *testing.B) {
		argv, err := BuiltinCommand(config.BuiltinDemo)
		if err != nil {
			b.Fatal(err)
		}
		client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "0"}, nil)
		cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: exec.Command(argv[0], argv[1:]...)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}}
		b.SetParallelism(parallelism)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := cs.CallTool(context.Background(), params)
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %v", res.Content)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("gateway-stdio-upstream", func(b *testing.B) {
		tg := newTestGateway(b, raiseLimits)
		awaitTool(b, tg, "echo")
		runHTTPCalls(b, tg.URL, tg.keyA, parallelism, false)
	})
	b.Run("gateway-stdio-upstream-legacy", func(b *testing.B) {
		tg := newTestGateway(b, raiseLimits)
		awaitTool(b, tg, "echo")
		runHTTPCalls(b, tg.URL, tg.keyA, parallelism, true)
	})
}

// awaitTool makes one call to the gateway until it succeeds, so that the
// measurement does not start before the upstream is connected and listed.
func awaitTool(tb testing.TB, tg *testGateway, tool string) {
	tb.Helper()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var err error
	for range 200 {
		if err = httpCall(client, tg.URL, tg.keyA, ""); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	tb.Fatalf("gateway never served %s: %v", tool, err)
}
