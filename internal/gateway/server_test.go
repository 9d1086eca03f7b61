package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
)

// servedGateway runs a whole gateway (its own http.Server, timeouts and all)
// on a loopback listener until the test ends.
func servedGateway(t *testing.T, edit func(*config.Config)) (addr, key string) {
	t.Helper()
	key, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest}}
	edit(cfg)
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln := serveOn(t, g)
	return ln.Addr().String(), key
}

// serveOn binds g's listeners and serves until the test ends; Serve must
// then return cleanly.
func serveOn(t *testing.T, g *Gateway) net.Listener {
	t.Helper()
	ln, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serve starts the upstreams before it serves; wait until it does.
	deadline := time.Now().Add(30 * time.Second)
	for !g.serving.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not start serving")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ln
}

// outcome reads what the server does with a half-sent request: the status
// line of its answer, or "closed" if it hangs up without one. The read is
// bounded so a server that never reacts fails the test instead of hanging it.
func outcome(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept the connection open: no timeout fired")
		}
		return "closed"
	}
	return strings.TrimSpace(line)
}

func TestSlowClientsAreCutOff(t *testing.T) {
	addr, key := servedGateway(t, func(c *config.Config) {
		c.Listen.ReadHeaderTimeout = 200 * time.Millisecond
		c.Listen.ReadTimeout = 300 * time.Millisecond
		c.Listen.MaxHeaderBytes = 4 << 10
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("headers trickled (slowloris)", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\n") // and never the rest
		if got := outcome(t, c); got != "closed" && !strings.Contains(got, "408") {
			t.Fatalf("got %q, want the connection closed or 408", got)
		}
	})

	t.Run("body trickled", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{", key)
		if got := outcome(t, c); got != "closed" && !strings.Contains(got, " 400 ") {
			t.Fatalf("got %q, want 400 or the connection closed", got)
		}
	})

	t.Run("headers too large", func(t *testing.T) {
		c := dial()
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 16<<10))
		if got := outcome(t, c); !strings.Contains(got, "431") {
			t.Fatalf("got %q, want 431 Request Header Fields Too Large", got)
		}
	})

	t.Run("the gateway still serves", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+EndpointPath, strings.NewReader(modernBody(1, "tools/list", "")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		modernHeaders("tools/list", "")(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "echo") {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestLegacyEventStream(t *testing.T) {
	addr, key := servedGateway(t, func(*config.Config) {})
	tg := &testGateway{URL: "http://" + addr + EndpointPath, keyA: key}
	sid := legacyInit(t, tg, key)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET stream: status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// DELETE ends the session; the id is then unknown (404).
	del, _ := http.NewRequest(http.MethodDelete, tg.URL, nil)
	del.Header.Set("Authorization", "Bearer "+key)
	del.Header.Set("Mcp-Session-Id", sid)
	dresp, err := http.DefaultClient.Do(del)
	if err != nil {
		t.Fatal(err)
	}
	dresp.Body.Close()
	if dresp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d, want 204", dresp.StatusCode)
	}
	r, b := tg.post(t, key, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	})
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("request on a deleted session: status %d, want 404: %s", r.StatusCode, b)
	}
}

// TestConnectionCap: listen.max_connections is enforced on the real
// listener. Two connections that hold their slots (a header never
// finished) keep a third client's request unread; when the gateway's
// header timeout cuts them off, the third is served.
func TestConnectionCap(t *testing.T) {
	addr, key := servedGateway(t, func(c *config.Config) {
		c.Listen.MaxConnections = 2
		c.Listen.ReadHeaderTimeout = time.Second
	})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: localhost\r\n") // and never the rest
	}
	time.Sleep(100 * time.Millisecond) // both accepted: the slots are taken
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"+
		"MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\nContent-Length: %d\r\n\r\n%s",
		key, len(modernBody(1, "tools/list", "")), modernBody(1, "tools/list", ""))
	start := time.Now()
	if got := outcome(t, third); !strings.Contains(got, " 200 ") {
		t.Fatalf("the third connection got %q, want 200 once a slot was free", got)
	}
	// It was held back until the header timeout freed a slot (a lower bound
	// only: the cap, not the machine's speed, is what this shows).
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("the third connection was served after %v, while the two slots were held", waited)
	}
}

// TestDrainEndsEventStreams: a legacy GET event stream does not hold the
// drain open until the grace period is over: at shutdown it is ended at
// once, and Serve returns long before shutdownGrace.
func TestDrainEndsEventStreams(t *testing.T) {
	key, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.Address, cfg.Admin.Address = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest, Roles: []string{"admin"}}}
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()
	for !g.serving.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + ln.Addr().String() + EndpointPath
	send := func(method, body, sid string) *http.Response {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Accept", "application/json, text/event-stream")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := send(http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`, "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	resp = send(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid)
	resp.Body.Close()
	stream := send(http.MethodGet, "", sid)
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %s", stream.Status)
	}
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, stream.Body); close(ended) }()

	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(shutdownGrace - 2*time.Second):
		t.Fatalf("Serve still draining %v after shutdown began: the event stream held it", time.Since(start))
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream was not ended at shutdown")
	}
}
