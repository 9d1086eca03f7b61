package telemetry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

type recordingObserver struct{ events []string }

func (o *recordingObserver) Observe(e string) { o.events = append(o.events, e) }

// TestObserverEvents checks which recordings reach the alert observer: the
// ones alert rules can count, and nothing else.
func TestObserverEvents(t *testing.T) {
	tests := []struct {
		name   string
		record func(m *Metrics)
		want   []string
	}{
		{"auth failure", func(m *Metrics) { m.AuthFailure(AuthInvalid) }, []string{EventAuthFailures}},
		{"rate limited", func(m *Metrics) { m.Refusal(RefusedRateLimited) }, []string{EventRateLimited}},
		{"concurrency", func(m *Metrics) { m.Refusal(RefusedConcurrency) }, []string{EventRateLimited}},
		{"other refusal", func(m *Metrics) { m.Refusal(RefusedPolicy) }, nil},
		{"audit failure", func(m *Metrics) { m.AuditAppend(0, errors.New("disk full")) }, []string{EventAuditFailures}},
		{"audit ok", func(m *Metrics) { m.AuditAppend(time.Millisecond, nil) }, nil},
		{"sandbox kill", func(m *Metrics) { m.SandboxLimitKill("files", "memory") }, []string{EventSandboxKills}},
		{"quarantine", func(m *Metrics) { m.Quarantine("files", "tool", "changed", true) }, []string{EventQuarantines}},
		{"reported only", func(m *Metrics) { m.Quarantine("files", "tool", "changed", false) }, nil},
		{"restart", func(m *Metrics) { m.UpstreamRestart("files") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New("test")
			o := &recordingObserver{}
			m.SetObserver(o)
			tt.record(m)
			if !slices.Equal(o.events, tt.want) {
				t.Errorf("observed %v, want %v", o.events, tt.want)
			}
		})
	}
}

// TestEventsAreConfigWords: an alert rule's `on` is matched against these
// constants verbatim.
func TestEventsAreConfigWords(t *testing.T) {
	ours := []string{EventAuthFailures, EventQuarantines, EventSandboxKills, EventAuditFailures, EventRateLimited}
	if !slices.Equal(ours, config.AlertEvents) {
		t.Errorf("telemetry events %v differ from config.AlertEvents %v", ours, config.AlertEvents)
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func TestNewMetricsExposition(t *testing.T) {
	m := New("test")
	open := 2
	if err := m.TrackSessions(EraLegacy, func() int { return open }); err != nil {
		t.Fatal(err)
	}
	m.AlertRules([]string{"bad-keys"})
	m.AlertFired("storm")
	m.AlertDelivery("ok")
	m.PolicyDecision(true)
	m.PolicyDecision(false)
	m.PolicyDecision(false)
	m.UpstreamCall("files", "tools/call", "read", CallOK, time.Millisecond)
	m.UpstreamCall("files", "resources/read", "", CallTimeout, time.Second)
	m.UpstreamCall("files", "evil/method", "", CallError, time.Second)
	text := scrape(t, m)
	for _, want := range []string{
		`mcpgate_sessions_open{era="legacy"} 2`,
		`mcpgate_alerts_total{rule="bad-keys"} 0`,
		`mcpgate_alerts_total{rule="storm"} 1`,
		`mcpgate_alert_webhook_deliveries_total{result="ok"} 1`,
		`mcpgate_policy_decisions_total{decision="allow"} 1`,
		`mcpgate_policy_decisions_total{decision="deny"} 2`,
		`mcpgate_upstream_call_duration_seconds_count{outcome="ok",tool="read",upstream="files"} 1`,
		`mcpgate_upstream_call_duration_seconds_count{outcome="timeout",tool="resources/read",upstream="files"} 1`,
		`mcpgate_upstream_call_duration_seconds_count{outcome="error",tool="other",upstream="files"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	open = 0
	if text := scrape(t, m); !strings.Contains(text, `mcpgate_sessions_open{era="legacy"} 0`) {
		t.Error("sessions gauge did not follow the count down")
	}
	if err := m.TrackSessions(EraLegacy, func() int { return 0 }); err == nil {
		t.Error("a second sessions gauge for the same era was registered")
	}
}

func TestToolLabelsAreBounded(t *testing.T) {
	m := New("test")
	for i := range MaxToolLabels + 50 {
		m.UpstreamCall("churn", "tools/call", fmt.Sprintf("tool%d", i), CallOK, time.Millisecond)
	}
	m.UpstreamCall("churn", "tools/call", "tool0", CallOK, time.Millisecond) // seen before: keeps its label
	text := scrape(t, m)
	if n := strings.Count(text, "mcpgate_upstream_call_duration_seconds_count{"); n != MaxToolLabels+1 {
		t.Errorf("%d series, want %d (the cap plus other)", n, MaxToolLabels+1)
	}
	for _, want := range []string{
		`mcpgate_upstream_call_duration_seconds_count{outcome="ok",tool="other",upstream="churn"} 50`,
		`mcpgate_upstream_call_duration_seconds_count{outcome="ok",tool="tool0",upstream="churn"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}
