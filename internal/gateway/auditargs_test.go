package gateway

import (
	"os"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

// TestAuditRecordsRedactedArguments: with audit.arguments.record, a call's
// request record holds its arguments with the default sensitive keys and
// the configured patterns redacted, and neither secret is anywhere in the
// log file; without it, only the digest is recorded.
func TestAuditRecordsRedactedArguments(t *testing.T) {
	args := `{"message":"deploy with sk-abcdefgh1234","password":"hunter2"}`
	for _, record := range []bool{true, false} {
		tg, logPath := auditedGateway(t, func(c *config.Config) {
			c.Audit.Arguments = config.AuditArguments{Record: record, Redact: []string{`sk-[A-Za-z0-9]{8,}`}}
			c.ApplyDefaults()
		})
		rawCall(t, tg, tg.keyA, "echo", args)
		evs := auditEvents(t, tg, logPath)
		var req *audit.Event
		for i := range evs {
			if evs[i].Stage == audit.StageRequest && evs[i].Method == "tools/call" && evs[i].Name == "echo" {
				req = &evs[i]
			}
		}
		if req == nil {
			t.Fatalf("record %v: no request record for the call", record)
		}
		if req.ArgsSHA256 != audit.ArgsDigest([]byte(args)) {
			t.Errorf("record %v: args_sha256 %s is not the digest of the arguments sent", record, req.ArgsSHA256)
		}
		want := ""
		if record {
			want = `{"message":"deploy with [REDACTED]","password":"[REDACTED]"}`
		}
		if string(req.Arguments) != want {
			t.Errorf("record %v: arguments %s, want %q", record, req.Arguments, want)
		}
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "sk-abcdefgh1234") {
			t.Errorf("record %v: a secret reached the audit log:\n%s", record, b)
		}
	}
}
