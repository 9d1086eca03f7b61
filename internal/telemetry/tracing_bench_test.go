package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkSpans is what tracing adds to one call, in isolation from the
// rest of the gateway: the server span (with its traceparent rewrite) and
// one upstream span, sampled, batched to an exporter that discards them.
func BenchmarkSpans(b *testing.B) {
	tp := NewTracerProviderWith(tracetest.NewNoopExporter(), "bench", "devel", 1)
	defer tp.Shutdown(context.Background())
	tracer := tp.Tracer(TracerName)
	obs := NewCallObserver(New("bench"), tracer)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r, span := StartServerSpan(tracer, r)
		ctx, end := obs.StartCall(r.Context(), r.Header, "remote", "tools/call", "echo")
		_ = ctx
		end(nil, false)
		EndServerSpan(span, "modern", "tools/call", "echo", "alice", 200)
	}
}

// BenchmarkSpansOff is the same work with tracing off: the upstream
// histogram only, and the request as built.
func BenchmarkSpansOff(b *testing.B) {
	obs := NewCallObserver(New("bench"), nil)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		_, end := obs.StartCall(r.Context(), r.Header, "remote", "tools/call", "echo")
		end(nil, false)
	}
}
