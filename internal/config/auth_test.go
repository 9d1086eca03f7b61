package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJWTLeewayZeroIsKept(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  time.Duration
	}{
		{"absent means the default", "", DefaultJWTLeeway},
		{"explicit 0 means none", "    leeway: 0s\n", 0},
		{"explicit value", "    leeway: 5s\n", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("f.yaml", []byte(jwtYAML(tt.extra)))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Auth.JWT.Leeway; got == nil || *got != tt.want {
				t.Fatalf("leeway = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := Parse("f.yaml", []byte(jwtYAML("    leeway: -1s\n"))); err == nil ||
		!strings.Contains(err.Error(), "auth.jwt.leeway: must be from 0") {
		t.Fatalf("negative leeway: %v", err)
	}
}

const introspectionYAML = "  introspection:\n" +
	"    url: https://auth.example.com/introspect\n" +
	"    client_id: mcpgate\n" +
	"    client_secret: {secret: \"env:MCPGATE_INTROSPECTION_SECRET\"}\n" +
	"    audience: https://mcp.example.com/mcp\n" +
	"    issuer: https://auth.example.com\n"

func TestIntrospectionValid(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte("auth:\n"+introspectionYAML+jwtUpstreams))
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Auth.Introspection
	if in.CacheTTL != time.Minute || in.CacheSize != 10000 || in.MaxConcurrent != 8 || in.RolesClaim != "roles" ||
		in.Leeway == nil || *in.Leeway != DefaultJWTLeeway || in.ClientSecret.Secret != "env:MCPGATE_INTROSPECTION_SECRET" {
		t.Fatalf("defaults not applied: %+v", in)
	}
	// A relative file: secret is relative to the config's directory.
	dir := t.TempDir()
	path := filepath.Join(dir, "mcpgate.yaml")
	y := "auth:\n" + strings.Replace(introspectionYAML, "env:MCPGATE_INTROSPECTION_SECRET", "file:introspection.secret", 1) + jwtUpstreams
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Auth.Introspection.ClientSecret.Secret, "file:"+filepath.Join(dir, "introspection.secret"); got != want {
		t.Fatalf("client_secret = %q, want %q", got, want)
	}
	// With auth.jwt the issuer may be left out (the JWT issuer is published).
	both := jwtYAML("") + strings.Replace(introspectionYAML, "    issuer: https://auth.example.com\n", "", 1)
	both = strings.Replace(both, jwtUpstreams, "", 1) + jwtUpstreams
	if _, err := Parse("f.yaml", []byte(both)); err != nil {
		t.Fatal(err)
	}
}

func TestAuthMethodProblems(t *testing.T) {
	intro := func(old, new string) string {
		return "auth:\n" + strings.Replace(introspectionYAML, old, new, 1) + jwtUpstreams
	}
	const tlsCA = "listen:\n  tls: {self_signed: true, client_ca: %CA%}\n"
	mtls := func(principals string) string {
		return tlsCA + "auth:\n  mtls:\n    principals:\n" + principals + jwtUpstreams
	}
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"literal secret", intro(`{secret: "env:MCPGATE_INTROSPECTION_SECRET"}`, "hunter2"), "auth.introspection.client_secret: must be a secret reference"},
		{"bad secret ref", intro(`env:MCPGATE_INTROSPECTION_SECRET`, "vault:x"), "auth.introspection.client_secret.secret"},
		{"no client_id", intro("    client_id: mcpgate\n", ""), "auth.introspection.client_id: required"},
		{"http url", intro("https://auth.example.com/introspect", "http://auth.example.com/introspect"), "auth.introspection.url"},
		{"http loopback without opt-in", intro("https://auth.example.com/introspect", "http://127.0.0.1:9/introspect"), "must be https"},
		{"http public host with opt-in", intro("    url: https://auth.example.com/introspect\n",
			"    url: http://auth.example.com/introspect\n    insecure_allow_http_loopback: true\n"), "plain http is allowed only on a loopback host"},
		{"no audience", intro("    audience: https://mcp.example.com/mcp\n", ""), "auth.introspection.audience: required"},
		{"no issuer without jwt", intro("    issuer: https://auth.example.com\n", ""), "auth.introspection.issuer: required without auth.jwt"},
		{"cache_ttl too long", intro("    issuer:", "    cache_ttl: 11m\n    issuer:"), "auth.introspection.cache_ttl: must be positive and at most 10m0s"},
		{"cache_size negative", intro("    issuer:", "    cache_size: -1\n    issuer:"), "auth.introspection.cache_size"},
		{"max_concurrent too many", intro("    issuer:", "    max_concurrent: 100000\n    issuer:"), "auth.introspection.max_concurrent"},
		{"leeway negative", intro("    issuer:", "    leeway: -1s\n    issuer:"), "auth.introspection.leeway"},
		{"misspelt key", intro("    issuer:", "    cache_tll: 1m\n    issuer:"), `auth.introspection.cache_tll: unknown key (did you mean "cache_ttl"?)`},
		{"audience differs from jwt", strings.Replace(jwtYAML(""), jwtUpstreams, "", 1) +
			strings.Replace(introspectionYAML, "mcp.example.com/mcp", "other.example.com/mcp", 1) + jwtUpstreams,
			"auth.introspection.audience: \"https://other.example.com/mcp\" differs from auth.jwt.audience"},
		{"mtls without client_ca", "auth:\n  mtls:\n    principals:\n      - {id: a, match: {common_name: a}}\n" + jwtUpstreams,
			"auth.mtls: requires listen.tls.client_ca"},
		{"mtls no principals", tlsCA + "auth:\n  mtls: {principals: []}\n" + jwtUpstreams, "auth.mtls.principals: required"},
		{"mtls two matchers", mtls("      - {id: a, match: {common_name: a, dns: a.example.com}}\n"),
			"auth.mtls.principals[0].match: set exactly one of"},
		{"mtls no matcher", mtls("      - {id: a, match: {}}\n"), "auth.mtls.principals[0].match: set exactly one of"},
		{"mtls duplicate id", mtls("      - {id: a, match: {common_name: a}}\n      - {id: a, match: {common_name: b}}\n"),
			`auth.mtls.principals[1].id: duplicate id "a"`},
		{"mtls id of an api key", tlsCA + "auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
			"  mtls:\n    principals:\n      - {id: a, match: {common_name: a}}\n" + jwtUpstreams,
			`auth.mtls.principals[0].id: id "a" is also an API key's id`},
		{"mtls duplicate matcher", mtls("      - {id: a, match: {dns: A.example.com}}\n      - {id: b, match: {dns: a.example.com}}\n"),
			`auth.mtls.principals[1].match.dns: "a.example.com" is already mapped to "a"`},
		{"mtls wildcard", mtls("      - {id: a, match: {dns: \"*.example.com\"}}\n"), "must be an exact value"},
		{"mtls bad role", mtls("      - {id: a, roles: [\"a b\"], match: {email: a@example.com}}\n"), "auth.mtls.principals[0].roles[0]"},
		{"mtls unknown matcher", mtls("      - {id: a, match: {serial: \"01\"}}\n"), "auth.mtls.principals[0].match.serial: unknown key"},
		{"required scope offline_access", strings.Replace(jwtYAML(""), "auth:\n", "auth:\n  required_scopes: [mcp, offline_access]\n", 1),
			"auth.required_scopes[1]: offline_access must not be required"},
		{"required scopes without oauth", "auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
			"  required_scopes: [mcp]\n" + jwtUpstreams, "auth.required_scopes: applies to OAuth tokens only"},
		{"required scope not a token", strings.Replace(jwtYAML(""), "auth:\n", "auth:\n  required_scopes: [\"a b\"]\n", 1),
			"auth.required_scopes[0]: \"a b\" is not a scope"},
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not checked here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(strings.ReplaceAll(tt.yaml, "%CA%", ca)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// A valid mTLS mapping alone is a way to authenticate.
	ok := mtls("      - {id: a, roles: [r], match: {common_name: a}}\n      - {id: b, match: {uri: \"spiffe://example.org/b\"}}\n")
	if _, err := Parse("f.yaml", []byte(strings.ReplaceAll(ok, "%CA%", ca))); err != nil {
		t.Fatal(err)
	}
}
