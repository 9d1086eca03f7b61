package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
)

func TestAuditKeygenVerify(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	if code, out, errOut := runCLI(t, "audit", "keygen", "--name", "test-log", "--out", prefix); code != exitOK {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code, _, errOut := runCLI(t, "audit", "keygen", "--out", prefix); code != exitError || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: %d %s", code, errOut)
	}
	skey, _ := os.ReadFile(prefix + ".key")
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(logPath, signer, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev := audit.Event{Time: time.Unix(int64(i), 0), Principal: "p", Method: "tools/call", Decision: audit.Allow}
		if err := l.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "audit", "verify", logPath, "--key", prefix+".pub")
	if code != exitOK || out != "ok: 3 records, 1 checkpoints\n" {
		t.Fatalf("verify: %d %q", code, out)
	}
	b, _ := os.ReadFile(logPath)
	os.WriteFile(logPath, []byte(strings.Replace(string(b), `"principal":"p"`, `"principal":"q"`, 1)), 0o600)
	code, out, _ = runCLI(t, "audit", "verify", "--key", prefix+".pub", logPath)
	if code != exitError || !strings.Contains(out, "FAIL: "+logPath+":1: modified:") {
		t.Fatalf("verify tampered: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "audit", "verify", logPath); code != exitUsage {
		t.Fatalf("verify without --key: %d", code)
	}
	if code, _, _ := runCLI(t, "audit"); code != exitUsage {
		t.Fatalf("audit alone: %d", code)
	}
}

// TestAuditServedLogTamper: a real gateway (serve, the demo upstream, calls
// over HTTP) writes a log that rotates; the log with its result records and
// rotated files verifies, with its checkpoint copy too; and each tamper is
// caught by `audit verify`, naming the file and line.
func TestAuditServedLogTamper(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	if code, out, errOut := runCLI(t, "audit", "keygen", "--name", "served-log", "--out", prefix); code != exitOK {
		t.Fatalf("keygen: %d %s %s", code, out, errOut)
	}
	logDir := filepath.Join(dir, "log")
	os.Mkdir(logDir, 0o700)
	cfg := filepath.Join(dir, "gw.yaml")
	// serve prints no endpoint for a config file: pick a free port first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	os.WriteFile(cfg, []byte("listen: {address: "+addr+"}\n"+
		"auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"+ // the key "test"
		"upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\n"+
		"policy:\n  rules:\n    - {name: all, principals: [a], allow: {tools: [\"*\"]}}\n"+
		"audit:\n  path: log/audit.jsonl\n  signing_key: k.key\n  checkpoint_copy: ckpt\n  rotate: {max_bytes: 2KiB}\n"+
		"admin: {address: 127.0.0.1:0}\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startServe(t, ctx, "serve", "--config", cfg)
	url := "http://" + addr + "/mcp"
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve is not listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	post := func(key, tool, args string) (int, string) {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"` + tool + `","arguments":` + args + `}}`
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", tool)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 12 {
		if code, b := post("test", "echo", fmt.Sprintf(`{"message":"call %d"}`, i)); code != http.StatusOK || !strings.Contains(b, fmt.Sprintf("call %d", i)) {
			t.Fatalf("call %d: %d %s", i, code, b)
		}
	}
	post("test", "test_error_handling", `{}`)
	if code, _ := post("", "echo", `{"message":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated call: %d", code)
	}
	cancel()
	srv.waitExit(t)

	logPath := filepath.Join(logDir, "audit.jsonl")
	pub, ckpt := prefix+".pub", filepath.Join(dir, "ckpt")
	files, _, _, err := audit.Sequence(logPath)
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least two rotations: %v %v", files, err)
	}
	var all []byte
	for _, f := range files {
		all = append(all, readFile(t, f)...)
	}
	if n := strings.Count(string(all), `"stage":"result"`); n != 13 || !strings.Contains(string(all), `"outcome":"tool_error"`) ||
		!strings.Contains(string(all), `"upstream":"demo","name":"echo","decision":"allow","rule":"all"`) {
		t.Fatalf("want 13 result records (12 ok, 1 tool_error) naming upstream and rule; have %d:\n%s", n, all)
	}
	code, out, _ := runCLI(t, "audit", "verify", logPath, "--key", pub, "--checkpoint", ckpt)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("in %d files", len(files))) || !strings.Contains(out, "checkpoint: the log holds the tree of") {
		t.Fatalf("untouched log: %d %q", code, out)
	}
	// One rotated file alone verifies, trusting its header, and says so.
	code, out, _ = runCLI(t, "audit", "verify", "--single", files[1], "--key", pub)
	if code != exitOK || !strings.Contains(out, "trusting the signed continuation header of "+files[1]) {
		t.Fatalf("one rotated file alone: %d %q", code, out)
	}

	lines := func(b []byte) []string { return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") }
	edit := func(path string, f func([]string) []string) {
		out := strings.Join(f(lines(readFile(t, path))), "")
		os.WriteFile(path, []byte(strings.TrimSuffix(out, "\n")+"\n"), 0o600)
	}
	base := func(i int) string { return filepath.Base(files[i]) }
	live := len(files) - 1
	tests := []struct {
		name   string
		tamper func(dir string)
		ckpt   bool
		want   func(dir string) string // the FAIL line's start
	}{
		{"flip a byte", func(d string) {
			edit(filepath.Join(d, base(0)), func(l []string) []string {
				l[1] = strings.Replace(l[1], `"principal":"a"`, `"principal":"b"`, 1)
				return l
			})
		}, false, func(d string) string { return filepath.Join(d, base(0)) + ":2: modified:" }},
		{"delete a record", func(d string) {
			edit(filepath.Join(d, base(1)), func(l []string) []string { return append(l[:2], l[3:]...) })
		}, false, func(d string) string { return filepath.Join(d, base(1)) + ":3: deleted:" }},
		{"swap two records", func(d string) {
			edit(filepath.Join(d, base(0)), func(l []string) []string { l[1], l[2] = l[2], l[1]; return l })
		}, false, func(d string) string { return filepath.Join(d, base(0)) + ":2: reordered:" }},
		{"insert a record", func(d string) {
			edit(filepath.Join(d, base(0)), func(l []string) []string {
				return append(l[:3], append([]string{l[1]}, l[3:]...)...)
			})
		}, false, func(d string) string { return filepath.Join(d, base(0)) + ":4: inserted:" }},
		{"truncate the tail with its checkpoint", func(d string) {
			edit(filepath.Join(d, base(live)), func(l []string) []string { return l[:2] }) // header and one record
		}, true, func(d string) string { return filepath.Join(d, base(live)) + ":3: truncated: the log has" }},
		{"rewrite under another key", func(d string) {
			for _, f := range files {
				os.Remove(filepath.Join(d, filepath.Base(f)))
			}
			skey, _, _ := note.GenerateKey(rand.Reader, "served-log")
			signer, _ := note.NewSigner(skey)
			l, err := audit.Open(filepath.Join(d, base(live)), signer, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for range 30 {
				l.Append(context.Background(), audit.Event{Principal: "a", Method: "tools/call", Decision: audit.Allow})
			}
			l.Close()
		}, false, func(d string) string { return filepath.Join(d, base(live)) + ":31: bad signature:" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			for _, f := range files {
				os.WriteFile(filepath.Join(d, filepath.Base(f)), readFile(t, f), 0o600)
			}
			tt.tamper(d)
			args := []string{"audit", "verify", filepath.Join(d, base(live)), "--key", pub}
			if tt.ckpt {
				args = append(args, "--checkpoint", ckpt)
			}
			code, out, _ := runCLI(t, args...)
			if want := "FAIL: " + tt.want(d); code != exitError || !strings.HasPrefix(out, want) {
				t.Fatalf("verify: %d %q; want it to start with %q", code, out, want)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
