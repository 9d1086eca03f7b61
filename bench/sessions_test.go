package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/sandbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// heapProfile, if set, is where BenchmarkIdleSessionHeap writes a heap
// profile of the gateway while it holds its sessions (go tool pprof -sample_index=inuse_space).
var heapProfile = flag.String("sessionheapprofile", "", "write a heap profile of the gateway holding its idle sessions to this file")

// BenchmarkIdleSessionHeap is the in-process counterpart of
// `bench/run.sh --sessions`: the live memory (heap after a forced GC, plus
// goroutine stacks) that each idle legacy-era session holds in the bare
// go-sdk server and in the gateway with its full pipeline on (the gateway's
// sandboxed demo child is another process and not counted here). RSS, which
// run.sh reads, also carries the garbage collector's slack; this does not.
//
//	go test -run '^$' -bench BenchmarkIdleSessionHeap -benchtime 3x ./bench/
func BenchmarkIdleSessionHeap(b *testing.B) {
	if err := sandbox.Probe().FullIsolation(); err != nil {
		b.Skipf("this host cannot run the sandbox: %v", err)
	}
	const sessions = 1000
	if *heapProfile != "" {
		// Record every allocation: at the default 512 KiB sampling rate a
		// thousand small sessions show up as a handful of coarse samples.
		runtime.MemProfileRate = 1
	}
	for _, server := range []string{"bare", "gateway"} {
		b.Run(server, func(b *testing.B) {
			url, key := startServer(b, server, false)
			var total float64
			for i := range b.N {
				profile := ""
				if server == "gateway" && i == 0 {
					profile = *heapProfile
				}
				per, err := idleSessionBytes(b.Context(), url, key, sessions, profile)
				if err != nil {
					b.Fatal(err)
				}
				total += per
			}
			b.ReportMetric(total/float64(b.N), "B/session")
			b.ReportMetric(0, "ns/op") // the time is not the point
		})
	}
}

// TestIdleSessionBytes runs the measurement on a few sessions against both
// servers, to keep the benchmark's code working; the figures are not checked.
func TestIdleSessionBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway with a demo child")
	}
	for _, server := range []string{"bare", "gateway"} {
		url, key := startServer(t, server, true)
		per, err := idleSessionBytes(t.Context(), url, key, 20, "")
		if err != nil {
			t.Fatalf("%s: %v", server, err)
		}
		t.Logf("%s: %.0f B per idle session (20 sessions: noisy)", server, per)
	}
}

// startServer serves the bare go-sdk handler or a gateway on an httptest
// server and returns its endpoint and the key to send ("" for bare). The
// gateway's config is bench/run.sh's: API key, policy, schema validation,
// limits and the audit log all on; noSandbox runs the demo child without
// the sandbox, for hosts that cannot build one.
func startServer(tb testing.TB, server string, noSandbox bool) (url, key string) {
	tb.Helper()
	var h http.Handler
	switch server {
	case "bare":
		s := demo.New(slog.New(slog.DiscardHandler)).Server()
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	case "gateway":
		var g *gateway.Gateway
		g, key = newBenchGateway(tb, noSandbox)
		h = g.Handler()
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	if server == "gateway" {
		return srv.URL + gateway.EndpointPath, key
	}
	return srv.URL, ""
}

func newBenchGateway(tb testing.TB, noSandbox bool) (*gateway.Gateway, string) {
	tb.Helper()
	dir := tb.TempDir()
	key, digest := authn.NewKey()
	skey, _, err := note.GenerateKey(rand.Reader, "bench-audit")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.key"), []byte(skey+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	upstream := `{builtin: demo, namespace: ""}`
	if noSandbox {
		upstream = `{builtin: demo, namespace: "", insecure_no_sandbox: true}`
	}
	yaml := fmt.Sprintf(`listen:
  address: 127.0.0.1:0
auth:
  api_keys:
    - {id: bench, sha256: %q, roles: [bench]}
upstreams:
  demo: %s
policy:
  rules:
    - {name: bench-echo, roles: [bench], allow: {tools: [echo]}}
limits:
  per_principal: {rate: 1000000, burst: 1000000, concurrent: 100000}
  concurrent_total: 100000
  sessions: {total: 100000, per_principal: 100000}
audit:
  path: %s
  signing_key: %s
admin:
  disabled: true
`, digest, upstream, filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "audit.key"))
	cfg, err := config.Parse(filepath.Join(dir, "mcpgate.yaml"), []byte(yaml))
	if err != nil {
		tb.Fatalf("parse bench config: %v", err)
	}
	g, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("build gateway: %v", err)
	}
	if err := g.Start(tb.Context()); err != nil {
		g.Close()
		tb.Fatalf("start gateway: %v", err)
	}
	tb.Cleanup(func() { g.Close() })
	return g, key
}

// idleSessionBytes opens n legacy sessions, measures the live heap and
// goroutine stacks they add (each reading after two forced collections),
// optionally writes a heap profile while they are held, and DELETEs them.
// The client runs in the same process; what it keeps per session (an id
// string) is a few dozen bytes, within the noise.
func idleSessionBytes(ctx context.Context, url, key string, n int, profile string) (float64, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	before := liveBytes()
	ids := make([]string, n)
	if err := parallel(n, 16, func(i int) (err error) {
		ids[i], err = openSession(ctx, client, url, key)
		return err
	}); err != nil {
		return 0, err
	}
	// The connections that opened the sessions (and their server-side
	// goroutines and buffers) are not part of what an idle session holds.
	tr.CloseIdleConnections()
	after := liveBytes()
	if profile != "" {
		if err := writeHeapProfile(profile); err != nil {
			return 0, err
		}
	}
	if err := parallel(n, 16, func(i int) error { return deleteSession(ctx, client, url, key, ids[i]) }); err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

// liveBytes is the heap in use plus goroutine stacks, after the collector
// has run twice (the second pass frees what the first one's finalizers
// released) and the server side of closed connections has had time to exit.
func liveBytes() int64 {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.Gosched()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) + int64(ms.StackInuse)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close heap profile: %w", err)
	}
	return nil
}

// parallel runs fn(0..n-1) with at most width in flight and returns the
// first error.
func parallel(n, width int, fn func(int) error) error {
	var (
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	for range min(width, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return first
}

// openSession performs the 2025-11-25 handshake and returns the session id.
func openSession(ctx context.Context, client *http.Client, url, key string) (string, error) {
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-bench","version":"0"}}}`
	resp, err := post(ctx, client, url, key, "", initialize)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" || !strings.Contains(string(body), `"protocolVersion":"2025-11-25"`) {
		return "", fmt.Errorf("initialize: status %d, session %q: %.200s", resp.StatusCode, id, body)
	}
	resp, err = post(ctx, client, url, key, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("notifications/initialized: status %d", resp.StatusCode)
	}
	return id, nil
}

func post(ctx context.Context, client *http.Client, url, key, session, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	setSessionHeaders(req, key, session)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post: %w", err)
	}
	return resp, nil
}

func deleteSession(ctx context.Context, client *http.Client, url, key, session string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return fmt.Errorf("build DELETE: %w", err)
	}
	setSessionHeaders(req, key, session)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("delete session: status %d", resp.StatusCode)
	}
	return nil
}

func setSessionHeaders(req *http.Request, key, session string) {
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
}
