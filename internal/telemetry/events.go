package telemetry

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Events the metrics pass on to an Observer (alert rules count them). The
// values are the config's alerts.rules[].on words.
const (
	EventAuthFailures  = "auth_failures"
	EventQuarantines   = "quarantines"
	EventSandboxKills  = "sandbox_kills"
	EventAuditFailures = "audit_failures"
	EventRateLimited   = "rate_limited"
)

// Observer is told of every event above as it is counted. Observe is
// called on request paths: it must be quick and must not block.
type Observer interface {
	Observe(event string)
}

// SetObserver makes o see the events from now on. Call it once, before the
// metrics are used: the field is read without synchronisation.
func (m *Metrics) SetObserver(o Observer) {
	if m != nil {
		m.observer = o
	}
}

func (m *Metrics) observe(event string) {
	if m.observer != nil {
		m.observer.Observe(event)
	}
}

// Policy decision label values.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// PolicyDecision counts one decision on a call of something that exists.
func (m *Metrics) PolicyDecision(allow bool) {
	if m == nil {
		return
	}
	d := DecisionDeny
	if allow {
		d = DecisionAllow
	}
	m.policyDecisions.WithLabelValues(d).Inc()
}

// AlertRules makes every rule's counter start at zero, so that rate() sees
// its first firing.
func (m *Metrics) AlertRules(names []string) {
	if m == nil {
		return
	}
	for _, n := range names {
		m.alerts.WithLabelValues(n)
	}
}

// AlertFired counts one firing of a rule (a config name: bounded).
func (m *Metrics) AlertFired(rule string) {
	if m == nil {
		return
	}
	m.alerts.WithLabelValues(rule).Inc()
}

// AlertDelivery counts one webhook outcome: ok, failed or dropped.
func (m *Metrics) AlertDelivery(result string) {
	if m == nil {
		return
	}
	m.alertDeliveries.WithLabelValues(result).Inc()
}

// Upstream call outcomes.
const (
	CallOK      = "ok"
	CallError   = "error"
	CallTimeout = "timeout"
)

// MaxToolLabels caps the distinct tool label values of
// mcpgate_upstream_call_duration_seconds: an upstream decides what tools it
// lists, and one that churns names must not grow the metric without bound.
// Past the cap a tool is labelled ToolOther.
const MaxToolLabels = 1000

// ToolOther labels a call whose tool is past MaxToolLabels.
const ToolOther = "other"

// UpstreamCall records one request forwarded to upstream. tool is the
// upstream's own name of a catalog tool for tools/call ("" otherwise, then
// method labels it, passed through Method).
func (m *Metrics) UpstreamCall(upstream, method, tool, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	label := Method(method)
	if tool != "" {
		label = m.tools.get(upstream + "\x00" + tool)
		if label != ToolOther {
			label = tool
		}
	}
	m.upstreamCalls.WithLabelValues(upstream, label, outcome).Observe(d.Seconds())
}

// boundedLabels remembers up to max label values; get returns ToolOther for
// any value beyond them.
type boundedLabels struct {
	mu   sync.Mutex
	seen map[string]bool
	max  int
}

func newBoundedLabels(max int) *boundedLabels {
	return &boundedLabels{seen: map[string]bool{}, max: max}
}

func (b *boundedLabels) get(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return ToolOther
	}
	b.seen[v] = true
	return v
}

// EraLegacy labels the 2025-11-25 era's sessions.
const EraLegacy = "legacy"

// TrackSessions exports mcpgate_sessions_open{era} as count(), asked at
// every scrape. Counting the live sessions at scrape time, rather than
// adding and subtracting on events, cannot drift: a session that ends
// without the gateway being told (an idle timeout inside the SDK) is simply
// no longer counted.
func (m *Metrics) TrackSessions(era string, count func() int) error {
	if m == nil {
		return nil
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "mcpgate_sessions_open",
		Help:        "MCP sessions open, by era; only the legacy era (2025-11-25) has sessions.",
		ConstLabels: prometheus.Labels{"era": era},
	}, func() float64 { return float64(count()) })
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("register sessions gauge: %w", err)
	}
	return nil
}
