package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/alert"
	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// Option adjusts a gateway built by New.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
}

// WithTracerProvider makes the gateway record a server span per request to
// the MCP endpoint and a client span per upstream call, and propagate W3C
// trace context to url upstreams. The caller owns tp (and flushes it at
// shutdown); without this option nothing is traced.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// tracer is the gateway's tracer; nil when tracing is off, so that the
// request path does not even allocate a span context then.
func (o options) tracer() trace.Tracer {
	if o.tracerProvider == nil {
		return nil
	}
	return o.tracerProvider.Tracer(telemetry.TracerName, trace.WithInstrumentationVersion(Version()))
}

// alertOptions turns the config's alerts into the alerter's options,
// resolving the webhook's secret headers: a missing secret stops the start.
func alertOptions(a config.Alerts, metrics *telemetry.Metrics, logger *slog.Logger) (alert.Options, error) {
	o := alert.Options{Logger: logger.With("component", "alert"), Metrics: metrics, Version: Version()}
	for _, r := range a.Rules {
		o.Rules = append(o.Rules, alert.Rule{Name: r.Name, On: r.On, Threshold: r.Threshold, Window: r.Window})
	}
	if w := a.Webhook; w != nil {
		header := http.Header{}
		for name, v := range w.Headers {
			s, err := v.Resolve()
			if err != nil {
				return alert.Options{}, fmt.Errorf("alerts.webhook.headers.%s: %w", name, err)
			}
			header[textproto.CanonicalMIMEHeaderKey(name)] = []string{s.Reveal()}
		}
		o.Webhook = &alert.Webhook{URL: w.URL, Timeout: w.Timeout, Header: header, QueueSize: w.QueueSize}
	}
	return o, nil
}

// startAlerts starts the alerter (and its webhook sender) and makes the
// metrics feed it. Nothing after it in New may fail: Close stops it.
func (g *Gateway) startAlerts(o alert.Options) {
	if len(o.Rules) == 0 {
		return
	}
	g.alerts = alert.New(o)
	names := make([]string, len(o.Rules))
	for i, r := range o.Rules {
		names[i] = r.Name
	}
	g.metrics.AlertRules(names)
	g.metrics.SetObserver(g.alerts)
}

// legacySessions counts the live sessions of the 2025-11-25 era: those the
// SDK's stateful handler made. They are the server's only sessions with an
// id (stateless requests and the stdio front have none). The SDK drops a
// session from the server's list when it really ends: DELETE, idle timeout,
// a failed initialize, or Close at shutdown.
func legacySessions(server *mcp.Server) func() int {
	return func() int {
		n := 0
		for ss := range server.Sessions() {
			if ss.ID() != "" {
				n++
			}
		}
		return n
	}
}

// closeLegacySessions ends the sessions still open at shutdown, so that
// their goroutines stop and the sessions gauge reads zero.
func closeLegacySessions(server *mcp.Server) {
	for ss := range server.Sessions() {
		if ss.ID() != "" {
			ss.Close()
		}
	}
}

// learn records what the request turned out to be, for the metric labels
// and the trace span: the method and name once the body was parsed, and the
// principal once authenticated.
func (l *requestLabels) learn(ev audit.Event, parsed bool) {
	if parsed {
		l.method, l.name = ev.Method, ev.Name
	}
	l.principal = ev.Principal
}
