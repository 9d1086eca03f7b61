package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
)

// newRemoteGateway is a gateway on a real loopback listener whose only
// upstream is the demo served over Streamable HTTP by a real server (whose
// requests onRequest sees), with API key keyA for "alice". opts are the
// gateway's options.
func newRemoteGateway(t testing.TB, edit func(*config.Config), onRequest func(*http.Request), opts ...Option) *testGateway {
	t.Helper()
	h := demo.New(nil).Handler()
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if onRequest != nil {
			onRequest(r)
		}
		h.ServeHTTP(w, r)
	}))
	// Registered first, so it runs after the gateway's Close has ended the
	// upstream session.
	t.Cleanup(remote.Close)
	keyA, digestA := authn.NewKey()
	cfg := config.Default()
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digestA}}
	none := ""
	cfg.Upstreams = map[string]config.Upstream{"remote": {URL: remote.URL + "/mcp", Namespace: &none}}
	if edit != nil {
		edit(cfg)
	}
	cfg.ApplyDefaults()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("test config invalid: %v", ps)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &testGateway{Gateway: g, URL: srv.URL + EndpointPath, keyA: keyA}
}

// TestAlertWebhookOnBadKeys: a real gateway gets five requests with wrong
// API keys; the rule (three in a minute) fires once, and a real loopback
// webhook receiver gets exactly one POST with the firing's JSON.
func TestAlertWebhookOnBadKeys(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var auth []string
	got := make(chan struct{}, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		got <- struct{}{}
	}))
	t.Cleanup(hook.Close)
	t.Setenv("MCPGATE_TEST_HOOK_TOKEN", "Bearer hook-secret") // the header value is the secret, whole
	tg := newRemoteGateway(t, func(c *config.Config) {
		c.Alerts = config.Alerts{
			Rules: []config.AlertRule{
				{Name: "bad-keys", On: config.AlertAuthFailures, Threshold: 3, Window: time.Minute},
				{Name: "kills", On: config.AlertSandboxKills, Threshold: 1},
			},
			Webhook: &config.AlertWebhook{URL: hook.URL + "/alert", InsecureAllowHTTPLoopback: true,
				Headers: map[string]config.Value{"Authorization": {Secret: "env:MCPGATE_TEST_HOOK_TOKEN"}}},
		}
	}, nil)
	for i := range 5 {
		resp, _ := tg.post(t, "mcpgate_wrong_key_"+itoa(int64(i)), modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad key %d: status %d, want 401", i, resp.StatusCode)
		}
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook got no POST")
	}
	tg.Close() // stops the sender: nothing more can arrive, every delivery is counted
	text := scrape(t, tg.Gateway)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("webhook got %d POSTs, want exactly 1: %q", len(bodies), bodies)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &f); err != nil {
		t.Fatalf("webhook body %q: %v", bodies[0], err)
	}
	for k, want := range map[string]any{"rule": "bad-keys", "on": "auth_failures", "count": 3.0, "threshold": 3.0, "window": "1m0s", "version": Version()} {
		if f[k] != want {
			t.Errorf("webhook body %s = %v, want %v", k, f[k], want)
		}
	}
	if ts, _ := f["time"].(string); ts == "" {
		t.Errorf("webhook body has no time: %s", bodies[0])
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("webhook time %q: %v", ts, err)
	}
	if auth[0] != "Bearer hook-secret" {
		t.Errorf("webhook Authorization %q, want the configured secret", auth[0])
	}
	for _, want := range []string{
		`mcpgate_alerts_total{rule="bad-keys"} 1`,
		`mcpgate_alerts_total{rule="kills"} 0`,
		`mcpgate_alert_webhook_deliveries_total{result="ok"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestSessionsOpenGauge: mcpgate_sessions_open{era="legacy"} follows legacy
// sessions up and back down, whichever way they end: DELETE, the idle
// timeout inside the SDK, or the gateway's shutdown. Stateless (modern)
// requests never count.
func TestSessionsOpenGauge(t *testing.T) {
	const idle = 300 * time.Millisecond
	tg := newRemoteGateway(t, func(c *config.Config) { c.Listen.SessionIdleTimeout = idle }, nil)
	open := func() string {
		t.Helper()
		for _, line := range strings.Split(scrape(t, tg.Gateway), "\n") {
			if strings.HasPrefix(line, `mcpgate_sessions_open{era="legacy"} `) {
				return strings.TrimPrefix(line, `mcpgate_sessions_open{era="legacy"} `)
			}
		}
		t.Fatal("no mcpgate_sessions_open{era=\"legacy\"} in the exposition")
		return ""
	}
	expect := func(what, want string) {
		t.Helper()
		if got := open(); got != want {
			t.Fatalf("%s: sessions open = %s, want %s", what, got, want)
		}
	}
	expect("at start", "0")
	if resp, b := tg.post(t, tg.keyA, modernBody(1, "tools/list", ""), modernHeaders("tools/list", "")); resp.StatusCode != 200 {
		t.Fatalf("modern tools/list: %d %s", resp.StatusCode, b)
	}
	expect("after a stateless request", "0")

	a := legacyInit(t, tg, tg.keyA)
	b := legacyInit(t, tg, tg.keyA)
	expect("two sessions", "2")
	resp, _ := request(t, http.MethodDelete, tg.URL, tg.keyA, "", func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", a)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	expect("after DELETE", "1")

	// b is idle: the SDK closes it after idle; nothing tells the gateway.
	waitFor(t, "the idle session to expire", func() bool { return open() == "0" })
	resp, _ = tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`, func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", b)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the expired session answered %d, want 404", resp.StatusCode)
	}

	legacyInit(t, tg, tg.keyA)
	expect("a new session", "1")
	tg.Close()
	expect("after shutdown", "0")
}
