package config

import (
	"strings"
	"testing"
)

func TestPolicyFromYAML(t *testing.T) {
	src := `
auth:
  api_keys:
    - {id: ci-bot, sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", roles: [reader]}
upstreams: {demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}}
policy:
  rules:
    - roles: [reader]
      allow: {tools: ["files.read_*"], resources: ["file:///data/**"]}
      when: 'args.path.startsWith("/data/")'
    - name: no-secrets
      principals: ["*"]
      deny: {prompts: ["secret?"]}
`
	c, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Policy.Rules
	if len(rs) != 2 || rs[0].Name != "rules[0]" || rs[1].Name != "no-secrets" || rs[0].Allow == nil ||
		rs[0].Allow.Resources[0] != "file:///data/**" || rs[1].Deny == nil || rs[1].Deny.Prompts[0] != "secret?" ||
		rs[0].When != `args.path.startsWith("/data/")` {
		t.Fatalf("decoded policy %+v", rs)
	}

	_, err = Parse("p.yaml", []byte(strings.Replace(src, "when:", "wen:", 1)))
	if err == nil || !strings.Contains(err.Error(), `p.yaml:10: policy.rules[0].wen: unknown key (did you mean "when"?)`) {
		t.Fatalf("misspelt key: %v", err)
	}
	_, err = Parse("p.yaml", []byte(strings.Replace(src, `deny: {prompts: ["secret?"]}`, "allow: {prompts: [a]}\n      deny: {prompts: [b]}", 1)))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:11: policy.rules[1]: sets both allow and deny") {
		t.Fatalf("allow and deny: %v", err)
	}
}

func TestPolicyValidation(t *testing.T) {
	tools := func(g ...string) *PolicyTargets { return &PolicyTargets{Tools: g} }
	for _, tc := range []struct {
		name  string
		rules []PolicyRule
		want  string // "" means valid
	}{
		{"empty policy", nil, ""},
		{"fine", []PolicyRule{{Roles: []string{"reader"}, Principals: []string{"*"}, Allow: tools("a.*")}}, ""},
		{"neither", []PolicyRule{{Roles: []string{"r"}}}, "policy.rules[0]: sets neither allow nor deny"},
		{"both", []PolicyRule{{Roles: []string{"r"}, Allow: tools("a"), Deny: tools("b")}}, "policy.rules[0]: sets both allow and deny"},
		{"no one", []PolicyRule{{Allow: tools("a")}}, "policy.rules[0]: names no one"},
		{"bad role", []PolicyRule{{Roles: []string{"a b"}, Allow: tools("a")}}, `policy.rules[0].roles[0]: "a b" is not a valid role name`},
		{"bad principal", []PolicyRule{{Principals: []string{"**"}, Allow: tools("a")}}, `policy.rules[0].principals[0]: "**" is not a valid principal id`},
		{"no target", []PolicyRule{{Roles: []string{"r"}, Deny: &PolicyTargets{}}}, "policy.rules[0].deny: names no target"},
		{"empty glob", []PolicyRule{{Roles: []string{"r"}, Allow: tools("a", "")}}, "policy.rules[0].allow.tools[1]: empty pattern"},
		{"class glob", []PolicyRule{{Roles: []string{"r"}, Allow: &PolicyTargets{Resources: []string{"file:///[ab]"}}}}, "policy.rules[0].allow.resources[0]: "},
		{"triple star", []PolicyRule{{Roles: []string{"r"}, Allow: &PolicyTargets{Prompts: []string{"***"}}}}, "policy.rules[0].allow.prompts[0]: "},
		{"bad name", []PolicyRule{{Name: "a rule", Roles: []string{"r"}, Allow: tools("a")}}, `policy.rules[0].name: "a rule" must be`},
		{"duplicate name", []PolicyRule{{Name: "x", Roles: []string{"r"}, Allow: tools("a")}, {Name: "x", Roles: []string{"r"}, Allow: tools("a")}},
			`policy.rules[1].name: duplicate rule name "x" (also policy.rules[0])`},
		{"default name taken", []PolicyRule{{Roles: []string{"r"}, Allow: tools("a")}, {Name: "rules[0]", Roles: []string{"r"}, Allow: tools("a")}},
			`policy.rules[1].name: "rules[0]" must be`},
		{"blank when", []PolicyRule{{Roles: []string{"r"}, Allow: tools("a"), When: "  "}}, "policy.rules[0].when: is blank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.InsecureDisableAuth = true
			c.Policy.Rules = tc.rules
			c.ApplyDefaults()
			got := c.Validate().Error()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	rs := Default().Policy.Rules
	if len(rs) != 1 || rs[0].Name != "embedded-default" || rs[0].Principals[0] != "*" || rs[0].Allow == nil {
		t.Fatalf("default policy %+v", rs)
	}
	if ps := Default().Policy.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
}
