package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/pin"
	"github.com/mcpgate/mcpgate/internal/sandbox"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	code, out, _ := runCLI(t, "check", "--config", "../../examples/minimal.yaml")
	if code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("check minimal.yaml: code %d, out %q", code, out)
	}
	code, out, _ = runCLI(t, "check", "--config", "../../examples/conformance.yaml")
	if code != exitOK || !strings.Contains(out, "warning:") || !strings.Contains(out, "auth.insecure_disable_auth") ||
		!strings.Contains(out, "upstreams.demo.sandbox: full isolation (") {
		t.Fatalf("check conformance.yaml: code %d, out %q; want ok with a warning", code, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("listen:\n  adress: 1.2.3.4:1\nauth: {}\nupstreams:\n  demo: {builtin: demo}\n"), 0o600)
	code, out, errOut := runCLI(t, "check", "--config", bad)
	if code != exitError {
		t.Fatalf("check bad.yaml: code %d, want %d", code, exitError)
	}
	if !strings.Contains(out, bad+`:2: listen.adress: unknown key (did you mean "address"?)`) || !strings.Contains(errOut, "1 error") {
		t.Fatalf("check bad.yaml output:\n%s\n%s", out, errOut)
	}

	jwtCfg := filepath.Join(t.TempDir(), "jwt.yaml")
	os.WriteFile(jwtCfg, []byte("auth:\n  jwt:\n    issuer: http://127.0.0.1:9/\n    audience: https://mcp.example.com/mcp\n"+
		"    jwks_url: http://127.0.0.1:9/jwks\n    insecure_allow_http_loopback_issuer: true\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"), 0o600)
	code, out, errOut = runCLI(t, "check", "--config", jwtCfg)
	if code != exitOK || !strings.Contains(out, "warning: "+jwtCfg+": auth.jwt.insecure_allow_http_loopback_issuer") {
		t.Fatalf("check jwt.yaml: code %d: %s %s; want ok with a warning", code, out, errOut)
	}

	inProcess := filepath.Join(t.TempDir(), "inprocess.yaml")
	os.WriteFile(inProcess, []byte("auth: {insecure_disable_auth: true}\nupstreams:\n  demo: {builtin: demo, insecure_in_process: true}\n"), 0o600)
	code, out, errOut = runCLI(t, "check", "--config", inProcess)
	if code != exitOK || !strings.Contains(out, "warning: "+inProcess+": upstreams.demo.insecure_in_process: this upstream runs inside the gateway's own process") {
		t.Fatalf("check inprocess.yaml: code %d: %s %s; want ok with a warning", code, out, errOut)
	}

	if code, _, _ := runCLI(t, "check"); code != exitUsage {
		t.Fatalf("check without --config: code %d, want %d", code, exitUsage)
	}
	if code, _, errOut := runCLI(t, "check", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != exitError || !strings.Contains(errOut, "open config") {
		t.Fatalf("check missing file: code %d, %q", code, errOut)
	}
}

func TestKeysNew(t *testing.T) {
	code, out, _ := runCLI(t, "keys", "new", "--id", "ci-bot")
	if code != exitOK {
		t.Fatalf("code %d", code)
	}
	key := regexp.MustCompile(`mgk_[A-Za-z0-9_-]{43}`).FindString(out)
	line := regexp.MustCompile(`- \{id: ci-bot, sha256: "[0-9a-f]{64}", roles: \[\]\}`).FindString(out)
	if key == "" || line == "" {
		t.Fatalf("output lacks a key or a config line:\n%s", out)
	}
	// The printed line must be accepted by mcpgate as it stands.
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("auth:\n  api_keys:\n    "+line+"\nupstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"), 0o600)
	if code, out, errOut := runCLI(t, "check", "--config", cfg); code != exitOK {
		t.Fatalf("config with the printed line: %s %s", out, errOut)
	}
	if code, _, _ := runCLI(t, "keys", "new", "--id", "bad id"); code != exitUsage {
		t.Fatalf("bad --id: code %d, want usage error", code)
	}
	if code, _, _ := runCLI(t, "keys"); code != exitUsage {
		t.Fatalf("keys without new: code %d, want usage error", code)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCLI(t); code != exitUsage || !strings.Contains(errOut, "usage") {
		t.Fatalf("no args: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, out, _ := runCLI(t, "version"); code != exitOK || !strings.HasPrefix(out, "mcpgate ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "serve", "--no-such-flag"); code != exitUsage {
		t.Fatalf("bad flag: code %d", code)
	}
}

// served is `mcpgate serve` running in this process: what it printed on
// stdout, line by line as "Label: value", and its exit code when it stops.
type served struct {
	lines  chan string
	seen   map[string]string
	done   chan int
	stderr *strings.Builder
}

func startServe(t *testing.T, ctx context.Context, args ...string) *served {
	t.Helper()
	pr, pw := io.Pipe()
	// serve prints a few dozen lines at most; the buffer keeps its writes
	// from ever blocking on a test that stopped reading.
	s := &served{lines: make(chan string, 256), seen: map[string]string{}, done: make(chan int, 1), stderr: &strings.Builder{}}
	go func() {
		s.done <- run(ctx, args, strings.NewReader(""), pw, s.stderr)
		pw.Close()
	}()
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.lines <- strings.TrimSpace(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	return s
}

// printed waits for the line starting with label and returns the rest of it.
func (s *served) printed(t *testing.T, label string) string {
	t.Helper()
	if v, ok := s.seen[label]; ok {
		return v
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("serve did not print %q; stderr:\n%s", label, s.stderr.String())
			}
			if l, v, ok := strings.Cut(line, ":"); ok {
				s.seen[l+":"] = strings.TrimSpace(v)
			}
			if v, ok := s.seen[label]; ok {
				return v
			}
		case <-timeout:
			t.Fatalf("serve did not print %q within 30s; stderr:\n%s", label, s.stderr.String())
		}
	}
}

// waitExit waits for serve to return after its context was cancelled; it
// must exit cleanly.
func (s *served) waitExit(t *testing.T) {
	t.Helper()
	select {
	case code := <-s.done:
		if code != exitOK {
			t.Fatalf("serve exited %d; stderr:\n%s", code, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}

// TestServeEmbeddedDefault is the README's first command: with no config it
// serves the demo server behind a key generated for the run, printed once.
func TestServeEmbeddedDefault(t *testing.T) {
	t.Chdir(t.TempDir()) // no ./mcpgate.yaml here
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startServe(t, ctx, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	url, key := srv.printed(t, "MCP endpoint:"), srv.printed(t, "API key:")
	stderr := srv.stderr
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/mcp") {
		t.Fatalf("endpoint %q is not loopback /mcp", url)
	}
	call := func(k string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/list")
		if k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(key); got != http.StatusOK {
		t.Fatalf("call with the printed key: status %d", got)
	}
	if got := call(""); got != http.StatusUnauthorized {
		t.Fatalf("call without a key: status %d, want 401", got)
	}
	cancel()
	srv.waitExit(t)
	if strings.Contains(stderr.String(), key) {
		t.Fatal("the generated key appeared in the log")
	}

	// Both calls, the allowed one and the refused one, are in the audit log,
	// which verifies against the key pair made on first use.
	logPath := filepath.Join(state, "mcpgate", "audit.jsonl")
	code, out, errOut := runCLI(t, "audit", "verify", logPath, "--key", filepath.Join(state, "mcpgate", "audit.pub"))
	if code != exitOK || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("audit verify: code %d: %s %s", code, out, errOut)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"method":"tools/list","decision":"allow"`, `"decision":"deny","reason":"unauthorized: no credentials`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), key) {
		t.Fatal("the API key appeared in the audit log")
	}
}

// TestCheckSandbox: check reports how each stdio upstream is isolated, and
// fails on a write grant the sandbox's uid could not write.
func TestCheckSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a root gateway maps sandboxes to their own uid, whose grants check verifies")
	}
	if err := sandbox.Probe().FullIsolation(); err != nil {
		t.Skipf("this host cannot sandbox: %v", err)
	}
	dir, err := os.MkdirTemp("", "mcpgate-check-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("auth: {api_keys: [{id: a, sha256: \""+strings.Repeat("ab", 32)+"\"}]}\npolicy: {rules: []}\nupstreams:\n  files: {command: [/bin/cat], sandbox: {write: ["+dir+"], memory: 256MiB}}\n"), 0o600)
	code, out, _ := runCLI(t, "check", "--config", cfg)
	if code != exitError || !strings.Contains(out, "error: "+cfg+": upstreams.files.sandbox: build command: write "+dir+": owned by uid 0, but the sandbox writes as uid") {
		t.Fatalf("check with a root-owned write grant: code %d, out %q", code, out)
	}
	os.Chmod(dir, 0o777)
	code, out, _ = runCLI(t, "check", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "upstreams.files.sandbox: full isolation (") || !strings.Contains(out, "memory 256MiB, pids 256; network none") {
		t.Fatalf("check with a writable grant: code %d, out %q", code, out)
	}
}

// TestExampleLockfileMatchesTheDemo: examples/mcpgate.lock pins exactly
// what the built-in demo serves, so the examples run in enforce mode. A
// change to the demo's tools fails here until the lockfile is re-pinned
// (go run ./cmd/mcpgate pin --config examples/tls.yaml), as it should.
func TestExampleLockfileMatchesTheDemo(t *testing.T) {
	if err := sandbox.Probe().FullIsolation(); err != nil {
		t.Skipf("the demo runs sandboxed and this host cannot sandbox: %v", err)
	}
	cfg, err := config.Load("../../examples/tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.ToolIntegrity.Lockfile)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := pin.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := gateway.CollectDefinitions(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if v := lock.Check(d); v.Status != pin.Pinned {
			t.Errorf("%s %s is %s in examples/mcpgate.lock: %s (re-pin: go run ./cmd/mcpgate pin --config examples/tls.yaml)", d.Kind, d.Name, v.Status, v.Diff)
		}
	}
	if missing := lock.Missing("demo", defs); len(missing) > 0 {
		t.Errorf("examples/mcpgate.lock pins definitions the demo no longer serves: %v", missing)
	}
}

// TestPin: mcpgate pin starts the config's upstreams (the real demo, in its
// sandbox), writes the lockfile beside the config, reports nothing new the
// second time, and check then sees the config enforcing it.
func TestPin(t *testing.T) {
	if err := sandbox.Probe().FullIsolation(); err != nil {
		t.Skipf("the demo runs sandboxed and this host cannot sandbox: %v", err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mcpgate.yaml")
	os.WriteFile(cfgPath, []byte("auth: {api_keys: [{id: a, sha256: \""+strings.Repeat("ab", 32)+"\"}]}\n"+
		"policy: {rules: [{name: all, principals: [a], allow: {tools: [\"*\"]}}]}\n"+
		"upstreams:\n  demo: {builtin: demo, start: on_demand}\n"), 0o600)
	code, out, errOut := runCLI(t, "pin", "--config", cfgPath)
	if code != exitOK || !regexp.MustCompile(`pinned \d+ definitions of 1 upstreams to .*mcpgate.lock \(\d+ new, 0 changed, 0 removed, 0 findings\)`).MatchString(out) ||
		!strings.Contains(out, "new:     demo tool echo") {
		t.Fatalf("first pin: code %d\n%s%s", code, out, errOut)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "mcpgate.lock"))
	if err != nil || !strings.Contains(string(lock), `"name": "echo"`) {
		t.Fatalf("lockfile: %v\n%.300s", err, lock)
	}
	code, out, errOut = runCLI(t, "pin", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "(0 new, 0 changed, 0 removed, 0 findings)") {
		t.Fatalf("second pin: code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "check", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "definitions pinned (mode enforce)") {
		t.Fatalf("check after pin: code %d\n%s", code, out)
	}
	// A lockfile someone edited by hand no longer parses: check says so.
	os.WriteFile(filepath.Join(dir, "mcpgate.lock"), []byte(strings.Replace(string(lock), "Returns the given message unchanged", "Returns the given message, and your keys,", 1)), 0o644)
	code, out, _ = runCLI(t, "check", "--config", cfgPath)
	if code != exitError || !strings.Contains(out, "error: "+cfgPath+": tool_integrity.lockfile:") {
		t.Fatalf("check with a tampered lockfile: code %d\n%s", code, out)
	}
}
