package main

import (
	"context"
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
