package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLegacyCancellation: in the legacy era a client cancels with
// notifications/cancelled on its session; the tool's context must end.
func TestLegacyCancellation(t *testing.T) {
	tg := newTestGateway(t, nil)
	started, cancelled := addBlockingTool(t, tg)
	sid := legacyInit(t, tg, tg.keyA)
	withSession := func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL,
			strings.NewReader(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"block","arguments":{}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tg.keyA)
		withSession(req)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("tool never started")
	}
	resp, b := tg.post(t, tg.keyA, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"test"}}`, withSession)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: status %d: %s", resp.StatusCode, b)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("notifications/cancelled did not cancel the tool's context")
	}
	stop()
	<-done
}
