// Package telemetry holds mcpgate's Prometheus metrics. Every metric lives in
// a registry of its own (never the process-wide default one), so a gateway
// built in a test starts from zero and two gateways in one process do not
// share counters. Only metrics that something in mcpgate feeds are
// registered: a metric that can only ever read zero would be a lie.
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of a request, by the HTTP status class of its answer.
const (
	OutcomeOK      = "ok"      // 1xx-3xx
	OutcomeRefused = "refused" // 4xx
	OutcomeError   = "error"   // 5xx
)

// Authentication failure reasons (mcpgate_auth_failures_total{reason}).
const (
	AuthNoCredentials = "no_credentials"
	AuthMalformed     = "malformed"
	AuthInvalid       = "invalid"
)

// Refusal reasons (mcpgate_refusals_total{reason}): the front's checks, in
// the order a request meets them.
const (
	RefusedHost             = "host"
	RefusedOrigin           = "origin"
	RefusedMethod           = "method" // HTTP method other than GET, POST, DELETE
	RefusedUnauthenticated  = "unauthenticated"
	RefusedMediaType        = "media_type"
	RefusedTooLarge         = "too_large"
	RefusedReadTimeout      = "read_timeout"
	RefusedBadJSON          = "bad_json"
	RefusedRateLimited      = "rate_limited" // 429: a principal's (or principal-and-tool's) token bucket is empty
	RefusedConcurrency      = "concurrency"  // 429: too many calls in flight, for the principal or the gateway
	RefusedSessions         = "sessions"     // 429: a new session past limits.sessions with none idle to replace
	RefusedDraining         = "draining"     // 503: an event stream asked for while the gateway shuts down
	RefusedAuditUnavailable = "audit_unavailable"
	RefusedPolicy           = "policy" // the policy denied the call; the client was answered as for something that does not exist
	RefusedSchema           = "schema" // the call's arguments failed the tool's input schema
)

// Label values used when a request has no JSON-RPC method.
const (
	MethodNone     = "none"     // refused before the body was parsed
	MethodOther    = "other"    // a method name mcpgate does not know
	MethodResponse = "response" // a client's answer to a server request
	MethodGET      = "http:GET" // a legacy event stream
	MethodDELETE   = "http:DELETE"
)

// knownMethods are the JSON-RPC methods a client sends to a server (both
// eras), plus the label values above. Anything else is MethodOther, so a
// client cannot grow the label set.
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "server/discover": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true,
	"completion/complete": true, "logging/setLevel": true, "subscriptions/listen": true,
	"tasks/get": true, "tasks/list": true, "tasks/result": true, "tasks/cancel": true,
	"notifications/initialized": true, "notifications/cancelled": true,
	"notifications/progress": true, "notifications/roots/list_changed": true,
	MethodNone: true, MethodOther: true, MethodResponse: true, MethodGET: true, MethodDELETE: true,
}

// Method maps a JSON-RPC method (or one of the Method* values) to its label
// value: itself if known, else MethodOther.
func Method(m string) string {
	if knownMethods[m] {
		return m
	}
	return MethodOther
}

// KnownMethodCount is the size of the method label set, for tests.
func KnownMethodCount() int { return len(knownMethods) }

// Eras label values: "legacy", "modern", or "none" before one was chosen.
const EraNone = "none"

// Outcome maps an HTTP status to an outcome label value.
func Outcome(status int) string {
	switch {
	case status >= 500:
		return OutcomeError
	case status >= 400:
		return OutcomeRefused
	default:
		return OutcomeOK
	}
}

// Metrics is every metric mcpgate exports. Its methods are safe for
// concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	authFailures  *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	auditRecords  prometheus.Counter
	auditFailures prometheus.Counter
	auditLatency  prometheus.Histogram
	restarts      *prometheus.CounterVec
	limitKills    *prometheus.CounterVec
	definitions   *prometheus.CounterVec
	redactions    *prometheus.CounterVec
	reloads       *prometheus.CounterVec

	// Added by issue 9: upstream calls, policy decisions, alerts.
	upstreamCalls   *prometheus.HistogramVec
	policyDecisions *prometheus.CounterVec
	alerts          *prometheus.CounterVec
	alertDeliveries *prometheus.CounterVec
	tools           *boundedLabels // the tool label values handed out so far

	// observer is told of the events alert rules count; nil: none. Set
	// once, before the metrics are used (SetObserver).
	observer Observer
}

// New makes the metrics in a registry of their own, with the Go runtime and
// process collectors and mcpgate_build_info{version}.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_requests_total",
			Help: "Requests to the MCP endpoint, by era, JSON-RPC method and outcome (ok, refused: 4xx, error: 5xx).",
		}, []string{"era", "method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_request_duration_seconds",
			Help:    "Time from a request reaching the MCP endpoint to its answer being written, by era and JSON-RPC method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"era", "method"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_auth_failures_total",
			Help: "Requests refused with 401, by reason (no_credentials, malformed, invalid).",
		}, []string{"reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_refusals_total",
			Help: "Requests refused before reaching an MCP server, by reason.",
		}, []string{"reason"}),
		auditRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgate_audit_records_total",
			Help: "Audit records written (allowed requests and refusals).",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgate_audit_failures_total",
			Help: "Audit records that could not be written.",
		}),
		auditLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcpgate_audit_append_duration_seconds",
			Help:    "Time to write one audit record to stable storage (the audit lag every request waits for).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		definitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_definition_problems_total",
			Help: "Upstream definitions (tools, prompts, resource templates) that differ from the lockfile or carry a poisoned description, by upstream, kind, problem (new, changed, unreadable, finding:<rule>) and action (quarantined, reported); each counted once per definition digest.",
		}, []string{"upstream", "kind", "problem", "action"}),
		redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_result_redactions_total",
			Help: "Tool results from which configured secret patterns (upstreams.<name>.redact) were removed, by upstream.",
		}, []string{"upstream"}),
		limitKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_sandbox_limit_kills_total",
			Help: "Sandboxed upstream servers killed by a resource limit, by upstream and limit (memory, pids).",
		}, []string{"upstream", "limit"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_upstream_restarts_total",
			Help: "Times an upstream connection failed or ended and was restarted, by upstream (its config name).",
		}, []string{"upstream"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_policy_reloads_total",
			Help: "Policy reloads (SIGHUP or a changed config file), by result: ok, or refused (the policy in force stayed).",
		}, []string{"result"}),
	}
	m.upstreamCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpgate_upstream_call_duration_seconds",
		Help:    "Time an upstream took to answer one forwarded request, by upstream (config name), tool (the upstream's own tool name for tools/call, else the JSON-RPC method) and outcome (ok, error: the upstream's error or a failed connection, timeout).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"upstream", "tool", "outcome"})
	m.policyDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_policy_decisions_total",
		Help: "Policy decisions on calls of tools, prompts and resources that exist, by decision (allow, deny).",
	}, []string{"decision"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_alerts_total",
		Help: "Alert rule firings (alerts.rules), by rule name.",
	}, []string{"rule"})
	m.alertDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_alert_webhook_deliveries_total",
		Help: "Alert webhook POSTs, by result: ok (2xx), failed (error or other status; not retried), dropped (queue full or stopping).",
	}, []string{"result"})
	m.tools = newBoundedLabels(MaxToolLabels)
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mcpgate_build_info",
		Help:        "Always 1; the version label names the running mcpgate.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.requests, m.duration, m.authFailures, m.refusals,
		m.auditRecords, m.auditFailures, m.auditLatency, m.restarts, m.limitKills, m.definitions, m.redactions, m.reloads,
		m.upstreamCalls, m.policyDecisions, m.alerts, m.alertDeliveries,
	)
	m.policyDecisions.WithLabelValues(DecisionAllow)
	m.policyDecisions.WithLabelValues(DecisionDeny)
	// Known reasons start at zero so that rate() sees their first increase.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("refused")
	for _, r := range []string{AuthNoCredentials, AuthMalformed, AuthInvalid} {
		m.authFailures.WithLabelValues(r)
	}
	for _, r := range []string{RefusedHost, RefusedOrigin, RefusedMethod, RefusedUnauthenticated, RefusedMediaType,
		RefusedTooLarge, RefusedReadTimeout, RefusedBadJSON, RefusedRateLimited, RefusedConcurrency, RefusedSessions, RefusedDraining, RefusedAuditUnavailable, RefusedPolicy, RefusedSchema} {
		m.refusals.WithLabelValues(r)
	}
	return m
}

// Registry is where the metrics live, for tests and for serving.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

// Request records one answered request. method is passed through Method.
func (m *Metrics) Request(era, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method = Method(method)
	m.requests.WithLabelValues(era, method, Outcome(status)).Inc()
	m.duration.WithLabelValues(era, method).Observe(d.Seconds())
}

// AuthFailure records a 401 with one of the Auth* reasons.
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
	m.observe(EventAuthFailures)
}

// Refusal records a request refused for one of the Refused* reasons.
func (m *Metrics) Refusal(reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(reason).Inc()
	if reason == RefusedRateLimited || reason == RefusedConcurrency {
		m.observe(EventRateLimited)
	}
}

// AuditAppend records one attempt to write an audit record.
func (m *Metrics) AuditAppend(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.auditFailures.Inc()
		m.observe(EventAuditFailures)
		return
	}
	m.auditRecords.Inc()
	m.auditLatency.Observe(d.Seconds())
}

// UpstreamRestart counts one restart of an upstream. The label is a config
// name, so its values are bounded by the config.
func (m *Metrics) UpstreamRestart(upstream string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(upstream).Inc()
}

// SandboxLimitKill counts a sandboxed upstream killed by a resource limit
// ("memory", "pids"); both labels are bounded by the config and the code.
func (m *Metrics) SandboxLimitKill(upstream, limit string) {
	if m == nil {
		return
	}
	m.limitKills.WithLabelValues(upstream, limit).Inc()
	m.observe(EventSandboxKills)
}

// Quarantine counts one problem found with an upstream definition; the
// labels are config names and fixed words.
func (m *Metrics) Quarantine(upstream, kind, problem string, quarantined bool) {
	if m == nil {
		return
	}
	action := "reported"
	if quarantined {
		action = "quarantined"
	}
	m.definitions.WithLabelValues(upstream, kind, problem, action).Inc()
	if quarantined {
		m.observe(EventQuarantines)
	}
}

// Redaction counts one redacted tool result.
func (m *Metrics) Redaction(upstream string) {
	if m == nil {
		return
	}
	m.redactions.WithLabelValues(upstream).Inc()
}

// PolicyReload counts one policy reload attempt.
func (m *Metrics) PolicyReload(ok bool) {
	if m == nil {
		return
	}
	result := "refused"
	if ok {
		result = "ok"
	}
	m.reloads.WithLabelValues(result).Inc()
}
