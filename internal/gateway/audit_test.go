package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

func TestAuditRecordsEveryDecision(t *testing.T) {
	keyPath, logPath, vkey := auditFiles(t)
	tg := newTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
	})
	tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"audited"}`), modernHeaders("tools/call", "echo"))
	tg.post(t, "", modernBody(2, "tools/list", ""), modernHeaders("tools/list", ""))
	tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"x"}`, modernHeaders("tools/list", ""))
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	report, err := audit.Verify(bytes.NewReader(b), verifier)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	if report.Records != 3 || report.Unsigned() != 0 {
		t.Fatalf("report %+v, want 3 records, all under a signed checkpoint", report)
	}
	for _, want := range []string{
		`"principal":"alice","auth_method":"api_key","era":"2026-07-28","method":"tools/call","name":"echo","decision":"allow"`,
		`"decision":"deny","reason":"unauthorized: no credentials`,
		`"principal":"alice","auth_method":"api_key","era":"2026-07-28","method":"http:POST","decision":"deny","reason":"invalid JSON-RPC message: duplicate key`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
}

// auditFiles makes a fresh audit signing key (0600) in a temporary
// directory and names a log file beside it; vkey verifies the log.
func auditFiles(t *testing.T) (keyPath, logPath, vkey string) {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test-audit")
	if err != nil {
		t.Fatal(err)
	}
	keyPath, logPath = filepath.Join(dir, "audit.key"), filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyPath, logPath, vkey
}

type failingAuditor struct{}

func (failingAuditor) Append(context.Context, audit.Event) error {
	return audit.ErrUnavailable
}

// TestUnwritableAuditRefusesCalls: when a record cannot be written, the call
// is refused with 503 and never reaches the server.
func TestUnwritableAuditRefusesCalls(t *testing.T) {
	tg := newTestGateway(t, nil)
	tg.front.audit = failingAuditor{}
	resp, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"x"}`), modernHeaders("tools/call", "echo"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "audit log cannot be written") {
		t.Fatalf("status %d: %s; want 503 naming the audit log", resp.StatusCode, b)
	}
	if got := tg.reachedMethods(); len(got) != 0 {
		t.Fatalf("an unaudited call reached the server: %v", got)
	}
}
