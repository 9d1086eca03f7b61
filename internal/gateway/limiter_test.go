package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/strictjson"
)

func limiterConfig(edit func(*config.Config)) *config.Config {
	c := config.Default()
	c.Auth.InsecureDisableAuth = true
	c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 0.001, Burst: 1, Concurrent: 2}
	c.Limits.ConcurrentTotal = 100
	if edit != nil {
		edit(c)
	}
	c.ApplyDefaults()
	return c
}

// TestCallLimiterRoles: a role's limits replace the defaults for its
// principals, and of several roles the most generous (highest rate) wins.
func TestCallLimiterRoles(t *testing.T) {
	l := newCallLimiter(limiterConfig(func(c *config.Config) {
		c.Limits.Roles = map[string]config.PrincipalLimits{
			"batch": {Rate: 0.001, Burst: 3, Concurrent: 3},
			"vip":   {Rate: 0.01, Burst: 5, Concurrent: 1},
		}
	}), nil)
	allowed := func(p *authn.Principal) int {
		n := 0
		for range 10 {
			if ok, _, _ := l.allowRate(p, nil); ok {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		roles []string
		want  int
	}{
		{nil, 1},
		{[]string{"reader"}, 1},
		{[]string{"batch"}, 3},
		{[]string{"batch", "vip"}, 5},
	} {
		p := &authn.Principal{ID: strings.Join(tc.roles, "+") + "x", Roles: tc.roles, Method: authn.MethodAPIKey}
		if got := allowed(p); got != tc.want {
			t.Errorf("roles %v: %d of 10 requests allowed, want %d", tc.roles, got, tc.want)
		}
	}
	// Concurrency follows the same role: batch holds 3, vip 1.
	batch := &authn.Principal{ID: "b", Roles: []string{"batch"}, Method: authn.MethodAPIKey}
	for i := range 3 {
		if _, refused := l.acquire(batch, nil); refused != "" {
			t.Fatalf("batch slot %d: %s", i, refused)
		}
	}
	if _, refused := l.acquire(batch, nil); !strings.Contains(refused, "for this principal") {
		t.Fatalf("batch's fourth slot: %q", refused)
	}
}

// TestCallLimiterToolAndUpstream: a tool's own bucket limits that tool
// only; an upstream's cap limits calls to it from everyone, and a refusal
// there gives back the principal's slot it had taken.
func TestCallLimiterToolAndUpstream(t *testing.T) {
	cfg := limiterConfig(func(c *config.Config) {
		c.Limits.PerPrincipal.Rate, c.Limits.PerPrincipal.Burst = 1000, 1000
		c.Upstreams = map[string]config.Upstream{"s": {
			URL:    "https://s.example.com/mcp",
			Limits: &config.UpstreamLimits{Concurrent: 1},
			Tools:  map[string]config.ToolSettings{"slow": {Limit: &config.RateLimit{Rate: 0.001, Burst: 2}}},
		}}
	})
	l := newCallLimiter(cfg, func(kind, name string) string {
		if kind == "tool" && strings.HasPrefix(name, "s.") {
			return "s"
		}
		return ""
	})
	alice := &authn.Principal{ID: "alice", Method: authn.MethodAPIKey}
	bob := &authn.Principal{ID: "bob", Method: authn.MethodAPIKey}
	call := func(tool string) *strictjson.Message {
		return &strictjson.Message{Kind: strictjson.Request, Method: "tools/call", Name: tool}
	}
	for i := range 2 {
		if ok, _, _ := l.allowRate(alice, call("s.slow")); !ok {
			t.Fatalf("alice's s.slow %d refused", i)
		}
	}
	if ok, _, what := l.allowRate(alice, call("s.slow")); ok || what != "calls of this tool" {
		t.Fatalf("alice's third s.slow: ok %v, %q", ok, what)
	}
	if ok, _, _ := l.allowRate(bob, call("s.slow")); !ok {
		t.Fatal("bob's s.slow refused: the tool bucket is per principal")
	}
	if ok, _, _ := l.allowRate(alice, call("s.fast")); !ok {
		t.Fatal("another tool refused by s.slow's bucket")
	}

	release, refused := l.acquire(alice, call("s.fast"))
	if refused != "" {
		t.Fatal(refused)
	}
	if _, refused := l.acquire(bob, call("s.slow")); !strings.Contains(refused, `upstream "s" has too many calls in flight`) {
		t.Fatalf("bob while s is at its cap: %q", refused)
	}
	// bob's principal slot was given back: his cap of 2 holds two other calls.
	for i := range 2 {
		if _, refused := l.acquire(bob, call("other")); refused != "" {
			t.Fatalf("bob's call %d elsewhere: %s", i, refused)
		}
	}
	release()
	if _, refused := l.acquire(alice, call("s.fast")); refused != "" {
		t.Fatalf("s after its call ended: %s", refused)
	}
}

// TestUpstreamConcurrencyThroughGateway: with upstreams.t.limits.concurrent
// 1, alice's blocked call holds the upstream; bob's call to it gets 429
// naming the upstream, while his call to another upstream is served.
func TestUpstreamConcurrencyThroughGateway(t *testing.T) {
	tg := newTestGateway(t, withTestServerSettings(func(u *config.Upstream) {
		u.Limits = &config.UpstreamLimits{Concurrent: 1}
	}))
	started, _ := addBlockingTool(t, tg)
	hangUp, done := blockedCall(tg, tg.keyA)
	defer func() { hangUp(); <-done }()
	<-started
	resp, b := tg.post(t, tg.keyB, modernBody(2, "tools/call", `"name":"pid","arguments":{}`), modernHeaders("tools/call", "pid"))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `upstream \"t\" has too many calls in flight`) {
		t.Fatalf("bob's call to the busy upstream: %s %s", resp.Status, b)
	}
	if resp, b := tg.post(t, tg.keyB, echoCall(3), modernHeaders("tools/call", "echo")); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's call to another upstream: %s %s", resp.Status, b)
	}
}
