package telemetry

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMethodLabelIsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"tools/call":         "tools/call",
		"initialize":         "initialize",
		MethodGET:            MethodGET,
		"tools/call2":        MethodOther,
		"":                   MethodOther,
		"x/" + "evil\nlabel": MethodOther,
	} {
		if got := Method(in); got != want {
			t.Errorf("Method(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOutcome(t *testing.T) {
	for status, want := range map[int]string{200: OutcomeOK, 202: OutcomeOK, 401: OutcomeRefused, 429: OutcomeRefused, 503: OutcomeError} {
		if got := Outcome(status); got != want {
			t.Errorf("Outcome(%d) = %q, want %q", status, got, want)
		}
	}
}

// TestExposition records through every method and reads the exposition the
// admin listener serves.
func TestExposition(t *testing.T) {
	m := New("v1.2.3")
	m.Request("modern", "tools/call", 200, 3*time.Millisecond)
	m.Request("none", "no/such/method", 401, time.Millisecond)
	m.AuthFailure(AuthNoCredentials)
	m.Refusal(RefusedBadJSON)
	m.AuditAppend(time.Millisecond, nil)
	m.AuditAppend(time.Millisecond, errors.New("disk full"))

	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`mcpgate_requests_total{era="modern",method="tools/call",outcome="ok"} 1`,
		`mcpgate_requests_total{era="none",method="other",outcome="refused"} 1`,
		`mcpgate_auth_failures_total{reason="no_credentials"} 1`,
		`mcpgate_refusals_total{reason="bad_json"} 1`,
		`mcpgate_audit_records_total 1`,
		`mcpgate_audit_failures_total 1`,
		`mcpgate_build_info{version="v1.2.3"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	var nilMetrics *Metrics
	nilMetrics.Request("modern", "tools/call", 200, 0) // a nil *Metrics records nothing, and does not panic
}
