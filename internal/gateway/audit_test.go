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

// TestAuditRecordsEveryDecision drives real calls through the gateway in
// both eras and checks the records: every allowed request has its
// write-ahead record and, sharing its call id, a result record carrying what
// only the policy middleware knows (upstream, rule, a tool's isError) and
// what only the response shows (status, bytes written, latency); refusals
// have one record.
func TestAuditRecordsEveryDecision(t *testing.T) {
	keyPath, logPath, vkey := auditFiles(t)
	tg := newTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
	})
	_, echoBody := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"audited"}`), modernHeaders("tools/call", "echo"))
	tg.post(t, tg.keyA, modernBody(2, "tools/call", `"name":"test_error_handling","arguments":{}`), modernHeaders("tools/call", "test_error_handling"))
	tg.post(t, "", modernBody(3, "tools/list", ""), modernHeaders("tools/list", ""))
	tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":4,"method":"tools/list","method":"x"}`, modernHeaders("tools/list", ""))
	// The legacy era: the SDK serves a session's requests on the session's
	// context, not the request's; the call must still be linked.
	sid := legacyInit(t, tg, tg.keyA)
	_, legacyBody := tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"legacy"}}}`, func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
		r.Header.Set(callHeader, "forged") // replaced by the front
	})
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
	if err != nil || report.Unsigned() != 0 {
		t.Fatalf("audit log does not verify, or not all signed: %+v %v", report, err)
	}
	for _, want := range []string{
		`"stage":"request","principal":"alice","auth_method":"api_key","era":"2026-07-28","method":"tools/call","name":"echo","decision":"allow"`,
		`"stage":"request","principal":"","era":"2026-07-28","method":"http:POST","decision":"deny","reason":"unauthorized: no credentials`,
		`"stage":"request","principal":"alice","auth_method":"api_key","era":"2026-07-28","method":"http:POST","decision":"deny","reason":"invalid JSON-RPC message: duplicate key`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}

	requests, results := map[string]audit.Event{}, map[string]audit.Event{}
	for _, ev := range auditEvents(t, tg, logPath) {
		if ev.Call == "" || len(ev.Call) != 32 {
			t.Fatalf("record without a 128-bit call id: %+v", ev)
		}
		switch ev.Stage {
		case audit.StageRequest:
			requests[ev.Call] = ev
		case audit.StageResult:
			if _, ok := requests[ev.Call]; !ok {
				t.Fatalf("result record before (or without) its request record: %+v", ev)
			}
			results[ev.Call] = ev
		}
	}
	byName := map[string]audit.Event{}
	for call, req := range requests {
		res, ok := results[call]
		if req.Decision == audit.Deny {
			if ok {
				t.Errorf("a refused request has a result record: %+v", res)
			}
			continue
		}
		if !ok {
			t.Fatalf("allowed request %s %s has no result record", req.Method, req.Name)
		}
		if req.Outcome != "" || req.BytesOut != 0 || res.Time != req.Time || res.Principal != req.Principal || res.BytesIn != req.BytesIn {
			t.Errorf("request %+v and result %+v disagree", req, res)
		}
		byName[res.Method+" "+res.Name+" "+res.Era] = res
	}

	echo := byName["tools/call echo 2026-07-28"]
	if echo.Outcome != audit.OutcomeOK || echo.Upstream != "demo" || echo.Rule == "" || echo.HTTPStatus != http.StatusOK ||
		echo.BytesOut != int64(len(echoBody)) || echo.LatencyMS < 0 || echo.ArgsSHA256 != audit.ArgsDigest([]byte(`{"message":"audited"}`)) {
		t.Errorf("modern echo result = %+v; want ok, upstream demo, a rule, 200, %d bytes out, the arguments' digest", echo, len(echoBody))
	}
	if te := byName["tools/call test_error_handling 2026-07-28"]; te.Outcome != audit.OutcomeToolError || te.Upstream != "demo" {
		t.Errorf("isError result = %+v; want outcome tool_error", te)
	}
	legacy := byName["tools/call echo 2025-11-25"]
	if legacy.Outcome != audit.OutcomeOK || legacy.Upstream != "demo" || legacy.Rule == "" || legacy.Session != sid || legacy.BytesOut != int64(len(legacyBody)) {
		t.Errorf("legacy echo result = %+v; want ok, upstream demo, a rule, session %s, %d bytes out", legacy, sid, len(legacyBody))
	}
	if init := byName["initialize  "]; init.Outcome != audit.OutcomeOK || init.BytesOut == 0 {
		t.Errorf("initialize result = %+v", init)
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

func (failingAuditor) Submit(audit.Event) error { return audit.ErrUnavailable }

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
