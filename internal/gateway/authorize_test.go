package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// twoRoles gives alice the role ops and bob the role dev, with a policy in
// which ops may use the test server's tools and dev only the demo's echo,
// and only for short messages.
func twoRoles(c *config.Config) {
	c.Auth.APIKeys[0].Roles = []string{"ops"}
	c.Auth.APIKeys[1].Roles = []string{"dev"}
	c.Policy = config.Policy{Rules: []config.PolicyRule{
		{Name: "ops-tools", Roles: []string{"ops"}, Allow: &config.PolicyTargets{Tools: []string{"pid", "block", "grow"}}},
		{Name: "dev-echo", Roles: []string{"dev"}, Allow: &config.PolicyTargets{Tools: []string{"echo"}}},
		{Name: "dev-short", Roles: []string{"dev"}, Deny: &config.PolicyTargets{Tools: []string{"echo"}}, When: `size(args.message) > 10`},
	}}
}

// listTools returns the tool names key sees.
func listTools(t *testing.T, tg *testGateway, key string) string {
	t.Helper()
	resp, b := tg.post(t, key, modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// rawCall returns the status and decoded answer of a tools/call.
func rawCall(t *testing.T, tg *testGateway, key, name, args string) (int, rpcError) {
	t.Helper()
	resp, b := tg.post(t, key, modernBody(1, "tools/call", `"name":"`+name+`","arguments":`+args), modernHeaders("tools/call", name))
	return resp.StatusCode, decodeRPC(t, b)
}

// TestPolicyTwoRoles: each role sees and can call only its own tools; a
// denied call is answered exactly as a call to a tool that does not exist;
// the two leave audit records that differ (the denial names its rule).
func TestPolicyTwoRoles(t *testing.T) {
	tg, logPath := auditedGateway(t, twoRoles)

	alice, bob := listTools(t, tg, tg.keyA), listTools(t, tg, tg.keyB)
	if !strings.Contains(alice, `"pid"`) || strings.Contains(alice, `"echo"`) || strings.Contains(alice, `"test_simple_text"`) {
		t.Errorf("alice (ops) lists %s; want pid, and neither echo nor the demo's other tools", alice)
	}
	if !strings.Contains(bob, `"echo"`) || strings.Contains(bob, `"pid"`) {
		t.Errorf("bob (dev) lists %s; want echo (conditional, still listed) and not pid", bob)
	}
	if r := callTool(t, tg, tg.keyA, "pid"); r.Error != nil {
		t.Fatalf("alice calls pid: %+v", r.Error)
	}
	if _, r := rawCall(t, tg, tg.keyB, "echo", `{"message":"short"}`); r.Error != nil || !strings.Contains(string(r.Result), "short") {
		t.Fatalf("bob calls echo with a short message: %+v %s", r.Error, r.Result)
	}

	// Denied (no rule, a deny rule's condition) and nonexistent: the same answer.
	deniedStatus, denied := rawCall(t, tg, tg.keyB, "pid", `{}`)
	condStatus, cond := rawCall(t, tg, tg.keyB, "echo", `{"message":"much too long for dev"}`)
	missingStatus, missing := rawCall(t, tg, tg.keyB, "no_such_tool", `{}`)
	for _, c := range []struct {
		what   string
		status int
		r      rpcError
		name   string
	}{{"denied pid", deniedStatus, denied, "pid"}, {"denied long echo", condStatus, cond, "echo"}, {"nonexistent", missingStatus, missing, "no_such_tool"}} {
		if c.r.Error == nil || c.status != missingStatus || c.r.Error.Code != missing.Error.Code ||
			c.r.Error.Message != strings.ReplaceAll(missing.Error.Message, "no_such_tool", c.name) {
			t.Errorf("%s: status %d %+v; want exactly the answer for a nonexistent tool (%d %+v)", c.what, c.status, c.r.Error, missingStatus, missing.Error)
		}
	}

	var denials []audit.Event
	for _, ev := range auditEvents(t, tg, logPath) {
		if ev.Decision == audit.Deny && ev.Stage == audit.StagePolicy {
			denials = append(denials, ev)
		}
	}
	if len(denials) != 2 {
		t.Fatalf("audit denials = %+v, want 2 (pid, long echo); the nonexistent tool is not a denial", denials)
	}
	if denials[0].Name != "pid" || denials[0].Principal != "bob" || !strings.Contains(denials[0].Reason, "no rule allows") {
		t.Errorf("first denial = %+v", denials[0])
	}
	if denials[1].Name != "echo" || denials[1].Rule != "dev-short" {
		t.Errorf("second denial = %+v, want rule dev-short", denials[1])
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_refusals_total{reason="policy"} 2`+"\n") {
		t.Errorf("want 2 policy refusals counted:\n%s", m)
	}
}

// TestPolicyReloadUnderLoad reloads the policy from the config file while
// calls run: a call in flight keeps the decision it started with, later
// calls get the new policy, a reload that fails to compile is refused and
// the policy in force stays.
func TestPolicyReloadUnderLoad(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		twoRoles(c)
		c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 1e6, Burst: 1_000_000, Concurrent: 1000}
	})
	cfgFile := filepath.Join(t.TempDir(), "mcpgate.yaml")
	tg.cfgPath = cfgFile
	writePolicy := func(rules string) {
		t.Helper()
		yaml := fmt.Sprintf("auth: {insecure_disable_auth: true}\nupstreams:\n  t: {command: [%q, testserver], insecure_no_sandbox: true}\npolicy:\n  rules:\n%s", os.Args[0], rules)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A call allowed by the first policy is in flight across the reload.
	started, _ := addBlockingTool(t, tg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inflight := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, strings.NewReader(modernBody(9, "tools/call", `"name":"block","arguments":{}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tg.keyA)
		modernHeaders("tools/call", "block")(req)
		_, err := http.DefaultClient.Do(req)
		inflight <- err
	}()
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("block never started")
	}

	// Load: alice calls pid from 4 goroutines while the policy flips to
	// one that gives ops only echo. Each answer must be one the old or the
	// new policy gives, never anything else.
	writePolicy(`    - {name: ops-echo-only, roles: [ops], allow: {tools: [echo]}}` + "\n")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var odd []string
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, b, err := postNoFatal(tg, tg.keyA, modernBody(1, "tools/call", `"name":"pid","arguments":{}`), modernHeaders("tools/call", "pid"))
				if err != nil {
					continue
				}
				ok := resp.StatusCode == http.StatusOK && !strings.Contains(string(b), `"error"`)
				unknown := strings.Contains(string(b), `unknown tool \"pid\"`)
				if !ok && !unknown {
					mu.Lock()
					odd = append(odd, string(b))
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := tg.ReloadPolicy(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(odd) > 0 {
		t.Fatalf("answers that neither policy gives: %q", odd[0])
	}
	if status, r := rawCall(t, tg, tg.keyA, "pid", `{}`); r.Error == nil {
		t.Fatalf("pid after the reload: %d %s; want it denied", status, r.Result)
	}
	select {
	case err := <-inflight:
		t.Fatalf("the call in flight ended at the reload: %v", err)
	default: // still running under the decision it started with
	}

	// A policy that does not compile is refused; the one in force stays.
	writePolicy(`    - {name: broken, roles: [ops], allow: {tools: [pid]}, when: 'args.x +'}` + "\n")
	if err := tg.ReloadPolicy(); err == nil {
		t.Fatal("a policy with a broken condition was loaded")
	}
	if _, r := rawCall(t, tg, tg.keyA, "echo", `{"message":"hi"}`); r.Error != nil {
		t.Fatalf("echo after a refused reload: %+v; the previous policy must stay", r.Error)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_policy_reloads_total{result="ok"} 1`) || !strings.Contains(m, `mcpgate_policy_reloads_total{result="refused"} 1`) {
		t.Errorf("reload counts wrong:\n%s", m)
	}
}

// FuzzNothingUnallowedReachesTheUpstream: whatever tool name and arguments a
// principal sends, a call reaches the upstream child (asserted there: the
// test server's "note" tool logs every call it gets) only if the policy,
// asked directly, allows it and the arguments pass the tool's schema.
func FuzzNothingUnallowedReachesTheUpstream(f *testing.F) {
	f.Add(true, "note", `{"n":1}`)
	f.Add(true, "note", `{"n":7}`)
	f.Add(true, "note", `{}`)
	f.Add(false, "note", `{"n":1}`)
	f.Add(true, "t.note", `{"n":1}`)
	f.Add(true, "note", `{"n":"1"}`)
	f.Add(true, "note", `[1]`)
	f.Add(true, "note", `{"n":4.999}`)
	f.Add(true, "note", `{"n":1,"tag":"much too long"}`)
	f.Add(true, "note", `{"n":1,"extra":true}`)
	tg := newTestGateway(f, func(c *config.Config) {
		c.Auth.APIKeys[0].Roles = []string{"ops"}
		c.Auth.APIKeys[1].Roles = []string{"dev"}
		c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 1e6, Burst: 1_000_000, Concurrent: 1000}
		c.Policy = config.Policy{Rules: []config.PolicyRule{
			{Name: "ops-small-notes", Roles: []string{"ops"}, Allow: &config.PolicyTargets{Tools: []string{"note"}}, When: `has(args.n) && args.n < 5`},
			{Name: "dev-everything", Roles: []string{"dev"}, Allow: &config.PolicyTargets{Tools: []string{"*"}}},
			{Name: "dev-no-notes", Roles: []string{"dev"}, Deny: &config.PolicyTargets{Tools: []string{"note"}}},
		}}
	})
	pol := tg.authz.policy.Load()
	log := filepath.Join(tg.markers, "calls.log")
	lines := func() int {
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "\n")
	}
	// The assertion can see a call arrive: an allowed one does.
	if resp, b, err := postNoFatal(tg, tg.keyA, modernBody(1, "tools/call", `"name":"note","arguments":{"n":1}`), modernHeaders("tools/call", "note")); err != nil || resp.StatusCode != http.StatusOK || lines() != 1 {
		f.Fatalf("an allowed note call did not reach the upstream: %v %s (log lines %d)", err, b, lines())
	}
	f.Fuzz(func(t *testing.T, alice bool, name, args string) {
		key, subject := tg.keyB, policy.Subject{ID: "bob", Roles: []string{"dev"}, Authenticated: true}
		if alice {
			key, subject = tg.keyA, policy.Subject{ID: "alice", Roles: []string{"ops"}, Authenticated: true}
		}
		params, err := json.Marshal(map[string]json.RawMessage{"name": mustJSON(name), "arguments": json.RawMessage(args)})
		if err != nil {
			return // not a JSON value: the strict gate's business, tested elsewhere
		}
		before := lines()
		resp, _, err := postNoFatal(tg, key, modernBody(1, "tools/call", strings.Trim(string(params), "{}")), modernHeaders("tools/call", name))
		if err != nil {
			t.Skip("request not sent") // a name no HTTP header can carry
		}
		resp.Body.Close()
		if lines() == before {
			return
		}
		var decoded map[string]any
		json.Unmarshal([]byte(args), &decoded)
		if d := pol.Decide(subject, policy.Request{Kind: policy.Tool, Name: name, Args: decoded}); !d.Allow {
			t.Fatalf("%s's call of %q with %s reached the upstream, but the policy says %+v", subject.ID, name, args, d)
		}
		if err := tg.catalog.ValidateArguments(name, json.RawMessage(args)); err != nil {
			t.Fatalf("%s's call of %q with %s reached the upstream, but fails the tool's schema: %v", subject.ID, name, args, err)
		}
	})
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// TestPolicyLegacySession: the policy governs legacy (session) traffic the
// same way: bob's session lists only his tools and his denied call is
// answered as unknown.
func TestPolicyLegacySession(t *testing.T) {
	tg := newTestGateway(t, twoRoles)
	sid := legacyInit(t, tg, tg.keyB)
	withSession := func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	_, list := tg.post(t, tg.keyB, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, withSession)
	if !strings.Contains(string(list), `"echo"`) || strings.Contains(string(list), `"pid"`) {
		t.Errorf("bob's legacy tools/list: %s", list)
	}
	_, b := tg.post(t, tg.keyB, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"pid","arguments":{}}}`, withSession)
	if r := decodeRPC(t, b); r.Error == nil || r.Error.Message != `unknown tool "pid"` {
		t.Errorf("bob's legacy call of pid: %s, want unknown tool", b)
	}
	_, b = tg.post(t, tg.keyB, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok"}}}`, withSession)
	if r := decodeRPC(t, b); r.Error != nil || !strings.Contains(string(r.Result), "ok") {
		t.Errorf("bob's legacy call of echo: %s", b)
	}
}

// TestPolicyReloadOnFileChange: a served gateway notices its config file
// change and reloads the policy from it.
func TestPolicyReloadOnFileChange(t *testing.T) {
	key, digest := authn.NewKey()
	cfgFile := filepath.Join(t.TempDir(), "mcpgate.yaml")
	write := func(tool string) {
		yaml := fmt.Sprintf("auth:\n  api_keys: [{id: alice, sha256: %q, roles: [ops]}]\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\npolicy:\n  rules: [{name: r, roles: [ops], allow: {tools: [%s]}}]\n", digest, tool)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("echo")
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen.Address, cfg.Admin.Address = "127.0.0.1:0", "127.0.0.1:0"
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln := serveOn(t, g)
	url := g.EndpointURL(ln)
	call := func() string {
		_, b := request(t, http.MethodPost, url, key, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"x"}`), modernHeaders("tools/call", "echo"))
		return string(b)
	}
	if b := call(); strings.Contains(b, `"error"`) {
		t.Fatalf("echo under the first policy: %s", b)
	}
	write("test_simple_text")
	deadline := time.Now().Add(3 * policyPollInterval)
	for !strings.Contains(call(), `unknown tool \"echo\"`) {
		if time.Now().After(deadline) {
			t.Fatal("the changed config file was not reloaded")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSchemaViolationNeverReachesTheUpstream: arguments that fail the tool's
// input schema are answered -32602 naming the path and keyword, audited and
// counted, and the child never sees them.
func TestSchemaViolationNeverReachesTheUpstream(t *testing.T) {
	tg, logPath := auditedGateway(t, nil)
	for _, args := range []string{`{"n":"seven"}`, `{"n":1000}`, `{"tag":"123456789"}`, `{"other":1}`} {
		status, r := rawCall(t, tg, tg.keyA, "note", args)
		// The SDK answers invalid params of a modern request with 400.
		if status != http.StatusBadRequest || r.Error == nil || r.Error.Code != -32602 ||
			!strings.HasPrefix(r.Error.Message, `invalid arguments for tool "note": `) || !strings.Contains(r.Error.Message, "/properties/") && !strings.Contains(r.Error.Message, "additional") {
			t.Errorf("note %s: %d %+v; want -32602 naming the failing path", args, status, r.Error)
		}
	}
	if _, err := os.Stat(filepath.Join(tg.markers, "calls.log")); err == nil {
		b, _ := os.ReadFile(filepath.Join(tg.markers, "calls.log"))
		t.Fatalf("invalid arguments reached the upstream: %s", b)
	}
	if status, r := rawCall(t, tg, tg.keyA, "note", `{"n":7,"tag":"ok"}`); status != http.StatusOK || r.Error != nil {
		t.Fatalf("valid note: %d %+v", status, r.Error)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_refusals_total{reason="schema"} 4`+"\n") {
		t.Errorf("want 4 schema refusals counted:\n%s", m)
	}
	n := 0
	for _, ev := range auditEvents(t, tg, logPath) {
		// Counted at the decision (stage policy); the call's result record
		// repeats the denial as its outcome.
		if ev.Stage == audit.StagePolicy && ev.Decision == audit.Deny && ev.Name == "note" && strings.Contains(ev.Reason, "input schema") {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d schema denials audited, want 4", n)
	}
}
