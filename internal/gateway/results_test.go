package gateway

import (
	"os"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// TestResultRules: through the real gateway and a real child, a tool's
// result has configured secrets redacted (logged, counted, audited), must
// match the tool's output schema, and must fit the upstream's size cap; a
// result that does not is refused with -31502 naming the reason.
func TestResultRules(t *testing.T) {
	keyPath, logPath, _ := auditFiles(t)
	tg := newTestGateway(t, func(c *config.Config) {
		withTestServerSettings(func(u *config.Upstream) {
			u.Redact = []string{`ghp_[A-Za-z0-9]{36}`}
			u.MaxResultBytes = 100_000
		})(c)
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
	})
	call := func(name string) (string, rpcError) {
		t.Helper()
		_, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"`+name+`","arguments":{}`), modernHeaders("tools/call", name))
		return string(b), decodeRPC(t, b)
	}
	body, r := call("leak")
	if r.Error != nil || strings.Contains(body, leakedToken) || !strings.Contains(body, "token=[REDACTED] ok") {
		t.Errorf("leaked token: %s", body)
	}
	if _, r := call("goodoutput"); r.Error != nil {
		t.Errorf("output matching its schema: %+v", r.Error)
	}
	_, r = call("badoutput")
	if r.Error == nil || r.Error.Code != upstream.CodeBadResult || !strings.Contains(r.Error.Message, `result of tool "badoutput" of upstream "t" refused: its structuredContent does not match its output schema`) {
		t.Errorf("output breaking its schema: %+v", r.Error)
	}
	_, r = call("big")
	if r.Error == nil || r.Error.Code != upstream.CodeBadResult || !strings.Contains(r.Error.Message, "over the cap of 100000 (upstreams.t.max_result_bytes)") {
		t.Errorf("result over the cap: %+v", r.Error)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_result_redactions_total{upstream="t"} 1`+"\n") {
		t.Errorf("redaction not counted:\n%s", grepLines(m, "redaction"))
	}
	tg.Close()
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), `"method":"mcpgate/redaction","upstream":"t","name":"leak","decision":"allow","reason":"1 matches redacted from the result"`) {
		t.Errorf("redaction not audited")
	}
	if strings.Contains(string(log), leakedToken) {
		t.Error("the audit log holds the token")
	}
}

// TestTightenedArguments: config tightens a tool's input schema without
// touching the upstream: what the tool's own schema accepts but the
// tightening does not is refused (-32602) and never reaches the child.
func TestTightenedArguments(t *testing.T) {
	tg := newTestGateway(t, withTestServerSettings(func(u *config.Upstream) {
		u.Tools = map[string]config.ToolSettings{"note": {Arguments: map[string]any{
			"properties": map[string]any{"tag": map[string]any{"pattern": "^[a-z]+$"}},
		}}}
	}))
	post := func(args string) rpcError {
		t.Helper()
		_, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"note","arguments":`+args), modernHeaders("tools/call", "note"))
		return decodeRPC(t, b)
	}
	if r := post(`{"n":1,"tag":"ok"}`); r.Error != nil {
		t.Fatalf("a call both schemas accept: %+v", r.Error)
	}
	r := post(`{"n":1,"tag":"OK!"}`) // the tool's own schema allows it (maxLength 8)
	if r.Error == nil || r.Error.Code != -32602 || !strings.Contains(r.Error.Message, "pattern") {
		t.Fatalf("a call only the tightening refuses: %+v", r.Error)
	}
	log, _ := os.ReadFile(tg.markers + "/calls.log")
	if strings.Count(string(log), "\n") != 1 || strings.Contains(string(log), "OK!") {
		t.Errorf("the child's call log: %q, want only the accepted call", log)
	}
}
