package telemetry

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// TracerName is the instrumentation scope of mcpgate's spans.
const TracerName = "github.com/mcpgate/mcpgate"

// Span attribute keys. Arguments, tokens and headers are never recorded.
const (
	AttrMethod    = "mcp.method"                // the JSON-RPC method (bounded, as the metric label)
	AttrName      = "mcp.name"                  // the tool or prompt name, or the resource URI
	AttrEra       = "mcp.era"                   // legacy, modern, none
	AttrPrincipal = "mcpgate.principal.id"      // the authenticated principal's id
	AttrUpstream  = "mcpgate.upstream"          // an upstream's config name
	AttrStatus    = "http.response.status_code" // the answer's HTTP status
	AttrOutcome   = "mcpgate.outcome"           // an upstream call's outcome: ok, error, timeout
)

// NewTracerProvider builds the tracer provider for cfg: a batching OTLP/HTTP
// exporter, a ratio sampler and the service's resource. The caller owns it:
// Shutdown flushes the spans still buffered. Nothing global is set.
func NewTracerProvider(cfg config.Tracing, version string, logger *slog.Logger) (*sdktrace.TracerProvider, error) {
	endpoint, err := otlpURL(cfg.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	headers := map[string]string{}
	for name, v := range cfg.Headers {
		s, err := v.Resolve()
		if err != nil {
			return nil, fmt.Errorf("tracing.headers.%s: %w", name, err)
		}
		headers[name] = s.Reveal()
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithTimeout(cfg.Timeout),
		otlptracehttp.WithHTTPClient(exportClient(strings.HasPrefix(endpoint, "http://"), cfg.Timeout)),
	)
	if err != nil {
		return nil, fmt.Errorf("create OTLP exporter: %w", err)
	}
	return NewTracerProviderWith(&loggingExporter{SpanExporter: exp, logger: logger}, cfg.ServiceName, version, cfg.Ratio()), nil
}

// NewTracerProviderWith builds a tracer provider that batches spans to exp;
// tests pass an in-memory exporter.
func NewTracerProviderWith(exp sdktrace.SpanExporter, serviceName, version string, ratio float64) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(Sampler(ratio)),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", serviceName),
			attribute.String("service.version", version),
		)),
	)
}

// Sampler samples ratio of new traces. A client's traceparent makes the
// request part of the client's trace, but its sampled flag does not decide:
// a client must not be able to make the gateway record (and export) every
// request it sends.
func Sampler(ratio float64) sdktrace.Sampler {
	root := sdktrace.TraceIDRatioBased(ratio)
	return sdktrace.ParentBased(root,
		sdktrace.WithRemoteParentSampled(root),
		sdktrace.WithRemoteParentNotSampled(root),
	)
}

// otlpURL is the traces URL of an OTLP/HTTP endpoint: /v1/traces unless the
// configured URL names a path of its own.
func otlpURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("parse tracing.otlp_endpoint: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// exportClient reaches the collector directly (no environment proxy),
// follows no redirect, and for plaintext (tracing.insecure) checks that the
// address actually dialled is loopback.
func exportClient(plain bool, timeout time.Duration) *http.Client {
	dialer := transport.Dialer(timeout, plain)
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: timeout,
			MaxIdleConns:        2,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loggingExporter logs a failed export with the injected logger, instead of
// letting the SDK hand it to OpenTelemetry's process-global error handler.
type loggingExporter struct {
	sdktrace.SpanExporter
	logger *slog.Logger
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.logger.Warn("spans not exported", "spans", len(spans), "error", err)
	}
	return nil
}

// traceContext is the W3C trace context propagator (traceparent, tracestate).
var traceContext = propagation.TraceContext{}

// StartServerSpan starts the server span of one request to the MCP endpoint.
// A traceparent the client sent makes it the span's parent (the request
// joins the client's trace); the request's traceparent header is then
// replaced with the gateway's own span, which is what the upstream calls
// made for this request descend from (the SDK hands the header, not the
// request's context, to the handlers of a legacy session).
func StartServerSpan(tracer trace.Tracer, r *http.Request) (*http.Request, trace.Span) {
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := tracer.Start(ctx, "mcp", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
	r.Header.Del("Traceparent")
	r.Header.Del("Tracestate")
	traceContext.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r.WithContext(ctx), span
}

// StartStdioSpan starts the server span of one request on the stdio front
// (mcpgate run). Stdio carries no headers, so no trace context comes with
// the request: the span starts a trace. Its context is put in header, the
// headers the front hands the SDK with the request, which is where the
// upstream calls made for it find their parent (as for HTTP).
func StartStdioSpan(tracer trace.Tracer, header http.Header) trace.Span {
	ctx, span := tracer.Start(context.Background(), "mcp", trace.WithSpanKind(trace.SpanKindServer))
	traceContext.Inject(ctx, propagation.HeaderCarrier(header))
	return span
}

// EndServerSpan names the span after its method (a bounded label value),
// sets what is known of the request and ends it.
func EndServerSpan(span trace.Span, era, method, name, principal string, status int) {
	failure := ""
	if status >= 500 {
		failure = http.StatusText(status)
	}
	endSpan(span, era, method, name, principal, failure, attribute.Int(AttrStatus, status))
}

// EndStdioSpan is EndServerSpan for the stdio front, which has no HTTP
// status; failure, if not empty, marks the span as failed (a request the
// session ended before it was answered).
func EndStdioSpan(span trace.Span, era, method, name, principal, failure string) {
	endSpan(span, era, method, name, principal, failure)
}

func endSpan(span trace.Span, era, method, name, principal, failure string, more ...attribute.KeyValue) {
	method = Method(method)
	span.SetName(method)
	attrs := append([]attribute.KeyValue{
		attribute.String(AttrMethod, method),
		attribute.String(AttrEra, era),
	}, more...)
	if name != "" {
		attrs = append(attrs, attribute.String(AttrName, name))
	}
	if principal != "" {
		attrs = append(attrs, attribute.String(AttrPrincipal, principal))
	}
	span.SetAttributes(attrs...)
	if failure != "" {
		span.SetStatus(codes.Error, failure)
	}
	span.End()
}

// CallObserver measures the requests forwarded to upstreams: the duration
// histogram, and with a tracer a client span per call.
type CallObserver struct {
	metrics *Metrics
	tracer  trace.Tracer // nil: no spans
}

// NewCallObserver returns a CallObserver; tracer may be nil.
func NewCallObserver(m *Metrics, tracer trace.Tracer) *CallObserver {
	return &CallObserver{metrics: m, tracer: tracer}
}

// StartCall starts measuring one call of method (tool: the upstream's own
// tool name for tools/call, else "") on upstream. header is the client
// request's, which carries the gateway's server span as its traceparent
// (see StartServerSpan); nil for stdio. end takes the call's error and
// whether it ran out of time.
func (o *CallObserver) StartCall(ctx context.Context, header http.Header, upstream, method, tool string) (context.Context, func(err error, timedOut bool)) {
	start := time.Now()
	var span trace.Span
	if o.tracer != nil {
		// The header wins over ctx: a legacy session's handlers run in a
		// context derived from the request that opened the session.
		if header != nil {
			if sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.HeaderCarrier(header))); sc.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
		attrs := []attribute.KeyValue{attribute.String(AttrUpstream, upstream), attribute.String(AttrMethod, Method(method))}
		if tool != "" {
			attrs = append(attrs, attribute.String(AttrName, tool))
		}
		ctx, span = o.tracer.Start(ctx, "upstream "+Method(method), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	return ctx, func(err error, timedOut bool) {
		outcome := CallOK
		switch {
		case timedOut:
			outcome = CallTimeout
		case err != nil:
			outcome = CallError
		}
		o.metrics.UpstreamCall(upstream, method, tool, outcome, time.Since(start))
		if span != nil {
			span.SetAttributes(attribute.String(AttrOutcome, outcome))
			if err != nil {
				// The outcome only: an upstream's error text may carry
				// what the caller sent.
				span.SetStatus(codes.Error, outcome)
			}
			span.End()
		}
	}
}
