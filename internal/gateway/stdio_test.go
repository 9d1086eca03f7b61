package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

// stdioClient drives ServeStdio over pipes with raw JSON-RPC lines.
type stdioClient struct {
	t     *testing.T
	in    *io.PipeWriter // the gateway's stdin
	lines chan string    // the gateway's stdout, line by line
	done  chan error     // ServeStdio's result
}

// startStdio serves the demo (no namespace) over stdio with a policy that
// lets only the principal "local" use only echo, and an audit log.
func startStdio(t *testing.T, ctx context.Context, edit func(*Gateway), opts ...Option) (*stdioClient, string, string) {
	t.Helper()
	keyPath, logPath, vkey := auditFiles(t)
	cfg := config.Default()
	cfg.Listen.MaxBodyBytes = 64 << 10
	cfg.Policy.Rules = []config.PolicyRule{{
		Name: "local-echo", Principals: []string{"local"}, Allow: &config.PolicyTargets{Tools: []string{"echo"}},
	}}
	cfg.Audit.Path, cfg.Audit.SigningKey = logPath, keyPath
	cfg.ApplyDefaults()
	g, err := New(cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(g)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &stdioClient{t: t, in: inW, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() { c.done <- g.ServeStdio(ctx, inR, outW) }()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			t.Error("ServeStdio did not return after stdin closed")
		}
	})
	return c, logPath, vkey
}

func (c *stdioClient) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatalf("write to the gateway: %v", err)
	}
}

// next returns the next response, skipping notifications.
func (c *stdioClient) next() map[string]any {
	c.t.Helper()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatal("the gateway closed stdout")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				c.t.Fatalf("not JSON from the gateway: %q", l)
			}
			if _, isNote := m["method"]; isNote {
				continue
			}
			return m
		case <-time.After(20 * time.Second):
			c.t.Fatal("no response from the gateway")
		}
	}
}

// call sends a request line and returns its response.
func (c *stdioClient) call(line string) map[string]any {
	c.t.Helper()
	c.send(line)
	return c.next()
}

func (c *stdioClient) initialize() {
	c.t.Helper()
	r := c.call(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if r["result"] == nil {
		c.t.Fatalf("initialize: %v", r)
	}
	c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

func errorCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(float64)
	return code
}

// TestServeStdio: a stdio session is the principal "local" for the policy
// (an anonymous one would be allowed nothing), passes the strict JSON gate,
// the size cap and schema validation, and is audited under that principal.
func TestServeStdio(t *testing.T) {
	c, logPath, vkey := startStdio(t, context.Background(), nil)
	c.initialize()

	list := c.call(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	tools, _ := list["result"].(map[string]any)["tools"].([]any)
	if len(tools) != 1 || tools[0].(map[string]any)["name"] != "echo" {
		t.Fatalf("tools/list: %v; want only echo (the policy for local)", list)
	}
	r := c.call(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"over stdio"}}}`)
	if b, _ := json.Marshal(r["result"]); !strings.Contains(string(b), "over stdio") {
		t.Fatalf("echo: %v", r)
	}
	r = c.call(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":5}}}`)
	if errorCode(r) != -32602 || !strings.Contains(r["error"].(map[string]any)["message"].(string), "/properties/message") {
		t.Fatalf("schema-violating call: %v; want -32602 naming message", r)
	}
	r = c.call(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	if errorCode(r) != -32602 {
		t.Fatalf("call of a tool the policy denies: %v; want -32602 unknown tool", r)
	}
	r = c.call(`{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"x"}`)
	if errorCode(r) != -32700 || r["id"] != float64(5) || !strings.Contains(r["error"].(map[string]any)["message"].(string), "duplicate key") {
		t.Fatalf("duplicate key: %v; want -32700 answered to id 5", r)
	}
	r = c.call(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"message":"` + strings.Repeat("x", 70<<10) + `"}}}`)
	if errorCode(r) != -32600 || r["id"] != nil || !strings.Contains(r["error"].(map[string]any)["message"].(string), "too large") {
		t.Fatalf("oversized message: %v; want -32600 with a null id", r)
	}
	r = c.call(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"still here"}}}`)
	if r["result"] == nil {
		t.Fatalf("a call after the refusals: %v", r)
	}

	c.in.Close()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
		c.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("ServeStdio did not return after stdin closed")
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(bytes.NewReader(b), verifier); err != nil {
		t.Fatalf("audit log does not verify (was it closed with a checkpoint?): %v", err)
	}
	for _, want := range []string{
		`"stage":"request","principal":"local","roles":["local"],"auth_method":"local","method":"tools/call","name":"echo","decision":"allow"`,
		`"stage":"result","principal":"local","roles":["local"],"auth_method":"local","method":"tools/call","upstream":"demo","name":"echo","decision":"allow","rule":"local-echo"`,
		`"stage":"policy","principal":"local","roles":["local"],"auth_method":"local","method":"tools/call","upstream":"demo","name":"echo","decision":"deny","rule":"local-echo","reason":"arguments do not match`,
		`"stage":"policy","principal":"local","roles":["local"],"auth_method":"local","method":"tools/call","upstream":"demo","name":"test_simple_text","decision":"deny"`,
		`"principal":"local","auth_method":"local","method":"stdio","decision":"deny","reason":"invalid JSON-RPC message: duplicate key`,
		`"principal":"local","auth_method":"local","method":"stdio","decision":"deny","reason":"message too large`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
}

// TestServeStdioUnwritableAudit: a message whose record cannot be written
// is refused and never reaches the server.
func TestServeStdioUnwritableAudit(t *testing.T) {
	c, _, _ := startStdio(t, context.Background(), func(g *Gateway) { g.front.audit = failingAuditor{} })
	r := c.call(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if errorCode(r) != -32603 || !strings.Contains(r["error"].(map[string]any)["message"].(string), "audit log cannot be written") {
		t.Fatalf("initialize with the audit log down: %v; want -32603 naming the audit log", r)
	}
}

// TestServeStdioStopsOnCancel: cancelling the context ends the session,
// closes the client's stdout and stops the gateway.
func TestServeStdioStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, _, _ := startStdio(t, ctx, nil)
	c.initialize()
	cancel()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("ServeStdio after cancel: %v", err)
		}
		c.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("ServeStdio did not return after cancel")
	}
	for range c.lines {
	} // ends: stdout was closed
}
