package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

func mustCompile(t testing.TB, rules ...config.PolicyRule) *Policy {
	t.Helper()
	p, err := Compile(config.Policy{Rules: rules})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func tools(globs ...string) *config.PolicyTargets { return &config.PolicyTargets{Tools: globs} }

var (
	alice  = Subject{ID: "alice", Roles: []string{"reader"}, Authenticated: true}
	bob    = Subject{ID: "bob", Roles: []string{"writer", "reader"}, Scopes: []string{"files:write"}, Authenticated: true}
	carol  = Subject{ID: "carol", Authenticated: true}
	anon   = Subject{}
	anonID = Subject{ID: "alice", Roles: []string{"reader"}} // not authenticated: id and roles do not count
)

func call(name string, args map[string]any) Request {
	return Request{Kind: Tool, Name: name, Args: args}
}

func TestDecide(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Name: "readers", Roles: []string{"reader"}, Allow: tools("files.read_*", "files.list")},
		config.PolicyRule{Name: "data-only", Roles: []string{"reader"}, Allow: tools("files.search"),
			When: `args.path.startsWith("/data/") && size(args.query) < 20`},
		config.PolicyRule{Name: "writers", Roles: []string{"writer"}, Allow: tools("files.*"),
			When: `"files:write" in principal.scopes`},
		config.PolicyRule{Name: "no-secrets", Roles: []string{"*"}, Deny: tools("files.read_secret")},
		config.PolicyRule{Name: "no-etc", Roles: []string{"*"}, Deny: tools("files.*"), When: `has(args.path) && args.path.startsWith("/etc")`},
		config.PolicyRule{Name: "strict", Roles: []string{"*"}, Deny: tools("admin.*"), When: `args.user == "root"`},
		config.PolicyRule{Name: "admins", Roles: []string{"reader"}, Allow: tools("admin.*")},
		config.PolicyRule{Name: "carol", Principals: []string{"carol"}, Allow: &config.PolicyTargets{
			Resources: []string{"file:///data/**"}, Prompts: []string{"summar?"}}},
		config.PolicyRule{Name: "everyone-echo", Principals: []string{"*"}, Allow: tools("echo")},
		config.PolicyRule{Name: "small", Principals: []string{"carol"}, Allow: tools("count"), When: `args.n < 10`},
	)
	for _, tc := range []struct {
		name   string
		s      Subject
		r      Request
		allow  bool
		rule   string
		reason string // substring
	}{
		{"allowed by glob", alice, call("files.read_text", map[string]any{"path": "/data/x"}), true, "readers", `allowed by rule "readers"`},
		{"allowed literal", alice, call("files.list", nil), true, "readers", ""},
		{"no rule", alice, call("files.write", nil), false, "", `no rule allows tool "files.write" for principal "alice"`},
		{"star does not cross dot-free names wrongly", alice, call("files.read_/x", nil), false, "", "no rule allows"},
		{"deny wins", alice, call("files.read_secret", nil), false, "no-secrets", `denied by rule "no-secrets"`},
		{"deny wins for writer too", bob, call("files.read_secret", nil), false, "no-secrets", ""},
		{"conditional deny true", alice, call("files.read_text", map[string]any{"path": "/etc/passwd"}), false, "no-etc", `denied by rule "no-etc"`},
		{"conditional deny error fails closed", alice, call("files.read_text", map[string]any{"path": 3.0}), false, "no-etc", "could not be evaluated"},
		{"conditional deny missing arg fails closed", alice, call("admin.x", nil), false, "strict", "could not be evaluated: no such key: user"},
		{"conditional deny false", alice, call("admin.x", map[string]any{"user": "joe"}), true, "admins", ""},
		{"condition true", alice, call("files.search", map[string]any{"path": "/data/a", "query": "abc"}), true, "data-only", ""},
		{"condition false", alice, call("files.search", map[string]any{"path": "/tmp/a", "query": "abc"}), false, "data-only", `condition of rule "data-only" is false`},
		{"condition size false", alice, call("files.search", map[string]any{"path": "/data/a", "query": strings.Repeat("q", 30)}), false, "data-only", "is false"},
		{"condition missing arg", alice, call("files.search", map[string]any{"path": "/data/a"}), false, "data-only", "could not be evaluated"},
		{"principal in condition", bob, call("files.write", map[string]any{"path": "/data/a"}), true, "writers", ""},
		{"principal condition false", Subject{ID: "w", Roles: []string{"writer"}, Authenticated: true}, call("files.write", map[string]any{"path": "/data/a"}), false, "writers", "is false"},
		{"principal rule resource", carol, Request{Kind: Resource, Name: "file:///data/a/b.txt"}, true, "carol", ""},
		{"resource outside", carol, Request{Kind: Resource, Name: "file:///etc/passwd"}, false, "", `no rule allows resource "file:///etc/passwd"`},
		{"prompt ?", carol, Request{Kind: Prompt, Name: "summary"}, true, "carol", ""},
		{"prompt ? one char", carol, Request{Kind: Prompt, Name: "summarize"}, false, "", ""},
		{"kinds are separate", carol, call("file:///data/a", nil), false, "", ""},
		{"role does not reach other principal", carol, call("files.list", nil), false, "", ""},
		{"star matches authenticated", carol, call("echo", nil), true, "everyone-echo", ""},
		{"star matches anonymous", anon, call("echo", nil), true, "everyone-echo", ""},
		{"anonymous has no roles", anonID, call("files.list", nil), false, "", "the anonymous principal"},
		{"json.Number int", carol, call("count", map[string]any{"n": json.Number("3")}), true, "small", ""},
		{"json.Number big", carol, call("count", map[string]any{"n": json.Number("30")}), false, "small", "is false"},
		{"float64 compares with int", carol, call("count", map[string]any{"n": 3.5}), true, "small", ""},
		{"unknown kind", alice, Request{Kind: "sampling", Name: "files.list"}, false, "", "unknown request kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.s, tc.r)
			if d.Allow != tc.allow || d.Rule != tc.rule || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("Decide = %+v, want allow %v rule %q reason containing %q", d, tc.allow, tc.rule, tc.reason)
			}
		})
	}
}

func TestDenyByDefault(t *testing.T) {
	for name, p := range map[string]*Policy{"DenyAll": DenyAll(), "empty": mustCompile(t), "nil": nil} {
		for _, r := range []Request{call("x", nil), {Kind: Resource, Name: "file:///a"}, {Kind: Prompt, Name: "p"}} {
			if d := p.Decide(alice, r); d.Allow || d.Rule != "" {
				t.Errorf("%s: %+v allowed: %+v", name, r, d)
			}
			if p.Visible(alice, r.Kind, r.Name) {
				t.Errorf("%s: %+v visible", name, r)
			}
		}
	}
}

func TestFirstAllowRuleAndLastFalse(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Name: "a", Roles: []string{"reader"}, Allow: tools("t"), When: `args.x == 1`},
		config.PolicyRule{Name: "b", Principals: []string{"alice"}, Roles: []string{"reader"}, Allow: tools("t"), When: `args.x == 2`},
		config.PolicyRule{Name: "c", Roles: []string{"*"}, Allow: tools("t"), When: `args.x >= 2`},
	)
	for _, tc := range []struct {
		x    float64
		want Decision
	}{
		{1, Decision{Allow: true, Rule: "a"}},
		{2, Decision{Allow: true, Rule: "b"}},
		{3, Decision{Allow: true, Rule: "c"}},
		{0, Decision{Rule: "c"}},
	} {
		d := p.Decide(alice, call("t", map[string]any{"x": tc.x}))
		if d.Allow != tc.want.Allow || d.Rule != tc.want.Rule {
			t.Errorf("x=%v: %+v, want %+v", tc.x, d, tc.want)
		}
	}
}

func TestVisible(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Roles: []string{"reader"}, Allow: tools("files.*")},
		config.PolicyRule{Roles: []string{"reader"}, Allow: tools("db.query"), When: `args.table == "public"`},
		config.PolicyRule{Roles: []string{"reader"}, Deny: tools("files.delete")},
		config.PolicyRule{Roles: []string{"reader"}, Deny: tools("files.write"), When: `args.path.startsWith("/etc")`},
	)
	for name, want := range map[string]bool{
		"files.read":   true,
		"db.query":     true,  // conditional: listed
		"files.delete": false, // unconditional deny: hidden
		"files.write":  true,  // conditional deny: listed
		"db.drop":      false,
	} {
		if got := p.Visible(alice, Tool, name); got != want {
			t.Errorf("Visible(%q) = %v, want %v", name, got, want)
		}
	}
	if p.Visible(carol, Tool, "files.read") {
		t.Error("visible to a principal without the role")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule config.PolicyRule
		want string
	}{
		{"not bool", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), When: `args.x`}, `policy.rules[0] ("r").when: condition is of type dyn, not bool`},
		{"int", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), When: `1 + 2`}, "not bool"},
		{"undeclared", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), When: `request.x == 1`}, "undeclared reference to 'request'"},
		{"syntax", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), When: `args.x ==`}, `policy.rules[0] ("r").when: ERROR`},
		{"no such function", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), When: `name.lowerAscii() == "x"`}, "undeclared reference to 'lowerAscii'"},
		{"bad glob", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t[0-9]")}, "policy.rules[0].allow.tools[0]"},
		{"both", config.PolicyRule{Name: "r", Roles: []string{"a"}, Allow: tools("t"), Deny: tools("t")}, "both allow and deny"},
		{"no one", config.PolicyRule{Name: "r", Allow: tools("t")}, "names no one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(config.Policy{Rules: []config.PolicyRule{tc.rule}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Name: "heavy", Principals: []string{"*"}, Allow: tools("t"),
			When: `args.list.all(x, args.list.all(y, args.list.all(z, x + y + z != "")))`},
		config.PolicyRule{Name: "heavy-deny", Principals: []string{"*"}, Deny: tools("u"),
			When: `args.list.exists(x, args.list.exists(y, x + y == "never"))`},
	)
	list := make([]any, 200)
	for i := range list {
		list[i] = "ab"
	}
	d := p.Decide(anon, call("t", map[string]any{"list": list}))
	if d.Allow || !strings.Contains(d.Reason, "cost limit") {
		t.Fatalf("over the cost limit: %+v, want a deny naming the cost limit", d)
	}
	d = p.Decide(anon, call("u", map[string]any{"list": list}))
	if d.Allow || d.Rule != "heavy-deny" || !strings.Contains(d.Reason, "cost limit") {
		t.Fatalf("deny rule over the cost limit: %+v, want denied by it", d)
	}
	if d := p.Decide(anon, call("t", map[string]any{"list": []any{"a", "b"}})); !d.Allow {
		t.Fatalf("small list: %+v", d)
	}
}

func TestFindings(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Name: "all", Principals: []string{"*"}, Allow: tools("*")},
		config.PolicyRule{Name: "deny-all", Roles: []string{"*"}, Deny: tools("x")},
		config.PolicyRule{Name: "ghost", Roles: []string{"nobody"}, Principals: []string{"ghost"}, Allow: tools("x")},
		config.PolicyRule{Name: "partly", Roles: []string{"reader", "nobody"}, Allow: tools("x")},
		config.PolicyRule{Name: "tautology", Roles: []string{"reader"}, Allow: tools("x"), When: `true || args.x == 1`},
		config.PolicyRule{Name: "tautology2", Roles: []string{"reader"}, Allow: tools("x"), When: `size(name) >= 0 || 1 == 1`},
		config.PolicyRule{Name: "fine", Roles: []string{"reader"}, Allow: tools("x"), When: `args.x == 1`},
	)
	got := strings.Join(p.Findings([]string{"reader"}, []string{"alice"}), "\n")
	for _, want := range []string{
		`policy.rules[0] ("all"): grants to every principal ("*")`,
		`policy.rules[2] ("ghost"): no API key can reach this rule: it names only role "nobody", principal "ghost"`,
		`policy.rules[3] ("partly"): names role "nobody" that no API key has`,
		`policy.rules[4] ("tautology"): condition is always true`,
		`policy.rules[5] ("tautology2"): condition is always true`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"deny-all", "fine"} {
		if strings.Contains(got, `"`+unwanted+`"`) {
			t.Errorf("findings name %q:\n%s", unwanted, got)
		}
	}
	if f := mustCompile(t).Findings(nil, nil); len(f) != 1 || f[0] != "policy: no rules: every call is denied" {
		t.Errorf("empty policy findings %q", f)
	}
}

func TestDescribe(t *testing.T) {
	p := mustCompile(t,
		config.PolicyRule{Name: "readers", Roles: []string{"reader"}, Allow: &config.PolicyTargets{
			Tools: []string{"files.read_*", "files.list"}, Resources: []string{"file:///data/**"}}, When: `args.path != ""`},
		config.PolicyRule{Roles: []string{"reader"}, Deny: tools("x")},
	)
	if got, want := p.Describe("readers"), `allow tools files.read_*, files.list; resources file:///data/** when args.path != ""`; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if got, want := p.Describe("rules[1]"), `deny tools x`; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if p.Describe("nope") != "" {
		t.Error("Describe of an unknown rule")
	}
}

func TestEmbeddedDefault(t *testing.T) {
	p, err := Compile(config.Default().Policy)
	if err != nil {
		t.Fatal(err)
	}
	key := Subject{ID: "default", Roles: []string{"admin"}, Authenticated: true}
	for _, r := range []Request{call("echo", nil), {Kind: Resource, Name: "demo://a/b"}, {Kind: Prompt, Name: "greet"}} {
		if d := p.Decide(key, r); !d.Allow || d.Rule != "embedded-default" {
			t.Errorf("%+v: %+v", r, d)
		}
	}
}

func TestConcurrentDecide(t *testing.T) {
	p := mustCompile(t, config.PolicyRule{Roles: []string{"reader"}, Allow: tools("t"), When: `args.n < 5`})
	done := make(chan bool)
	for g := range 8 {
		go func() {
			ok := true
			for i := range 200 {
				n := float64((i + g) % 10)
				ok = ok && p.Decide(alice, call("t", map[string]any{"n": n})).Allow == (n < 5)
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("wrong decision under concurrency")
		}
	}
}

// TestDocumentedConditions compiles the conditions docs/configuration.md shows.
func TestDocumentedConditions(t *testing.T) {
	for _, when := range []string{
		`args.path.startsWith("/data/") && size(args.query) < 200`,
		`has(args.x)`,
		`args.tags.all(t, t != "prod")`,
		`"admin" in principal.roles`,
		`args.path.matches("^/data/[a-z]+$")`,
		`args.limit < 100`,
		`args.flag == true`,
		`has(args.path) && args.path.startsWith("/etc")`,
		`principal.authenticated && principal.id != "" && "files:write" in principal.scopes && kind == "tool" && name != ""`,
	} {
		p := mustCompile(t, config.PolicyRule{Roles: []string{"reader"}, Allow: tools("t"), When: when})
		d := p.Decide(bob, call("t", map[string]any{"x": 1.0, "tags": []any{"a"}, "limit": 5.0, "flag": true,
			"path": "/data/abc", "query": "q"}))
		if !d.Allow && !strings.Contains(when, "/etc") && !strings.Contains(when, "admin") {
			t.Errorf("%s: %+v", when, d)
		}
	}
}
