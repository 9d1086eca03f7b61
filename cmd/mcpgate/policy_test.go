package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const policyTestConfig = `auth:
  api_keys:
    - {id: alice, sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", roles: [reader]}
upstreams:
  demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}
policy:
  rules:
    - name: readers
      roles: [reader]
      allow: {tools: ["files.read_*"], resources: ["file:///data/**"]}
    - name: search
      roles: [reader]
      allow: {tools: [files.search]}
      when: 'args.path.startsWith("/data/")'
    - name: no-secrets
      principals: ["*"]
      deny: {tools: ["files.read_secret"]}
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyExplain(t *testing.T) {
	cfg := writeConfig(t, policyTestConfig)
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // substring of stdout, or of stderr for errors
	}{
		{"allow", []string{"--principal", "alice", "--tool", "files.read_text"}, exitOK,
			`allow: rule "readers" (allow tools files.read_*; resources file:///data/**)`},
		{"deny no rule", []string{"--principal", "alice", "--tool", "x"}, exitError,
			`deny: no rule allows tool "x" for principal "alice"`},
		{"deny rule", []string{"--principal", "alice", "--tool", "files.read_secret"}, exitError,
			`deny: denied by rule "no-secrets" (deny tools files.read_secret)`},
		{"condition true", []string{"--principal", "alice", "--tool", "files.search", "--args", `{"path":"/data/x"}`}, exitOK,
			`allow: rule "search" (allow tools files.search when args.path.startsWith("/data/"))`},
		{"condition false", []string{"--principal", "alice", "--tool", "files.search", "--args", `{"path":"/etc"}`}, exitError,
			`deny: condition of rule "search" is false (allow tools files.search when`},
		{"resource", []string{"--principal", "alice", "--resource", "file:///data/a/b"}, exitOK, `allow: rule "readers"`},
		{"prompt", []string{"--principal", "alice", "--prompt", "p"}, exitError, `deny: no rule allows prompt "p"`},
		{"roles for another principal", []string{"--principal", "jwt-user", "--roles", "reader", "--tool", "files.read_x"}, exitOK, `allow: rule "readers"`},
		{"unknown principal", []string{"--principal", "bob", "--tool", "x"}, exitUsage, `no API key or auth.mtls principal has id "bob"`},
		{"two targets", []string{"--principal", "alice", "--tool", "x", "--prompt", "y"}, exitUsage, "exactly one of"},
		{"no target", []string{"--principal", "alice"}, exitUsage, "exactly one of"},
		{"bad args", []string{"--principal", "alice", "--tool", "x", "--args", `[1]`}, exitUsage, "one JSON object"},
		{"no principal", []string{"--tool", "x"}, exitUsage, "--principal ID is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"policy", "explain", "--config", cfg}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.out) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d and %q", code, out, errOut, tc.code, tc.out)
			}
		})
	}
	if code, _, _ := runCLI(t, "policy"); code != exitUsage {
		t.Fatalf("policy without explain: code %d", code)
	}
	if code, _, _ := runCLI(t, "policy", "explain", "--tool", "x"); code != exitUsage {
		t.Fatalf("explain without --config: code %d", code)
	}
}

func TestPolicyExplainAnonymous(t *testing.T) {
	cfg := writeConfig(t, `auth: {insecure_disable_auth: true}
upstreams: {demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}}
policy: {rules: [{name: all, principals: ["*"], allow: {tools: ["*"]}}]}
`)
	code, out, errOut := runCLI(t, "policy", "explain", "--config", cfg, "--tool", "echo")
	if code != exitOK || !strings.Contains(out, `allow: rule "all"`) {
		t.Fatalf("code %d: %s %s", code, out, errOut)
	}
}

func TestCheckPolicy(t *testing.T) {
	risky := writeConfig(t, policyTestConfig+`    - name: everyone
      roles: ["*"]
      allow: {tools: ["*"]}
    - name: ghosts
      roles: [ghost]
      allow: {tools: [echo]}
    - name: always
      roles: [reader]
      allow: {tools: [echo]}
      when: 'true || args.x == 1'
`)
	code, out, errOut := runCLI(t, "check", "--config", risky)
	for _, want := range []string{
		"warning: " + risky + `: policy.rules[3] ("everyone"): grants to every principal ("*")`,
		"warning: " + risky + `: policy.rules[4] ("ghosts"): no API key can reach this rule`,
		"warning: " + risky + `: policy.rules[5] ("always"): condition is always true`,
		risky + ": ok",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("check: code %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}

	empty := writeConfig(t, strings.Split(policyTestConfig, "policy:")[0])
	code, out, _ = runCLI(t, "check", "--config", empty)
	if code != exitOK || !strings.Contains(out, "warning: "+empty+": policy: no rules: every call is denied") {
		t.Errorf("check without policy: code %d:\n%s", code, out)
	}

	bad := writeConfig(t, policyTestConfig+`    - name: broken
      roles: [reader]
      allow: {tools: [echo]}
      when: 'args.x + '
`)
	code, out, errOut = runCLI(t, "check", "--config", bad)
	if code != exitError || !strings.Contains(out, `error: `+bad+`: policy.rules[3] ("broken").when: ERROR`) {
		t.Errorf("check with a CEL error: code %d:\n%s%s", code, out, errOut)
	}
}

// TestPolicyExplainCertificatePrincipal decides for a principal that
// auth.mtls maps from a client certificate, with the roles it configures.
func TestPolicyExplainCertificatePrincipal(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("read when serving, not by policy explain"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, strings.Replace(policyTestConfig, "auth:\n", "listen:\n  tls: {self_signed: true, client_ca: "+ca+"}\n"+
		"auth:\n  mtls:\n    principals:\n      - {id: ci, roles: [reader], match: {common_name: ci-runner}}\n", 1))
	code, out, errOut := runCLI(t, "policy", "explain", "--config", cfg, "--principal", "ci", "--tool", "files.read_text")
	if code != exitOK || !strings.Contains(out, `allow: rule "readers"`) {
		t.Fatalf("code %d, stdout %q, stderr %q; want the readers rule to allow the certificate principal", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "policy", "explain", "--config", cfg, "--principal", "nobody", "--tool", "files.read_text")
	if code != exitUsage || !strings.Contains(errOut, `no API key or auth.mtls principal has id "nobody"`) {
		t.Fatalf("unknown id: code %d, stderr %q", code, errOut)
	}
}
