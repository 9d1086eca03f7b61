package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validYAML = `
listen:
  address: 127.0.0.1:8443
auth:
  api_keys:
    - {id: ci-bot, sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", roles: [reader]}
upstreams:
  demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse("valid.yaml", []byte(validYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Listen.MaxBodyBytes != DefaultMaxBodyBytes || cfg.Listen.ReadHeaderTimeout != DefaultReadHeaderTimeout {
		t.Errorf("defaults not applied: %+v", cfg.Listen)
	}
	if got := cfg.Auth.APIKeys[0].Roles; len(got) != 1 || got[0] != "reader" {
		t.Errorf("roles = %v", got)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error, in order
	}{
		{
			name: "misspelt key names file, line and path with a suggestion",
			yaml: "listen:\n  address: 127.0.0.1:1\n  alowed_hosts: [a]\n" + tail(),
			want: []string{`f.yaml:3: listen.alowed_hosts: unknown key (did you mean "allowed_hosts"?)`},
		},
		{
			name: "every unknown key at once",
			yaml: "bogus: 1\nlisten:\n  nope: 2\n" + tail(),
			want: []string{"f.yaml:1: bogus: unknown key", "f.yaml:3: listen.nope: unknown key"},
		},
		{
			name: "unknown key inside a list item",
			yaml: "auth:\n  api_keys:\n    - {id: a, sha: x}\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n",
			want: []string{`f.yaml:3: auth.api_keys[0].sha: unknown key (did you mean "sha256"?)`},
		},
		{
			name: "unknown key inside a map value",
			yaml: "auth: {insecure_disable_auth: true}\nupstreams:\n  demo: {builtin: demo, namspace: \"\"}\n",
			want: []string{`upstreams.demo.namspace: unknown key (did you mean "namespace"?)`},
		},
		{
			name: "wrong type",
			yaml: "listen:\n  max_body_bytes: lots\n" + tail(),
			want: []string{"f.yaml: line 2: cannot unmarshal"},
		},
		{
			name: "duplicate key",
			yaml: "listen:\n  address: 127.0.0.1:1\n  address: 127.0.0.1:2\n" + tail(),
			want: []string{`mapping key "address" already defined`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{"f.yaml: config is empty"},
		},
		{
			name: "aliases refused",
			yaml: "auth: &a {insecure_disable_auth: true}\nlisten: *a\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n",
			want: []string{"aliases are not allowed"},
		},
		{
			name: "validation reports every problem with its line",
			yaml: "listen:\n  address: 10.0.0.1:8443\n  allowed_origins: [\"https://x.example/*\"]\nauth:\n  insecure_disable_auth: true\nupstreams:\n  demo: {builtin: nope}\n",
			want: []string{
				"f.yaml:1: listen.allowed_hosts: required on a non-loopback address",
				"f.yaml:3: listen.allowed_origins[0]:",
				"f.yaml:5: auth.insecure_disable_auth: authentication may be disabled only on a loopback",
				`f.yaml:7: upstreams.demo.builtin: unknown built-in "nope"`,
			},
		},
		{
			name: "no authentication configured",
			yaml: "upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n",
			want: []string{"auth: no way to authenticate"},
		},
		{
			name: "key stored in clear instead of its digest",
			yaml: "auth:\n  api_keys:\n    - {id: a, sha256: mgk_secretsecret}\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n",
			want: []string{"f.yaml:3: auth.api_keys[0].sha256: must be 64 lower-case hex digits"},
		},
		{
			name: "duplicate key ids and digests",
			yaml: "auth:\n  api_keys:\n" +
				"    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
				"    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
				"upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n",
			want: []string{`auth.api_keys[1].id: duplicate id "a"`, `auth.api_keys[1].sha256: the same key is also configured for "a"`},
		},
		{
			name: "bind every interface by empty host",
			yaml: "listen: {address: \":8443\", allowed_hosts: [x]}\n" + tail(),
			want: []string{"listen.address: an empty host binds every interface"},
		},
		{
			name: "non-positive limits",
			yaml: "listen: {read_header_timeout: -1s, max_body_bytes: -5}\n" + tail(),
			want: []string{"listen.max_body_bytes: must be positive", "listen.read_header_timeout: must be positive"},
		},
		{
			name: "no upstream",
			yaml: "auth: {insecure_disable_auth: true}\n",
			want: []string{"upstreams: no upstream configured"},
		},
		{
			name: "non-loopback address without TLS",
			yaml: "listen: {address: \"10.0.0.1:8443\", allowed_hosts: [x]}\n" + tail(),
			want: []string{"f.yaml:1: listen.tls: required on a non-loopback address", "listen.insecure_plaintext: true"},
		},
		{
			name: "TLS and insecure_plaintext together",
			yaml: "listen:\n  address: 10.0.0.1:8443\n  allowed_hosts: [x]\n  tls: {self_signed: true}\n  insecure_plaintext: true\n" + tail(),
			want: []string{"f.yaml:5: listen.insecure_plaintext: is set together with listen.tls"},
		},
		{
			name: "empty tls section",
			yaml: "listen:\n  tls: {}\n" + tail(),
			want: []string{"f.yaml:2: listen.tls: set cert and key, or self_signed: true"},
		},
		{
			name: "client_ca alone",
			yaml: "listen:\n  tls: {client_ca: ca.pem}\n" + tail(),
			want: []string{"listen.tls: set cert and key, or self_signed: true"},
		},
		{
			name: "self_signed with files",
			yaml: "listen:\n  tls:\n    self_signed: true\n    cert: c.pem\n    key: k.pem\n" + tail(),
			want: []string{"f.yaml:3: listen.tls.self_signed: is set together with listen.tls.cert/key"},
		},
		{
			name: "cert without key",
			yaml: "listen:\n  tls:\n    cert: c.pem\n" + tail(),
			want: []string{"f.yaml:2: listen.tls.key: required together with listen.tls.cert"},
		},
		{
			name: "unreadable TLS files",
			yaml: "listen:\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\n    client_ca: /\n" + tail(),
			want: []string{"f.yaml:3: listen.tls.cert: cannot read", "f.yaml:4: listen.tls.key: cannot read", "f.yaml:5: listen.tls.client_ca: / is not a regular file"},
		},
		{
			name: "misspelt TLS key",
			yaml: "listen:\n  tls: {self_sigend: true}\n" + tail(),
			want: []string{`listen.tls.self_sigend: unknown key (did you mean "self_signed"?)`},
		},
		{
			name: "two documents",
			yaml: tail() + "---\n" + tail(),
			want: []string{"more than one YAML document"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			got := err.Error()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error does not contain %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// tail is the rest of a valid config, for tests about one section.
func tail() string {
	return "auth: {insecure_disable_auth: true}\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"
}

func TestLoadExamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := Load(p); err != nil {
				t.Errorf("example does not load:\n%v", err)
			}
		})
	}
}

func TestTLSAccepted(t *testing.T) {
	const keyedTail = "auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n" +
		"upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"
	for name, yaml := range map[string]string{
		"self-signed on loopback":              "listen: {tls: {self_signed: true}}\n",
		"self-signed beyond loopback":          "listen: {address: \"10.0.0.1:8443\", allowed_hosts: [x], tls: {self_signed: true}}\n",
		"plaintext beyond loopback, asked for": "listen: {address: \"10.0.0.1:8443\", allowed_hosts: [x], insecure_plaintext: true}\n",
	} {
		if _, err := Parse("f.yaml", []byte(yaml+keyedTail)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestTLSPathsRelativeToConfig: relative paths name files beside the config,
// whatever the working directory.
func TestTLSPathsRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "c.yaml")
	yaml := "listen:\n  tls: {cert: cert.pem, key: key.pem, client_ca: ca.pem}\n" + tail()
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Listen.TLS.Cert; got != filepath.Join(dir, "cert.pem") {
		t.Fatalf("cert = %q, want it beside the config", got)
	}
	if got := cfg.Listen.TLS.ClientCA; got != filepath.Join(dir, "ca.pem") {
		t.Fatalf("client_ca = %q, want it beside the config", got)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(strings.Repeat("#\n", maxConfigBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load = %v, want a size error", err)
	}
}

func TestDefaultIsValidOnceKeyed(t *testing.T) {
	c := Default()
	c.Auth.APIKeys = []APIKey{{ID: "default", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}
	if ps := c.Validate(); len(ps) > 0 {
		t.Fatalf("default config invalid: %v", ps)
	}
	if !IsLoopbackAddress(c.Listen.Address) {
		t.Fatalf("default listens on %s, want loopback", c.Listen.Address)
	}
	if ps := Default().Validate(); len(ps) == 0 {
		t.Fatal("default config without a key validated; it must demand authentication")
	}
}

func TestIsLoopbackAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "127.9.9.9:1": true,
		"0.0.0.0:1": false, ":1": false, "10.0.0.1:1": false, "[::]:1": false, "example.com:1": false, "garbage": false,
	} {
		if got := IsLoopbackAddress(addr); got != want {
			t.Errorf("IsLoopbackAddress(%q) = %v, want %v", addr, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("listen: {address: x}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("auth: {insecure_disable_auth: true}\nupstreams:\n  x: {command: [a], insecure_no_sandbox: true, env: {A: {secret: \"env:B\"}, C: d}}\n" +
		"  y: {url: \"https://h/mcp\", auth: {bearer: {secret: \"file:t\"}}, tls: {ca: c}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil && len(cfg.Validate()) > 0 {
			t.Fatal("Parse accepted a config that does not validate")
		}
	})
}
