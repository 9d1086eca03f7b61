package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

// TestRunConfig: the flags and the command become one stdio upstream with
// no namespace; --config lends its policy, limits, audit and tracing only; every
// mistake is a usage error naming the flag.
func TestRunConfig(t *testing.T) {
	wd := t.TempDir()
	if err := os.Mkdir(filepath.Join(wd, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	withUpstreams := writeConfig(t, "upstreams:\n  demo: {builtin: demo}\n")
	policyOnly := writeConfig(t, "policy:\n  rules:\n    - {name: only-echo, principals: [local], allow: {tools: [echo]}}\n"+
		"audit: {path: a.jsonl, signing_key: a.key}\nlimits:\n  per_principal: {rate: 5, burst: 5, concurrent: 2}\n"+
		"tracing: {otlp_endpoint: \"https://collector.example.com:4318\", sample_ratio: 0.5}\n")
	env := runEnv{
		wd:        wd,
		lookupEnv: func(n string) (string, bool) { return map[string]string{"TOKEN": "from-env"}[n], n == "TOKEN" },
		defaultAudit: func(name string) (string, string, error) {
			return "/state/audit-run-" + name + ".jsonl", "/state/audit.key", nil
		},
	}
	writable := t.TempDir()
	none := ""
	tests := []struct {
		name    string
		args    []string
		wantErr string                    // a usage error containing this
		check   func(*config.Config) bool // for a config
	}{
		{name: "missing --", args: []string{"--allow-read", wd}, wantErr: "command after --"},
		{name: "command without --", args: []string{"node", "server.js"}, wantErr: `unexpected argument "node"`},
		{name: "nothing after --", args: []string{"--"}, wantErr: "command after -- is missing"},
		{name: "unknown flag", args: []string{"--allow-everything", "--", "x"}, wantErr: "flag provided but not defined"},
		{name: "bad --allow-net", args: []string{"--allow-net", "example.com", "--", "x"}, wantErr: `--allow-net[0]: "example.com" must be host:port`},
		{name: "wildcard --allow-net", args: []string{"--allow-net", "*.example.com:443", "--", "x"}, wantErr: "--allow-net[0]"},
		{name: "missing --allow-read", args: []string{"--allow-read", "nowhere", "--", "x"}, wantErr: "--allow-read[0]: cannot use"},
		{name: "small --memory", args: []string{"--memory", "1MiB", "--", "x"}, wantErr: "--memory:"},
		{name: "bad --name", args: []string{"--name", "../x", "--", "x"}, wantErr: "--name:"},
		{name: "--env of an unset variable", args: []string{"--env", "UNSET", "--", "x"}, wantErr: "UNSET is not set"},
		{name: "--env twice", args: []string{"--env", "A=1", "--env", "A=2", "--", "x"}, wantErr: "--env A is given twice"},
		{name: "bad --env name", args: []string{"--env", "1A=x", "--", "x"}, wantErr: "--env 1A:"},
		{name: "sandbox flags with --insecure-no-sandbox", args: []string{"--insecure-no-sandbox", "--allow-read", wd, "--", "x"}, wantErr: "--insecure-no-sandbox:"},
		{name: "--config with upstreams", args: []string{"--config", withUpstreams, "--", "x"}, wantErr: "remove upstreams from " + withUpstreams},
		{name: "--config missing", args: []string{"--config", filepath.Join(wd, "missing.yaml"), "--", "x"}, wantErr: "open config"},
		{
			name: "defaults",
			args: []string{"--", "/usr/bin/node", "server.js", "--flag-of-the-server"},
			check: func(c *config.Config) bool {
				u, ok := c.Upstreams["run"]
				r := c.Policy.Rules
				return ok && len(c.Upstreams) == 1 &&
					reflect.DeepEqual(u.Command, []string{"/usr/bin/node", "server.js", "--flag-of-the-server"}) &&
					u.Namespace != nil && *u.Namespace == "" && u.Sandbox == nil && u.Env == nil && !u.InsecureNoSandbox &&
					len(r) == 1 && reflect.DeepEqual(r[0].Principals, []string{"*"}) && reflect.DeepEqual(r[0].Allow.Tools, []string{"*"}) &&
					c.Audit.Path == "/state/audit-run-run.jsonl" && c.Audit.SigningKey == "/state/audit.key" &&
					c.Limits.PerPrincipal.Rate == config.DefaultPrincipalRate
			},
		},
		{
			name: "every flag",
			args: []string{"--name", "notes", "--allow-read", "notes", "--allow-read", "/usr/share", "--allow-write", writable,
				"--allow-net", "api.example.com:443", "--memory", "512MiB", "--pids", "64", "--cpu", "1.5",
				"--env", "A=1", "--env", "EMPTY=", "--env", "TOKEN", "--env", "EQ=a=b", "--", "srv", "--", "x"},
			check: func(c *config.Config) bool {
				u := c.Upstreams["notes"]
				s := u.Sandbox
				return s != nil && reflect.DeepEqual(s.Read, []string{filepath.Join(wd, "notes"), "/usr/share"}) &&
					reflect.DeepEqual(s.Write, []string{writable}) && reflect.DeepEqual(s.Network.Allow, []string{"api.example.com:443"}) &&
					s.Memory == "512MiB" && s.Pids == "64" && s.CPU == 1.5 &&
					reflect.DeepEqual(u.Env, map[string]config.Value{"A": {Literal: "1"}, "EMPTY": {}, "TOKEN": {Literal: "from-env"}, "EQ": {Literal: "a=b"}}) &&
					reflect.DeepEqual(u.Command, []string{"srv", "--", "x"}) && c.Audit.Path == "/state/audit-run-notes.jsonl"
			},
		},
		{
			name: "--insecure-no-sandbox",
			args: []string{"--insecure-no-sandbox", "--", "x"},
			check: func(c *config.Config) bool {
				return c.Upstreams["run"].InsecureNoSandbox && c.Upstreams["run"].Sandbox == nil
			},
		},
		{
			name: "--config lends policy, limits, audit and tracing",
			args: []string{"--config", policyOnly, "--", "x"},
			check: func(c *config.Config) bool {
				dir := filepath.Dir(policyOnly)
				return c.Source == policyOnly && len(c.Policy.Rules) == 1 && c.Policy.Rules[0].Name == "only-echo" &&
					c.Audit.Path == filepath.Join(dir, "a.jsonl") && c.Audit.SigningKey == filepath.Join(dir, "a.key") &&
					c.Limits.PerPrincipal.Concurrent == 2 && len(c.Upstreams) == 1 && *c.Upstreams["run"].Namespace == none &&
					c.Tracing.OTLPEndpoint == "https://collector.example.com:4318" && c.Tracing.Ratio() == 0.5
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, command, err := parseRunArgs(tt.args, io.Discard)
			var cfg *config.Config
			if err == nil {
				cfg, err = runConfig(f, command, env)
			}
			if tt.wantErr != "" {
				var ue usageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want one containing %q", err, tt.wantErr)
				}
				if !errors.As(err, &ue) && !strings.Contains(err.Error(), "open config") {
					t.Fatalf("error %v is not a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config not as expected: %+v\nupstreams: %+v", cfg, cfg.Upstreams)
			}
		})
	}
	// Through run: the exit code of a usage error is 2.
	if code, _, errOut := runCLI(t, "run", "--allow-net", "nope", "--", "x"); code != exitUsage || !strings.Contains(errOut, "--allow-net[0]") {
		t.Fatalf("run with a bad flag: code %d, %q; want %d naming the flag", code, errOut, exitUsage)
	}
}

// TestRunServesOverStdio runs `mcpgate run -- <this binary> demo` in this
// process over pipes: a go-sdk client lists and calls tools through it, the
// policy and audit log of --config apply to the principal "local", a call
// that violates the tool's schema gets -32602 naming the argument, and run
// exits 0 when the client closes its stdin.
func TestRunServesOverStdio(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "audit", "keygen", "--name", "run-test", "--out", filepath.Join(dir, "k")); code != exitOK {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	cfgPath := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(cfgPath, []byte(`policy:
  rules:
    - {name: local-tools, principals: [local], allow: {tools: [echo, test_simple_text]}}
    - {name: no-text, principals: ["*"], deny: {tools: [test_simple_text]}}
audit: {path: audit.jsonl, signing_key: k.key}
`), 0o600); err != nil {
		t.Fatal(err)
	}

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr syncBuilder
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"run", "--config", cfgPath, "--name", "demo", "--", self, "demo"}, inR, outW, &stderr)
		outW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "runcmd-test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr:\n%s", err, stderr.String())
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if !reflect.DeepEqual(names, []string{"echo"}) {
		t.Fatalf("tools/list: %v; want [echo]: the server's own name, filtered by the policy", names)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through run"}})
	if err != nil || res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "through run" {
		t.Fatalf("echo: %+v, %v", res, err)
	}
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": 42}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(rpcErr.Message, "/properties/message") {
		t.Fatalf("schema-violating call: %v; want -32602 naming message", err)
	}
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text", Arguments: map[string]any{}})
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("denied tool: %v; want -32602 unknown tool", err)
	}
	if err := cs.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("run exited %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not exit after the client closed stdin; stderr:\n%s", stderr.String())
	}

	logPath := filepath.Join(dir, "audit.jsonl")
	if code, out, errOut := runCLI(t, "audit", "verify", logPath, "--key", filepath.Join(dir, "k.pub")); code != exitOK || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("audit verify: code %d: %s %s", code, out, errOut)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var events []audit.Event
	for line := range strings.Lines(string(b)) {
		var rec struct {
			Type  string      `json:"type"`
			Event audit.Event `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if rec.Type == "event" {
			events = append(events, rec.Event)
		}
	}
	for _, want := range []struct {
		what string
		ok   func(audit.Event) bool
	}{
		{"echo's write-ahead allow", func(e audit.Event) bool {
			return e.Stage == audit.StageRequest && e.Principal == "local" && e.AuthMethod == "local" && e.Era == "2026-07-28" &&
				e.Method == "tools/call" && e.Name == "echo" && e.Decision == audit.Allow
		}},
		{"echo's result", func(e audit.Event) bool {
			return e.Stage == audit.StageResult && e.Name == "echo" && e.Upstream == "demo" && e.Outcome == audit.OutcomeOK
		}},
		{"the schema denial", func(e audit.Event) bool {
			return e.Stage == audit.StagePolicy && e.Principal == "local" && e.Name == "echo" && e.Decision == audit.Deny &&
				e.Rule == "local-tools" && strings.HasPrefix(e.Reason, "arguments do not match")
		}},
		{"the policy denial", func(e audit.Event) bool {
			return e.Stage == audit.StagePolicy && e.Principal == "local" && e.Name == "test_simple_text" &&
				e.Decision == audit.Deny && e.Rule == "no-text"
		}},
	} {
		if !slices.ContainsFunc(events, want.ok) {
			t.Errorf("audit log lacks %s:\n%s", want.what, b)
		}
	}
	if s := stderr.String(); !strings.Contains(s, "serving over stdio") {
		t.Errorf("stderr lacks the start log:\n%s", s)
	}
}

// TestRunRefusesASecondWriterOfItsAuditLog: two runs with the same --name
// would write one hash-chained log; the second is refused, naming the fix.
func TestRunRefusesASecondWriterOfItsAuditLog(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	var stderr syncBuilder
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"run", "--", self, "demo"}, inR, io.Discard, &stderr)
	}()
	defer func() {
		inW.Close()
		<-done
	}()
	// The first run holds its log once it has started serving.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "serving over stdio") {
		if time.Now().After(deadline) {
			t.Fatalf("the first run did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, errOut := runCLI(t, "run", "--", self, "demo")
	if code != exitError || !strings.Contains(errOut, "in use by another mcpgate") || !strings.Contains(errOut, "--name") {
		t.Fatalf("second run on the same log: code %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "mcpgate", "audit-run-run.jsonl")); err != nil {
		t.Fatalf("the default log of run is not in the state directory: %v", err)
	}
}

// syncBuilder is a strings.Builder safe for a writer and a reader in two
// goroutines.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
