package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeSelfSignedPrintsFingerprint: with listen.tls.self_signed, serve
// prints the https endpoint and the fingerprint of the certificate it then
// actually serves.
func TestServeSelfSignedPrintsFingerprint(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tls.yaml")
	os.WriteFile(cfg, []byte("listen:\n  address: 127.0.0.1:0\n  tls: {self_signed: true}\n"+
		"auth:\n  api_keys:\n    - {id: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"+
		"upstreams:\n  demo: {builtin: demo, namespace: \"\", insecure_no_sandbox: true}\nadmin: {address: 127.0.0.1:0}\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startServe(t, ctx, "serve", "--config", cfg)
	url, fingerprint := srv.printed(t, "MCP endpoint:"), srv.printed(t, "SHA-256 fingerprint:")
	host, ok := strings.CutPrefix(url, "https://")
	if !ok || !strings.HasSuffix(host, "/mcp") {
		t.Fatalf("endpoint %q is not https://.../mcp", url)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}} // checked by fingerprint below
	c, err := d.Dial("tcp", strings.TrimSuffix(host, "/mcp"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw)
	c.Close()
	if got := strings.ReplaceAll(fmt.Sprintf("% X", sum[:]), " ", ":"); got != fingerprint {
		t.Fatalf("served certificate %s, printed fingerprint %s", got, fingerprint)
	}
	cancel()
	srv.waitExit(t)
}

func TestCheckWarnsAboutPlaintext(t *testing.T) {
	code, out, _ := runCLI(t, "check", "--config", "../../examples/public.yaml")
	if code != exitOK || !strings.Contains(out, "warning:") || !strings.Contains(out, "listen.insecure_plaintext") {
		t.Fatalf("check public.yaml: code %d, out %q; want ok with a warning", code, out)
	}
	// No warning: TLS, auth, audit, the demo sandboxed and pinned. Only the
	// user check runs as can add one: root without run_as.
	code, out, _ = runCLI(t, "check", "--config", "../../examples/tls.yaml")
	if os.Geteuid() == 0 {
		var kept []string
		for line := range strings.Lines(out) {
			if !strings.HasPrefix(line, "warning: ../../examples/tls.yaml: run_as: running as root") {
				kept = append(kept, line)
			}
		}
		if len(kept) == strings.Count(out, "\n") {
			t.Errorf("check as root printed no run_as warning:\n%s", out)
		}
		out = strings.Join(kept, "")
	}
	if code != exitOK || strings.Contains(out, "warning:") || !strings.Contains(out, "upstreams.demo.sandbox: full isolation (") ||
		!strings.Contains(out, "definitions pinned (mode enforce)") {
		t.Fatalf("check tls.yaml: code %d, out %q; want ok without a warning", code, out)
	}
}
