package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseUpstreams parses a config whose upstreams section is body (indented
// two spaces, under "upstreams:").
func parseUpstreams(body string) (*Config, error) {
	return Parse("f.yaml", []byte("auth: {insecure_disable_auth: true}\nupstreams:\n"+body))
}

func TestUpstreamProblems(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body string
		key, msg   string // a problem with exactly this key whose message contains msg
	}{
		{"no upstream", "", "upstreams", "no upstream configured"},
		{"bad upstream name", "  a.b: {builtin: demo, insecure_no_sandbox: true}\n",
			"upstreams.a.b", "must be 1-32 characters of letters, digits, _ and -"},
		{"none of builtin, command, url", "  x: {namespace: y}\n",
			"upstreams.x", "set exactly one of builtin, command or url"},
		{"builtin and command", "  x: {builtin: demo, command: [a], insecure_no_sandbox: true}\n",
			"upstreams.x", "set exactly one of builtin, command or url"},
		{"command and url", "  x: {command: [a], url: \"https://h/mcp\", insecure_no_sandbox: true}\n",
			"upstreams.x", "set exactly one of builtin, command or url"},
		{"unknown builtin", "  x: {builtin: nope, insecure_no_sandbox: true}\n",
			"upstreams.x.builtin", `unknown built-in "nope" (known: demo)`},
		{"empty command", "  x: {command: [], insecure_no_sandbox: true}\n",
			"upstreams.x.command", "must not be empty"},
		{"empty program", "  x: {command: [\"\", a], insecure_no_sandbox: true}\n",
			"upstreams.x.command[0]", "the program must not be empty"},
		{"env on a url upstream", "  x: {url: \"https://h/mcp\", env: {A: b}}\n",
			"upstreams.x.env", "applies to stdio upstreams (builtin or command) only"},
		{"bad env name", "  x: {command: [a], insecure_no_sandbox: true, env: {\"9A\": b}}\n",
			"upstreams.x.env.9A", `"9A" is not an environment variable name`},
		{"env name with =", "  x: {command: [a], insecure_no_sandbox: true, env: {\"A=B\": b}}\n",
			"upstreams.x.env.A=B", "is not an environment variable name"},
		{"bad env secret reference", "  x: {command: [a], insecure_no_sandbox: true, env: {A: {secret: \"vault:x\"}}}\n",
			"upstreams.x.env.A.secret", `secret reference "vault:x": unknown kind "vault"`},
		{"bad env secret variable name", "  x: {command: [a], insecure_no_sandbox: true, env: {A: {secret: \"env:1X\"}}}\n",
			"upstreams.x.env.A.secret", `"1X" is not an environment variable name`},
		{"dir on a url upstream", "  x: {url: \"https://h/mcp\", dir: /tmp}\n",
			"upstreams.x.dir", "applies to stdio upstreams (builtin or command) only"},
		{"missing dir", "  x: {command: [a], insecure_no_sandbox: true, dir: /nonexistent/d}\n",
			"upstreams.x.dir", "cannot use"},
		{"dir is a file", "  x: {command: [a], insecure_no_sandbox: true, dir: " + pem + "}\n",
			"upstreams.x.dir", "is not a directory"},
		{"url does not parse", "  x: {url: \"https://h/%zz\"}\n",
			"upstreams.x.url", "not a URL"},
		{"url scheme", "  x: {url: \"ftp://h/mcp\"}\n",
			"upstreams.x.url", "the scheme must be http or https"},
		{"url without host", "  x: {url: \"https:///mcp\"}\n",
			"upstreams.x.url", "has no host"},
		{"url opaque", "  x: {url: \"https:h\"}\n",
			"upstreams.x.url", "has no host"},
		{"url with credentials", "  x: {url: \"https://u:p@h/mcp\"}\n",
			"upstreams.x.url", "credentials do not belong in the url: use auth.bearer"},
		{"http to a remote host", "  x: {url: \"http://mcp.example.com/mcp\"}\n",
			"upstreams.x.url", "set insecure_plaintext: true"},
		{"insecure_plaintext on stdio", "  x: {command: [a], insecure_no_sandbox: true, insecure_plaintext: true}\n",
			"upstreams.x.insecure_plaintext", "applies to url upstreams only"},
		{"auth on stdio", "  x: {command: [a], insecure_no_sandbox: true, auth: {bearer: {secret: \"env:T\"}}}\n",
			"upstreams.x.auth", "applies to url upstreams only"},
		{"auth without bearer", "  x: {url: \"https://h/mcp\", auth: {}}\n",
			"upstreams.x.auth.bearer", "required"},
		{"literal bearer", "  x: {url: \"https://h/mcp\", auth: {bearer: tok123}}\n",
			"upstreams.x.auth.bearer", "must be a secret reference {secret: env:NAME|file:PATH}, not a literal"},
		{"bad bearer reference", "  x: {url: \"https://h/mcp\", auth: {bearer: {secret: \"env:\"}}}\n",
			"upstreams.x.auth.bearer.secret", `secret reference "env:"`},
		{"tls on stdio", "  x: {command: [a], insecure_no_sandbox: true, tls: {ca: " + pem + "}}\n",
			"upstreams.x.tls", "applies to url upstreams only"},
		{"client_cert without key", "  x: {url: \"https://h/mcp\", tls: {client_cert: " + pem + "}}\n",
			"upstreams.x.tls.client_key", "required together with upstreams.x.tls.client_cert"},
		{"client_key without cert", "  x: {url: \"https://h/mcp\", tls: {client_key: " + pem + "}}\n",
			"upstreams.x.tls.client_cert", "required together with upstreams.x.tls.client_key"},
		{"unreadable CA", "  x: {url: \"https://h/mcp\", tls: {ca: /nonexistent/ca.pem}}\n",
			"upstreams.x.tls.ca", "cannot read"},
		{"bad namespace", "  x: {url: \"https://h/mcp\", namespace: \"a.b\"}\n",
			"upstreams.x.namespace", `"a.b" must be empty or 1-32 characters`},
		{"duplicate explicit namespace", "  a: {url: \"https://h/mcp\", namespace: n}\n  b: {url: \"https://i/mcp\", namespace: n}\n",
			"upstreams.b.namespace", `namespace "n" is also that of upstream "a"`},
		{"namespace equal to another upstream's name", "  a: {url: \"https://h/mcp\"}\n  b: {url: \"https://i/mcp\", namespace: a}\n",
			"upstreams.b.namespace", `namespace "a" is also that of upstream "a"`},
		{"bad start", "  x: {url: \"https://h/mcp\", start: lazy}\n",
			"upstreams.x.start", `"lazy" must be boot or on_demand`},
		{"bad instances", "  x: {url: \"https://h/mcp\", instances: many}\n",
			"upstreams.x.instances", `"many" must be shared or per-principal`},
		{"per-principal url", "  x: {url: \"https://h/mcp\", instances: per-principal}\n",
			"upstreams.x.instances", "per-principal applies to stdio upstreams"},
		{"max_instances", "  x: {command: [a], insecure_no_sandbox: true, max_instances: -1}\n",
			"upstreams.x.max_instances", "must be at least 1"},
		{"idle_timeout", "  x: {command: [a], insecure_no_sandbox: true, idle_timeout: -1s}\n",
			"upstreams.x.idle_timeout", "must be positive"},
		{"call_timeout", "  x: {url: \"https://h/mcp\", call_timeout: -1s}\n",
			"upstreams.x.call_timeout", "must be positive"},
		{"sandbox with insecure_no_sandbox", "  x: {command: [a], insecure_no_sandbox: true, sandbox: {pids: 64}}\n",
			"upstreams.x.sandbox", "has no effect with insecure_no_sandbox: true"},
		{"sandbox on a url upstream", "  x: {url: \"https://h/mcp\", sandbox: {pids: 64}}\n",
			"upstreams.x.sandbox", "applies to stdio upstreams"},
		{"sandbox memory unit", "  x: {command: [a], sandbox: {memory: 512MB}}\n",
			"upstreams.x.sandbox.memory", `"512MB" must be a size like 512MiB or 2GiB, or unlimited`},
		{"sandbox memory too small", "  x: {command: [a], sandbox: {memory: 1MiB}}\n",
			"upstreams.x.sandbox.memory", "below 16MiB"},
		{"sandbox pids", "  x: {command: [a], sandbox: {pids: lots}}\n",
			"upstreams.x.sandbox.pids", `"lots" must be a positive number or unlimited`},
		{"sandbox pids too few", "  x: {command: [a], sandbox: {pids: 2}}\n",
			"upstreams.x.sandbox.pids", "below 8"},
		{"sandbox cpu", "  x: {command: [a], sandbox: {cpu: -1}}\n",
			"upstreams.x.sandbox.cpu", "number of cores"},
		{"redact not a regexp", "  x: {command: [a], redact: [\"ghp_[\"]}\n",
			"upstreams.x.redact[0]", "not a regular expression"},
		{"redact matches everything", "  x: {command: [a], redact: [\"a*\"]}\n",
			"upstreams.x.redact[0]", "matches the empty string"},
		{"max_result_bytes", "  x: {command: [a], max_result_bytes: -1}\n",
			"upstreams.x.max_result_bytes", "must be positive"},
		{"tool settings that set nothing", "  x: {command: [a], tools: {read: {}}}\n",
			"upstreams.x.tools.read", "sets nothing"},
		{"protocol_version unknown", "  x: {command: [a], protocol_version: \"2024-11-05\"}\n",
			"upstreams.x.protocol_version", `"2024-11-05" must be 2025-11-25 or 2026-07-28`},
		{"tool limit without burst", "  x: {command: [a], tools: {read: {limit: {rate: 2}}}}\n",
			"upstreams.x.tools.read.limit.burst", "must be from 1"},
		{"upstream concurrent zero", "  x: {command: [a], limits: {concurrent: 0}}\n",
			"upstreams.x.limits.concurrent", "must be from 1"},
		{"tool call_timeout negative", "  x: {command: [a], tools: {read: {call_timeout: -1s}}}\n",
			"upstreams.x.tools.read.call_timeout", "must be positive"},
		{"sandbox insecure_isolation", "  x: {command: [a], sandbox: {insecure_isolation: chroot}}\n",
			"upstreams.x.sandbox.insecure_isolation", `"chroot" must be no-userns or landlock-only`},
		{"sandbox nofile", "  x: {command: [a], sandbox: {nofile: 3}}\n",
			"upstreams.x.sandbox.nofile", "from 16"},
		{"sandbox missing read path", "  x: {command: [a], sandbox: {read: [/nonexistent/r]}}\n",
			"upstreams.x.sandbox.read[0]", "cannot use"},
		{"sandbox grant inside a write grant", "  x: {command: [a], sandbox: {write: [/tmp], read: [/tmp]}}\n",
			"upstreams.x.sandbox.read[0]", "inside the write grant /tmp"},
		{"sandbox network key", "  x: {command: [a], sandbox: {network: {allw: [a:1]}}}\n",
			"upstreams.x.sandbox.network.allw", "unknown key"},
		{"sandbox network entry", "  x: {command: [a], sandbox: {network: {allow: [\"*.example.com:443\"]}}}\n",
			"upstreams.x.sandbox.network.allow[0]", "no wildcards"},
		{"sandbox network port", "  x: {command: [a], sandbox: {network: {allow: [\"example.com\"]}}}\n",
			"upstreams.x.sandbox.network.allow[0]", "must be host:port"},
		{"insecure_no_sandbox on a url upstream", "  x: {url: \"https://h/mcp\", insecure_no_sandbox: true}\n",
			"upstreams.x.insecure_no_sandbox", "applies to stdio upstreams"},
		{"insecure_in_process on a command", "  x: {command: [a], insecure_no_sandbox: true, insecure_in_process: true}\n",
			"upstreams.x.insecure_in_process", "applies to builtin upstreams only"},
		{"insecure_in_process on a url upstream", "  x: {url: \"https://h/mcp\", insecure_in_process: true}\n",
			"upstreams.x.insecure_in_process", "applies to builtin upstreams only"},
		{"sandbox in process", "  x: {builtin: demo, insecure_in_process: true, sandbox: {memory: 1GiB}}\n",
			"upstreams.x.sandbox", "not to a builtin served in process (insecure_in_process)"},
		{"insecure_no_sandbox in process", "  x: {builtin: demo, insecure_in_process: true, insecure_no_sandbox: true}\n",
			"upstreams.x.insecure_no_sandbox", "not to a builtin served in process"},
		{"env in process", "  x: {builtin: demo, insecure_in_process: true, env: {A: b}}\n",
			"upstreams.x.env", "not to a builtin served in process"},
		{"per-principal in process", "  x: {builtin: demo, insecure_in_process: true, instances: per-principal}\n",
			"upstreams.x.instances", "not to a builtin served in process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseUpstreams(tt.body)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Key == tt.key && strings.Contains(p.Message, tt.msg) {
					if p.Line == 0 {
						t.Errorf("problem without a line: %v", p)
					}
					return
				}
			}
			t.Fatalf("no problem %s: ...%s...; got:\n%v", tt.key, tt.msg, err)
		})
	}
}

// TestUpstreamURLProblemsHideCredentials: a url is never repeated in a
// problem once it may hold credentials.
func TestUpstreamURLProblemsHideCredentials(t *testing.T) {
	for _, u := range []string{"ftp://u:hunter2@h/", "https://u:hunter2@h/%zz", "https://u:hunter2@/x", "http://u:hunter2@example.com/"} {
		_, err := parseUpstreams("  x: {url: \"" + u + "\"}\n")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("url %q: %v", u, err)
		}
	}
}

func TestUpstreamValueDecoding(t *testing.T) {
	tests := []struct {
		name, env string
		want      Value
		err       string
	}{
		{"literal", "production", Value{Literal: "production"}, ""},
		{"number kept as written", "0x10", Value{Literal: "0x10"}, ""},
		{"quoted empty", `""`, Value{}, ""},
		{"null", "~", Value{}, ""},
		{"secret", `{secret: "env:TOKEN"}`, Value{Secret: "env:TOKEN"}, ""},
		{"secret block style", "\n        secret: file:/run/token", Value{Secret: "file:/run/token"}, ""},
		{"misspelt secret key", `{secert: "env:TOKEN"}`, Value{},
			`f.yaml:7: upstreams.x.env.TOKEN.secert: unknown key (did you mean "secret"?)`},
		{"extra key", `{secret: "env:TOKEN", also: 1}`, Value{}, `f.yaml:7: upstreams.x.env.TOKEN.also: unknown key`},
		{"empty mapping", `{}`, Value{}, "f.yaml: line 7: want a string or {secret: env:NAME|file:PATH}"},
		{"empty secret", `{secret: ""}`, Value{}, "line 7: secret must be a reference string"},
		{"non-string secret", `{secret: [a]}`, Value{}, "line 7: secret must be a reference string"},
		{"sequence", `[a, b]`, Value{}, "line 7: want a string or {secret: env:NAME|file:PATH}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "  x:\n    command: [a]\n    insecure_no_sandbox: true\n    env:\n      TOKEN: " + tt.env + "\n"
			cfg, err := parseUpstreams(body)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Upstreams["x"].Env["TOKEN"]; got != tt.want {
				t.Fatalf("TOKEN = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUpstreamBearerUnknownKey(t *testing.T) {
	_, err := parseUpstreams("  x:\n    url: https://h/mcp\n    auth:\n      bearer: {secret: \"env:T\", secrets: x}\n")
	if err == nil || !strings.Contains(err.Error(), `f.yaml:6: upstreams.x.auth.bearer.secrets: unknown key (did you mean "secret"?)`) {
		t.Fatalf("Parse = %v", err)
	}
}

func TestUpstreamsAccepted(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "c.pem", "k.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	body := `  demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}
  files:
    command: [npx, -y, "@modelcontextprotocol/server-filesystem", /data]
    env: {NODE_ENV: production, GITHUB_TOKEN: {secret: "env:GITHUB_TOKEN"}, KEY: {secret: "file:key.txt"}, EMPTY: ""}
    dir: work
    instances: per-principal
    max_instances: 4
    idle_timeout: 1m
    start: on_demand
    insecure_no_sandbox: true
  memory: {command: [node, index.js], namespace: "", insecure_no_sandbox: true}
  search:
    url: https://search.example.com/mcp
    auth: {bearer: {secret: "env:SEARCH_TOKEN"}}
    tls: {ca: ca.pem, client_cert: c.pem, client_key: ` + filepath.Join(dir, "k.pem") + `}
    call_timeout: 5s
  local: {url: "http://127.0.0.1:9000/mcp", namespace: loc}
  local6: {url: "http://[::1]:9000/mcp", auth: {bearer: {secret: "file:/run/token"}}}
  localhost: {url: "http://localhost/mcp"}
  plain: {url: "http://mcp.internal/mcp", insecure_plaintext: true}
`
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("auth: {insecure_disable_auth: true}\nupstreams:\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	files := cfg.Upstreams["files"]
	if files.Dir != filepath.Join(dir, "work") {
		t.Errorf("dir = %q, want it beside the config", files.Dir)
	}
	if files.Command[0] != "npx" {
		t.Errorf("command[0] = %q, want it as written", files.Command[0])
	}
	wantEnv := map[string]Value{
		"NODE_ENV":     {Literal: "production"},
		"GITHUB_TOKEN": {Secret: "env:GITHUB_TOKEN"},
		"KEY":          {Secret: "file:" + filepath.Join(dir, "key.txt")},
		"EMPTY":        {},
	}
	if !reflect.DeepEqual(files.Env, wantEnv) {
		t.Errorf("env = %+v, want %+v", files.Env, wantEnv)
	}
	if files.Start != StartOnDemand || files.Instances != InstancesPerPrincipal || files.MaxInstances != 4 ||
		files.IdleTimeout != time.Minute || files.CallTimeout != DefaultCallTimeout {
		t.Errorf("files = %+v", files)
	}
	search := cfg.Upstreams["search"]
	if tls := search.TLS; tls.CA != filepath.Join(dir, "ca.pem") || tls.ClientCert != filepath.Join(dir, "c.pem") ||
		tls.ClientKey != filepath.Join(dir, "k.pem") {
		t.Errorf("tls = %+v", tls)
	}
	if search.Auth.Bearer.Secret != "env:SEARCH_TOKEN" || search.CallTimeout != 5*time.Second {
		t.Errorf("search = %+v", search)
	}
	if got := cfg.Upstreams["local6"].Auth.Bearer.Secret; got != "file:/run/token" {
		t.Errorf("absolute file reference changed: %q", got)
	}
	local := cfg.Upstreams["local"]
	if local.Start != DefaultStart || local.Instances != DefaultInstances || local.MaxInstances != DefaultMaxInstances ||
		local.IdleTimeout != DefaultUpstreamIdleTimeout || local.CallTimeout != DefaultCallTimeout {
		t.Errorf("defaults not applied: %+v", local)
	}
	for name, want := range map[string]string{"demo": "", "memory": "", "files": "files", "local": "loc"} {
		if got := cfg.Upstreams[name].UpstreamNamespace(name); got != want {
			t.Errorf("%s namespace = %q, want %q", name, got, want)
		}
	}
	if !files.IsStdio() || files.IsRemote() || search.IsStdio() || !search.IsRemote() {
		t.Error("IsStdio/IsRemote wrong")
	}
}

func TestValueResolve(t *testing.T) {
	t.Setenv("MCPGATE_CONFIG_TEST_TOKEN", "tok")
	for _, tt := range []struct {
		v    Value
		want string
	}{
		{Value{Literal: "lit"}, "lit"},
		{Value{}, ""},
		{Value{Secret: "env:MCPGATE_CONFIG_TEST_TOKEN"}, "tok"},
	} {
		s, err := tt.v.Resolve()
		if err != nil || s.Reveal() != tt.want {
			t.Errorf("%+v.Resolve() = %q, %v; want %q", tt.v, s.Reveal(), err, tt.want)
		}
	}
	if _, err := (Value{Secret: "env:MCPGATE_CONFIG_TEST_UNSET"}).Resolve(); err == nil {
		t.Error("unset variable resolved")
	}
}

func TestDefaultUpstream(t *testing.T) {
	u, ok := Default().Upstreams["demo"]
	if !ok || u.Builtin != BuiltinDemo || u.Namespace == nil || *u.Namespace != "" || u.InsecureNoSandbox {
		t.Fatalf("default upstream = %+v", u)
	}
	if u.Start != DefaultStart || u.CallTimeout != DefaultCallTimeout {
		t.Fatalf("defaults not applied to the default upstream: %+v", u)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "::ffff:127.0.0.1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "localhost.example.com": false, "[::1]": false, "127.0.0.1:80": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSandboxConfig(t *testing.T) {
	dir, err := os.MkdirTemp("", "mcpgate-config-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "  x:\n    command: [a]\n    sandbox:\n      read: [/usr/share]\n      write: [" + dir + "/data]\n" +
		"      network: {allow: [\"api.example.com:443\", \"[::1]:8080\"]}\n      memory: 512MiB\n      pids: 64\n      cpu: 1.5\n      nofile: 256\n" +
		"  y:\n    command: [a]\n    sandbox: {network: none, memory: unlimited, pids: unlimited}\n  z: {command: [a]}\n"
	cfg, err := parseUpstreams(body)
	if err != nil {
		t.Fatal(err)
	}
	x := cfg.Upstreams["x"].Sandbox
	if x.MemoryBytes() != 512<<20 || x.PidsLimit() != 64 || x.CPU != 1.5 || x.NoFile != 256 ||
		len(x.Network.Allow) != 2 || x.Write[0] != dir+"/data" {
		t.Errorf("sandbox x = %+v", x)
	}
	y := cfg.Upstreams["y"].Sandbox
	if y.MemoryBytes() != -1 || y.PidsLimit() != -1 || len(y.Network.Allow) != 0 {
		t.Errorf("sandbox y = %+v", y)
	}
	if _, err := parseUpstreams("  x: {command: [a], sandbox: {network: all}}\n"); err == nil ||
		!strings.Contains(err.Error(), "line 3: network must be none or {allow: [host:port, ...]}") {
		t.Errorf("network: all = %v", err)
	}
	z := cfg.Upstreams["z"].Sandbox // nil: the defaults
	if z.MemoryBytes() != 1<<30 || z.PidsLimit() != 256 {
		t.Errorf("default limits = %d bytes, %d pids", z.MemoryBytes(), z.PidsLimit())
	}
}
