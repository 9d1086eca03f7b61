package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const jwtUpstreams = "upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"

func jwtYAML(extra string) string {
	return "auth:\n  jwt:\n" +
		"    issuer: https://auth.example.com\n" +
		"    audience: https://mcp.example.com/mcp\n" +
		"    jwks_url: https://auth.example.com/.well-known/jwks.json\n" + extra + jwtUpstreams
}

func TestJWTValid(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(jwtYAML("    scopes_supported: [tools.read, tools.call]\n")))
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.Auth.JWT
	if !slices.Equal(j.Algorithms, DefaultJWTAlgorithms) || j.RolesClaim != "roles" ||
		j.Leeway == nil || *j.Leeway != 30*time.Second || j.JWKSRefresh != 5*time.Minute || j.RequireTypATJWT {
		t.Fatalf("defaults not applied: %+v", j)
	}
	// JWT alone is a way to authenticate; both together are fine too.
	both := "auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
		strings.TrimPrefix(jwtYAML(""), "auth:\n")
	if _, err := Parse("f.yaml", []byte(both)); err != nil {
		t.Fatal(err)
	}
	loop := "auth:\n  jwt:\n    issuer: http://127.0.0.1:9000\n    audience: http://localhost:8443/mcp\n" +
		"    jwks_url: http://127.0.0.1:9000/jwks\n    insecure_allow_http_loopback_issuer: true\n" + jwtUpstreams
	if _, err := Parse("f.yaml", []byte(loop)); err != nil {
		t.Fatal(err)
	}
}

func TestJWTProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"empty jwt section", "auth:\n  jwt: {}\n" + jwtUpstreams, "auth.jwt.issuer: required"},
		{"misspelt key", jwtYAML("    jwks_uri: x\n"), `auth.jwt.jwks_uri: unknown key (did you mean "jwks_url"?)`},
		{"none", jwtYAML("    algorithms: [RS256, none]\n"), `auth.jwt.algorithms[1]: "none" is never accepted`},
		{"HS256", jwtYAML("    algorithms: [HS256]\n"), `auth.jwt.algorithms[0]: "HS256" is an HMAC algorithm`},
		{"unknown alg", jwtYAML("    algorithms: [RS1]\n"), `unknown algorithm "RS1"`},
		{"duplicate alg", jwtYAML("    algorithms: [ES256, ES256]\n"), `duplicate algorithm "ES256"`},
		{"leeway too large", jwtYAML("    leeway: 6m\n"), "auth.jwt.leeway: must be from 0 to 5m0s"},
		{"refresh too short", jwtYAML("    jwks_refresh: 1s\n"), "auth.jwt.jwks_refresh: must be from 30s"},
		{"http issuer", strings.Replace(jwtYAML(""), "issuer: https://", "issuer: http://", 1), "auth.jwt.issuer: \"http://auth.example.com\" must be https"},
		{"http jwks on a public host even with opt-in",
			strings.Replace(jwtYAML("    insecure_allow_http_loopback_issuer: true\n"), "jwks_url: https://", "jwks_url: http://", 1),
			"plain http is allowed only on a loopback host"},
		{"audience with fragment", strings.Replace(jwtYAML(""), "/mcp\n", "/mcp#x\n", 1), "auth.jwt.audience"},
		{"offline_access advertised", jwtYAML("    scopes_supported: [offline_access]\n"), "offline_access must not be advertised"},
		{"bad scope", jwtYAML("    scopes_supported: [\"a b\"]\n"), "is not a scope"},
		{"with insecure_disable_auth", strings.Replace(jwtYAML(""), "auth:\n", "auth:\n  insecure_disable_auth: true\n", 1),
			"auth.insecure_disable_auth: is set together with auth.jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
